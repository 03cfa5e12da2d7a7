"""A trace's stored spans -> OTLP/JSON (`GET /api/v1/traces/{id}?format=otlp`): an
`ExportTraceServiceRequest` any OTLP/HTTP endpoint accepts as it is.

The spans are rebuilt as protobuf and serialized by the OTLP receiver's own encoder
(ingest/otlp/json_encode.py): hex ids, integer enums, 64-bit integers as strings. Spans are
grouped into one ResourceSpans per distinct resource and one ScopeSpans per (scope name,
version) within it, in the order the spans (by start time) first name them.

What the spans table keeps decides what comes back (the Collector's schema):
* Attribute values are stored as text (pcommon AsString: ints in decimal, bools `true`/`false`,
  doubles shortest, arrays and maps as JSON). A value is sent back typed when its text is what
  that typed value is stored as, so sending the export again stores the same text: `42` an
  int, `true` a bool, `0.25` a double, `["a","b"]` an array of scalars (read back as MLflow's
  GetTrace does, ingest/mlflow/spans.py). Everything else is a string: JSON objects and arrays
  of objects too, because SDK attributes are scalars or arrays of them and such text is almost
  always a JSON document the client sent as a string (chat messages, tool arguments). So a
  string that reads as a scalar (`"42"`, `"true"`) or as a JSON array of scalars written
  without spaces (`"[\"stop\"]"`) comes back typed, a whole double (`1.0`, stored `1`) an
  int, bytes as their base64 text.
  GenAI attributes whose type the conventions fix come back as that type when their text
  is one (GENAI_INT_KEYS, GENAI_DOUBLE_KEYS): the token counts and reported costs
  genai_normalize reads (processors/genai_normalize/mapping.py) and the request parameters,
  so `gen_ai.request.temperature` sent as 1.0 (stored `1`) is a double again.
* Not stored, so not sent: the dropped attribute, event and link counts of spans, events and
  links (0, so left out), span and link flags, schema URLs, scope attributes. The tenant (a
  resource attribute in the Kafka shape) is the caller's key's, not part of the data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from tracehouse.core.pdata import any_value
from tracehouse.ingest.mlflow.spans import decoded
from tracehouse.ingest.otlp.json_encode import encode_dict, encode_json
from tracehouse.processors.genai_normalize.mapping import COST_FIELDS, COUNT_FIELDS, Source
from tracehouse.sinks.clickhouse.columns import SPAN_KIND, STATUS_CODE, any_to_str

_KIND = {name: number for number, name in enumerate(SPAN_KIND)}
_STATUS = {name: number for number, name in enumerate(STATUS_CODE)}
_INT64 = range(-(2**63), 2**63)
_INT_TEXT = re.compile(r"^-?\d{1,19}$")
_DECIMAL_TEXT = re.compile(r"^-?\d+(?:\.\d+)?$")


def _attribute_keys(fields: Mapping[str, Sequence[Source]]) -> frozenset[str]:
    """The attributes that hold a field's value themselves (not inside a JSON document)."""
    return frozenset(s.key for sources in fields.values() for s in sources if not s.path and not s.python_repr)


GENAI_INT_KEYS = _attribute_keys(COUNT_FIELDS) | {
    "gen_ai.request.max_tokens", "gen_ai.request.seed", "gen_ai.request.choice.count"}
GENAI_DOUBLE_KEYS = _attribute_keys(COST_FIELDS) | {
    "gen_ai.request.temperature", "gen_ai.request.top_p", "gen_ai.request.top_k",
    "gen_ai.request.frequency_penalty", "gen_ai.request.presence_penalty"}


def _scalar(value: Any) -> bool:
    return isinstance(value, str | bool | float) or (isinstance(value, int) and value in _INT64)


def _known_type(key: str, text: str) -> AnyValue | None:
    """The value of a GenAI attribute of known type, when its text is one (else None)."""
    if key in GENAI_INT_KEYS and _INT_TEXT.match(text) and int(text) in _INT64:
        out = AnyValue(int_value=int(text))
    elif key in GENAI_DOUBLE_KEYS and _DECIMAL_TEXT.match(text) and len(text) <= 32:
        out = AnyValue(double_value=float(text))
    else:
        return None
    return out if any_to_str(out) == text else None


def typed_value(text: str, key: str = "") -> AnyValue:
    """A stored attribute value as the OTLP value it most likely was (module docstring)."""
    known = _known_type(key, text)
    if known is not None:
        return known
    value = decoded(text)
    typed = not isinstance(value, str) and (
        _scalar(value) or (isinstance(value, list) and all(_scalar(v) for v in value)))
    if typed:
        out = any_value(value)
        if any_to_str(out) == text:  # else the text would not be stored again as it is
            return out
    return AnyValue(string_value=text)


