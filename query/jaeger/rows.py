"""Span rows (sql/trace_spans.sql) -> Jaeger's trace JSON, as Jaeger's OTLP translator shows
spans (`span.kind`, `otel.status_code`, `error`, `otel.scope.*`, `w3c.tracestate`, events as
logs, links as FOLLOWS_FROM references), plus the typed GenAI columns as typed tags. Rows are
read into `SpanDetail` by the same `span_from_row` as `/api/v1/traces/{trace_id}`.

Attribute values are stored as text; a tag's type is the one the OTLP export gives the value
(query/otlp.py `typed_value`: GenAI attributes of known type as that type, other text that is
exactly how an int, a bool or a double is stored as that type), mapped as Jaeger's translator
maps OTLP values: int -> `int64`, double -> `float64`, bool -> `bool`, the rest (strings,
arrays, maps, bytes) -> `string` with the stored text. Two exceptions keep the JSON exact: an
inferred int beyond 2^53 (JavaScript's exact integers; the Jaeger UI would round it) unless the
key is a GenAI count, and a non-finite double, stay strings."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from tracehouse.query.jaeger.params import US
from tracehouse.query.models import SpanDetail
from tracehouse.query.otlp import GENAI_INT_KEYS, typed_value
from tracehouse.query.rows import span_from_row
from tracehouse.query.store import MAX_TRACE_SPANS

# The spans table's SpanKind -> Jaeger's `span.kind` tag (Unspecified: no tag).
SPAN_KIND = {"Server": "server", "Client": "client", "Internal": "internal", "Producer": "producer",
             "Consumer": "consumer"}
_STATUS_CODE = {"Ok": "OK", "Error": "ERROR"}
MAX_SAFE_INT = 2**53 - 1  # JavaScript's largest exact integer


def kv(key: str, value: str | bool | int | float) -> dict[str, Any]:
    """Jaeger's KeyValue: `string`, `bool`, `int64` or `float64` by the value's type."""
    if isinstance(value, bool):
        kind = "bool"
    elif isinstance(value, int):
        kind = "int64"
    elif isinstance(value, float):
        kind = "float64"
    else:
        kind = "string"
    return {"key": key, "type": kind, "value": value}


def attribute_tag(key: str, text: str) -> dict[str, Any]:
    """A stored attribute as Jaeger's KeyValue, typed by the module docstring's rule."""
    value = typed_value(text, key)
    kind = value.WhichOneof("value")
    if kind == "bool_value":
        return kv(key, value.bool_value)
    if kind == "int_value" and (abs(value.int_value) <= MAX_SAFE_INT or key in GENAI_INT_KEYS):
        return kv(key, value.int_value)
    if kind == "double_value" and math.isfinite(value.double_value):
        return kv(key, value.double_value)
    return kv(key, text)


def attribute_tags(attributes: Mapping[str, str]) -> list[dict[str, Any]]:
    return [attribute_tag(k, v) for k, v in attributes.items()]


def span_tags(span: SpanDetail) -> list[dict[str, Any]]:
    """Span attributes (typed as the module docstring says), then the OTLP translator's
    conventions, then the GenAI columns. No key twice: an attribute wins over a derived
    `gen_ai.*` or convention tag; the canonical `tracehouse.genai.*` tags win over attributes."""
    tags: dict[str, dict[str, Any]] = {k: attribute_tag(k, v) for k, v in span.attributes.items()}

    def put(key: str, value: str | bool | int | float | None, canonical: bool = False) -> None:
        if value is None or value == "":
            return
        if canonical or key not in tags:
            tags[key] = kv(key, value)

    put("otel.scope.name", span.scope.name)
    put("otel.scope.version", span.scope.version)
    put("span.kind", SPAN_KIND.get(span.kind))
    put("otel.status_code", _STATUS_CODE.get(span.status.code))
    if span.status.code == "Error":
        put("error", True)
    put("otel.status_description", span.status.message)
    put("w3c.tracestate", span.trace_state)

    g: Any = span.genai  # the GenAI model is built from core/genai.py at import time
    put("gen_ai.provider.name", g.provider)
    put("gen_ai.operation.name", g.operation)
    put("gen_ai.request.model", g.request_model)
    put("gen_ai.response.model", g.response_model)
    token_counts = {"input_tokens": g.input_tokens, "output_tokens": g.output_tokens,
                    "cached_input_tokens": g.cached_input_tokens, "reasoning_tokens": g.reasoning_tokens,
                    "total_tokens": g.total_tokens}
    canonical: dict[str, str | bool | int | float | None] = {
        "span_kind": g.span_kind,
        **token_counts,
        # meaningful next to token counts only (the column is false on every other span)
        "tokens_estimated": g.tokens_estimated if g.tokens_estimated or any(
            v is not None for v in token_counts.values()) else None,
        "input_cost_usd": g.input_cost_usd,
        "output_cost_usd": g.output_cost_usd,
        "total_cost_usd": g.total_cost_usd,
        "cost_source": g.cost_source,
        "prompt.name": g.prompt_name,
        "prompt.version": g.prompt_version,
        "session_id": g.session_id,
        "user_id": g.user_id,
    }
    for name, value in canonical.items():
        put(f"tracehouse.genai.{name}", value, canonical=True)
    return list(tags.values())


def span_logs(span: SpanDetail) -> list[dict[str, Any]]:
    """Events -> logs: `event` = the event's name (unless an attribute is called `event`),
    then its attributes."""
    logs = []
    for event in span.events:
        fields = []
        if event.name and "event" not in event.attributes:
            fields.append(kv("event", event.name))
        fields += attribute_tags(event.attributes)
        logs.append({"timestamp": int(event.time_unix_nano) // US, "fields": fields})
    return logs


def span_references(span: SpanDetail) -> list[dict[str, str]]:
    """The parent as CHILD_OF (first, as Jaeger expects), then each link as FOLLOWS_FROM
    (link attributes have no place in a Jaeger reference)."""
    refs = []
    if span.parent_span_id:
        refs.append({"refType": "CHILD_OF", "traceID": span.trace_id, "spanID": span.parent_span_id})
    refs += [{"refType": "FOLLOWS_FROM", "traceID": link.trace_id, "spanID": link.span_id}
             for link in span.links]
    return refs


def jaeger_span(span: SpanDetail, process_id: str) -> dict[str, Any]:
    start_ns = int(span.start_time_unix_nano)
    return {
        "traceID": span.trace_id,
        "spanID": span.span_id,
        "flags": 1,  # sampled: it was recorded and exported
        "operationName": span.name,
        "references": span_references(span),
        "startTime": start_ns // US,
        "duration": span.duration_ns // US,
        "tags": span_tags(span),
        "logs": span_logs(span),
        "processID": process_id,
        "warnings": None,
    }


def jaeger_trace(trace_id: str, rows: Sequence[Mapping[str, Any]],
                 warnings: list[str] | None = None) -> dict[str, Any]:
    """Rows of sql/trace_spans.sql of one trace -> Jaeger's trace:
    one process per distinct (service, resource attributes), `p1`, `p2`... in span order."""
    process_ids: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}
    processes: dict[str, dict[str, Any]] = {}
    spans = []
    for row in rows:
        span = span_from_row(row)
        key = (span.service_name, tuple(sorted(span.resource_attributes.items())))
        process_id = process_ids.get(key)
        if process_id is None:
            process_id = process_ids[key] = f"p{len(process_ids) + 1}"
            processes[process_id] = {"serviceName": span.service_name,
                                     "tags": attribute_tags(span.resource_attributes)}
        spans.append(jaeger_span(span, process_id))
    return {"traceID": trace_id, "spans": spans, "processes": processes, "warnings": warnings or None}


def traces_from_rows(trace_ids: Sequence[str], rows: Sequence[Mapping[str, Any]],
                     max_spans: int = MAX_TRACE_SPANS) -> list[dict[str, Any]]:
    """Rows of trace_spans.sql (trace by trace) -> Jaeger traces in `trace_ids` order. Past
    `max_spans` rows the response is cut: the trace cut short says so in `warnings`, later
    traces are left out."""
    cut = len(rows) > max_spans
    kept = rows[:max_spans]
    by_trace: dict[str, list[Mapping[str, Any]]] = {}
    for row in kept:
        by_trace.setdefault(row["TraceId"], []).append(row)
    last = kept[-1]["TraceId"] if cut and kept else None
    out = []
    for trace_id in trace_ids:
        spans = by_trace.get(trace_id)
        if spans:
            warnings = [f"the response holds at most {max_spans} spans; this trace was cut"] \
                if trace_id == last else None
            out.append(jaeger_trace(trace_id, spans, warnings))
    return out
