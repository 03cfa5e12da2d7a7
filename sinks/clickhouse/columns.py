"""OTLP spans -> column lists for a column-oriented ClickHouse insert.

This is the exporter's hot path: one pass over the spans, appending straight into
per-column lists (no per-span row objects, no transpose). It runs in C where the package
was built with a compiler (_otlpwire.c reads each request's serialization: ~3× less
CPU than walking the upb messages from Python, BENCHMARKS.md); the Python walk below is
the reference the C one is tested against, and the fallback. Attribute values become
strings the way the Collector's clickhouseexporter writes them (pcommon AsString):
strings as they are, bools `true`/`false`, ints in decimal, doubles shortest, bytes
base64, arrays and maps as JSON.
"""

from __future__ import annotations

import base64
import json
import math
from decimal import Decimal
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from clickhouse_connect.driver.exceptions import DataError
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tracehouse.core.auth import TENANT_ATTRIBUTE
from tracehouse.core.native import otlpwire
from tracehouse.core.anyvalue import AnyValueStyle, to_python
from tracehouse.core.pdata import TraceBatch
from tracehouse.sinks.clickhouse.genai import COST_SCALE, GENAI_COLUMN_NAMES, GENAI_COLUMNS, clickhouse_columns
from tracehouse.sinks.clickhouse.scores import EVALUATION_EVENT, evaluation_score

SPAN_KIND = ("Unspecified", "Internal", "Server", "Client", "Producer", "Consumer")
STATUS_CODE = ("Unset", "Ok", "Error")

# Base columns of the Collector's otel_traces table, in insert order.
BASE_COLUMNS = (
    "Timestamp", "TraceId", "SpanId", "ParentSpanId", "TraceState", "SpanName", "SpanKind",
    "ServiceName", "ResourceAttributes", "ScopeName", "ScopeVersion", "SpanAttributes",
    "Duration", "StatusCode", "StatusMessage",
    "Events.Timestamp", "Events.Name", "Events.Attributes",
    "Links.TraceId", "Links.SpanId", "Links.TraceState", "Links.Attributes",
)


def _format_double(v: float) -> str:
    # Go's strconv.FormatFloat(v, 'f', -1, 64), which the Collector uses: no exponent.
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    text = repr(v)
    if "e" in text or "E" in text:
        from decimal import Decimal

        text = format(Decimal(text), "f")
    if text.endswith(".0"):
        text = text[:-2]
    return text


def _base64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _finite_or_text(v: float) -> float | str:
    return v if math.isfinite(v) else _format_double(v)


# pcommon AsString's rendering of bytes and doubles, at the top and inside arrays and maps.
COLLECTOR_STYLE = AnyValueStyle(bytes_value=_base64, double_value=_finite_or_text)
# Arrays and maps as compact JSON. One encoder for every value: `json.dumps` with these
# arguments builds a new one per call, most of the ~4 µs an array value cost.
_compact_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def any_to_str(v: AnyValue) -> str:
    kind = v.WhichOneof("value")
    # The hot path inline: most attribute values are strings, then ints (token counts).
    if kind == "string_value":
        return v.string_value
    if kind == "int_value":
        return str(v.int_value)
    value = to_python(v, COLLECTOR_STYLE)
    if isinstance(value, str):  # bytes, a non-finite double
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _format_double(value)
    if value is None:
        return ""
    return _compact_json(value)


def attrs_to_map(attrs: Any) -> dict[str, str]:
    return {kv.key: any_to_str(kv.value) for kv in attrs}


# The same walk in C, over the serialized requests (core/native.py); None: the Python walk.
native: ModuleType | None = otlpwire
if native is not None:
    native.configure(_compact_json, _format_double, _finite_or_text, _base64)