def key_values(attributes: Mapping[str, str]) -> list[KeyValue]:
    return [KeyValue(key=key, value=typed_value(text, key)) for key, text in attributes.items()]


def _span(row: Mapping[str, Any]) -> Span:
    start = int(row["start_ns"])
    span = Span(
        trace_id=bytes.fromhex(row["TraceId"]), span_id=bytes.fromhex(row["SpanId"]),
        parent_span_id=bytes.fromhex(row["ParentSpanId"]), trace_state=row["TraceState"], name=row["SpanName"],
        kind=_KIND.get(row["SpanKind"], 0), start_time_unix_nano=start,  # type: ignore[arg-type]
        end_time_unix_nano=start + int(row["Duration"]), attributes=key_values(row["SpanAttributes"]),
        status=Status(code=_STATUS.get(row["StatusCode"], 0),  # type: ignore[arg-type]
                      message=row["StatusMessage"]))
    for time_ns, name, attributes in zip(row["event_times_ns"], row["Events.Name"], row["Events.Attributes"],
                                         strict=False):
        span.events.add(time_unix_nano=int(time_ns), name=name, attributes=key_values(attributes))
    for trace_id, span_id, trace_state, attributes in zip(
            row["Links.TraceId"], row["Links.SpanId"], row["Links.TraceState"], row["Links.Attributes"], strict=False):
        span.links.add(trace_id=bytes.fromhex(trace_id), span_id=bytes.fromhex(span_id), trace_state=trace_state,
                       attributes=key_values(attributes))
    return span


def trace_request(rows: Iterable[Mapping[str, Any]]) -> ExportTraceServiceRequest:
    """Span rows (sql/trace_spans.sql) -> one request, grouped by resource, then scope."""
    request = ExportTraceServiceRequest()
    resources: dict[frozenset[tuple[str, str]], tuple[ResourceSpans, dict[tuple[str, str], ScopeSpans]]] = {}
    for row in rows:
        resource_attributes: Mapping[str, str] = row["ResourceAttributes"]
        key = frozenset(resource_attributes.items())
        if key not in resources:
            rs = request.resource_spans.add()
            rs.resource.attributes.extend(key_values(resource_attributes))
            resources[key] = (rs, {})
        rs, scopes = resources[key]
        scope = (row["ScopeName"], row["ScopeVersion"])
        if scope not in scopes:
            scopes[scope] = rs.scope_spans.add()
            scopes[scope].scope.name, scopes[scope].scope.version = scope
        scopes[scope].spans.append(_span(row))
    return request


def trace_otlp_json(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """The trace as an OTLP/JSON `ExportTraceServiceRequest` body."""
    return encode_json(trace_request(rows))



def _by_key(attributes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(attributes, key=lambda kv: kv["key"])


def _adjust(resource_spans: list[dict[str, Any]]) -> None:
    """Jaeger's SortCollections adjuster: attributes by key (resource, span, event, link),
    events by name (stable, so by time within a name)."""
    for rs in resource_spans:
        rs["resource"]["attributes"] = _by_key(rs["resource"].get("attributes", []))
        for ss in rs.get("scopeSpans", []):
            for span in ss.get("spans", []):
                span["attributes"] = _by_key(span.get("attributes", []))
                span["events"] = sorted(span.get("events", []), key=lambda e: e.get("name", ""))
                for item in span["events"] + span.get("links", []):
                    item["attributes"] = _by_key(item.get("attributes", []))
                for name in ("attributes", "events"):
                    if not span[name]:
                        del span[name]
                for item in span.get("events", []) + span.get("links", []):
                    if not item["attributes"]:
                        del item["attributes"]
        if not rs["resource"]["attributes"]:
            del rs["resource"]["attributes"]


def traces_data(traces: Iterable[Sequence[Mapping[str, Any]]], *, adjusted: bool = True) -> dict[str, Any]:
    """Several traces' span rows (one sequence per trace) -> OTLP `TracesData` as the
    Collector's pdata JSON marshaler writes it (what Jaeger's API v3 answers): each trace's
    resource spans one after the other; `resource`, `scope` and `status` always present, empty
    or not. `adjusted`: sorted as Jaeger's query service does unless raw traces are asked for."""
    resource_spans: list[dict[str, Any]] = []
    for rows in traces:
        for rs in encode_dict(trace_request(rows)).get("resourceSpans", []):
            rs.setdefault("resource", {})
            for ss in rs.get("scopeSpans", []):
                ss.setdefault("scope", {})
                for span in ss.get("spans", []):
                    span.setdefault("status", {})
            resource_spans.append(rs)
    if adjusted:
        _adjust(resource_spans)
    return {"resourceSpans": resource_spans}