# Each column of the spans insert as the C encoder writes it (_otlpwire.c `native_block`):
# (type in the block, one-letter code). The block says String where the table has
# LowCardinality(String): ClickHouse converts on insert (input_format_native_allow_types_conversion),
# and building the dictionaries is its work either way.
_BASE_TYPES: dict[str, tuple[str, str]] = {
    "Timestamp": ("DateTime64(9)", "i"), "Duration": ("UInt64", "u"),
    "ResourceAttributes": ("Map(String, String)", "m"), "SpanAttributes": ("Map(String, String)", "m"),
    "Events.Timestamp": ("Array(DateTime64(9))", "T"), "Events.Name": ("Array(String)", "S"),
    "Events.Attributes": ("Array(Map(String, String))", "M"), "Links.TraceId": ("Array(String)", "S"),
    "Links.SpanId": ("Array(String)", "S"), "Links.TraceState": ("Array(String)", "S"),
    "Links.Attributes": ("Array(Map(String, String))", "M"),
}
_KIND_TYPES: dict[type, tuple[str, str]] = {
    str: ("String", "s"), int: ("Nullable(UInt64)", "n"), bool: ("Bool", "b"),
    Decimal: ("Nullable(Decimal(18, 12))", "d"),
}
NATIVE_TYPES: dict[str, tuple[str, str]] = {
    **{name: _BASE_TYPES.get(name, ("String", "s")) for name in BASE_COLUMNS},
    **{column: _KIND_TYPES[field.kind] for field, column in GENAI_COLUMNS},
    "Tenant": ("String", "s"),
}


def native_block(names: list[str], data: list[list[Any]]) -> bytes:
    """The insert of these span columns as one Native block, encoded in C. A value its column
    cannot hold (a time past 2262) raises clickhouse-connect's DataError, as its own
    serialization would: the rows can never be stored, and are not retried."""
    assert native is not None
    types, codes = zip(*(NATIVE_TYPES[name] for name in names), strict=True)
    values = [_decimal_as_scaled_ints(column) if code == "d" else column for code, column in zip(codes, data)]
    try:
        return native.native_block(names, list(types), "".join(codes), values)
    except (OverflowError, TypeError, ValueError) as exc:
        raise DataError(f"a value cannot be written to its column: {exc}") from exc


def _decimal_as_scaled_ints(column: list[Decimal | None]) -> list[int | None]:
    # Decimal(18, 12) is an Int64 of 1e-12 units; the values are already quantized to them.
    return [None if v is None else int(v.scaleb(COST_SCALE)) for v in column]


def batch_to_columns(batch: TraceBatch, dropped: dict[str, int] | None = None,
                     scores: list[dict[str, Any]] | None = None) -> tuple[list[str], list[list[Any]]]:
    """Column names and column-oriented data for every span in the batch. GenAI counts and
    costs out of their columns' range become NULL, counted in `dropped` by column. With
    `scores`, the score rows of the spans' `gen_ai.evaluation.result` events are appended to
    it (read here, where the events are converted anyway)."""
    if native is not None:
        data = native_base_columns(batch)
        if scores is not None:
            _evaluation_scores(data, scores)
    else:
        data = python_base_columns(batch, scores)
    return _with_genai_and_tenant(batch, data, dropped)


def native_base_columns(batch: TraceBatch) -> list[list[Any]]:
    """The base columns from each request's serialization (upb, ~1 µs a span), read in C."""
    data: list[list[Any]] = [[] for _ in BASE_COLUMNS]
    assert native is not None
    for request in batch.requests:
        native.append_spans(request.SerializeToString(), data, TENANT_ATTRIBUTE)
    return data


def _evaluation_scores(data: list[list[Any]], scores: list[dict[str, Any]]) -> None:
    trace_ids, span_ids, ts, durations = data[1], data[2], data[0], data[12]
    ev_ts, ev_names, ev_attrs = data[15], data[16], data[17]
    for i, names in enumerate(ev_names):
        if names and EVALUATION_EVENT in names:
            scores.extend(_evaluations(trace_ids[i], span_ids[i], ev_ts[i], names, ev_attrs[i],
                                       ts[i] + durations[i]))


def python_base_columns(batch: TraceBatch, scores: list[dict[str, Any]] | None = None) -> list[list[Any]]:
    """The base columns, walking the upb messages from Python."""
    ts: list[int] = []
    trace_ids: list[str] = []
    span_ids: list[str] = []
    parent_ids: list[str] = []
    trace_states: list[str] = []
    names: list[str] = []
    kinds: list[str] = []
    services: list[str] = []
    res_attrs: list[dict[str, str]] = []
    scope_names: list[str] = []
    scope_versions: list[str] = []
    span_attrs: list[dict[str, str]] = []
    durations: list[int] = []
    status_codes: list[str] = []
    status_msgs: list[str] = []
    ev_ts: list[Sequence[int]] = []
    ev_names: list[Sequence[str]] = []
    ev_attrs: list[Sequence[dict[str, str]]] = []
    ln_trace: list[Sequence[str]] = []
    ln_span: list[Sequence[str]] = []
    ln_state: list[Sequence[str]] = []
    ln_attrs: list[Sequence[dict[str, str]]] = []
    n_kinds, n_codes = len(SPAN_KIND), len(STATUS_CODE)

    for rs in batch.resources():
        # Resource and scope values are shared by all their spans: convert once.
        resource = attrs_to_map(rs.resource.attributes)
        resource.pop(TENANT_ATTRIBUTE, None)  # carried through Kafka; stored as the Tenant column
        service = resource.get("service.name", "")
        for ss in rs.scope_spans:
            scope_name, scope_version = ss.scope.name, ss.scope.version
            for span in ss.spans:
                start = span.start_time_unix_nano
                end = span.end_time_unix_nano
                ts.append(start)
                durations.append(end - start if end > start else 0)
                trace_ids.append(span.trace_id.hex())
                span_ids.append(span.span_id.hex())
                parent_ids.append(span.parent_span_id.hex())
                trace_states.append(span.trace_state)
                names.append(span.name)
                k = span.kind
                kinds.append(SPAN_KIND[k] if 0 <= k < n_kinds else "Unspecified")
                services.append(service)
                res_attrs.append(resource)
                scope_names.append(scope_name)
                scope_versions.append(scope_version)
                span_attrs.append({kv.key: any_to_str(kv.value) for kv in span.attributes})
                status = span.status
                c = status.code
                status_codes.append(STATUS_CODE[c] if 0 <= c < n_codes else "Unset")
                status_msgs.append(status.message)
                events = span.events
                if events:
                    ev_ts.append([e.time_unix_nano for e in events])
                    ev_names.append([e.name for e in events])
                    ev_attrs.append([attrs_to_map(e.attributes) for e in events])
                    if scores is not None and EVALUATION_EVENT in ev_names[-1]:
                        scores.extend(_evaluations(trace_ids[-1], span_ids[-1], ev_ts[-1], ev_names[-1],
                                                   ev_attrs[-1], start + durations[-1]))
                else:  # the shared empty tuple: no list to allocate and collect, seven times a span
                    ev_ts.append(())
                    ev_names.append(())
                    ev_attrs.append(())
                links = span.links
                if links:
                    ln_trace.append([lk.trace_id.hex() for lk in links])
                    ln_span.append([lk.span_id.hex() for lk in links])
                    ln_state.append([lk.trace_state for lk in links])
                    ln_attrs.append([attrs_to_map(lk.attributes) for lk in links])
                else:
                    ln_trace.append(())
                    ln_span.append(())
                    ln_state.append(())
                    ln_attrs.append(())

    return [
        ts, trace_ids, span_ids, parent_ids, trace_states, names, kinds, services, res_attrs,
        scope_names, scope_versions, span_attrs, durations, status_codes, status_msgs,
        ev_ts, ev_names, ev_attrs, ln_trace, ln_span, ln_state, ln_attrs,
    ]


def _with_genai_and_tenant(batch: TraceBatch, data: list[list[Any]],
                           dropped: dict[str, int] | None) -> tuple[list[str], list[list[Any]]]:
    names_out = list(BASE_COLUMNS)
    ts = data[0]
    # The typed GenAI columns, when a GenAI processor filled them; else the column defaults.
    if batch.genai is not None:
        genai = clickhouse_columns(batch.genai, dropped)
        for col in GENAI_COLUMN_NAMES:
            values = genai[col]
            if len(values) != len(ts):
                raise ValueError(f"GenAI column {col} has {len(values)} values for {len(ts)} spans")
            names_out.append(col)
            data.append(values)
    # The batch's tenant (migration 007); the default tenant is the column's default.
    if batch.tenant:
        names_out.append("Tenant")
        data.append([batch.tenant] * len(ts))
    return names_out, data


def _evaluations(trace_id: str, span_id: str, times: Sequence[int], names: Sequence[str],
                 attributes: Sequence[dict[str, str]],
                 span_time: int) -> list[dict[str, Any]]:
    """Score rows of a span's evaluation result events (an event without a time is the span's end)."""
    rows = []
    for at, name, attrs in zip(times, names, attributes, strict=True):
        if name == EVALUATION_EVENT:
            row = evaluation_score(trace_id, span_id, attrs, at or span_time)
            if row is not None:
                rows.append(row)
    return rows
