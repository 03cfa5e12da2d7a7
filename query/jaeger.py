"""Jaeger's HTTP query API over the spans table: what jaeger-query serves and what
Grafana's built-in Jaeger datasource and the Jaeger UI call.

Routes (see query/README.md, "Jaeger-compatible API"):

- `GET /api/services`, `GET /api/services/{service}/operations`, `GET /api/operations`
- `GET /api/traces` (search; or `?traceID=...` repeated) and `GET /api/traces/{traceID}`

Every answer is Jaeger's envelope `{"data", "total", "limit", "offset", "errors"}`, errors
included (`data: null`, `errors: [{"code", "msg"}]`): a bad parameter is a 400 whose message
names it, an unknown trace a 404, ClickHouse failing a 503. The rest of the query API keeps
its own `{"error": {...}}` shape; `_JaegerRoute` catches everything a Jaeger route raises,
and the app's 404/405 handler asks `is_jaeger_path` first.

Spans are shown as Jaeger's OTLP translator shows them (`span.kind`, `otel.status_code`,
`error`, `otel.scope.*`, `w3c.tracestate`, events as logs, links as FOLLOWS_FROM references),
plus the typed GenAI columns as typed tags (`gen_ai.*` when the attribute is missing,
`tracehouse.genai.*` always when known). Rows are read into `SpanDetail` by the same
`span_from_row` as `/api/v1/traces/{trace_id}`.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from tracehouse.query.rows import span_from_row
from tracehouse.query.models import SpanDetail
from tracehouse.query.store import MAX_TRACE_SPANS, JaegerSearchQuery, StoreError, TraceStore

log = structlog.get_logger("tracehouse.query.jaeger")

_US = 1_000
_NS = 1_000_000_000
_HOUR_NS = 3600 * _NS
_MAX_NS = 2**63 - 1

DEFAULT_LIMIT = 20  # traces, as the Jaeger UI
MAX_LIMIT = 1500    # the Jaeger UI's largest choice; larger limits are capped to it
MAX_TAGS = 32
MAX_TRACE_IDS = 100  # `traceID` values one /api/traces request may name
# Jaeger's API sends no time range for services and operations: they are read from the
# spans of this window (the primary key's prefix keeps it cheap).
NAMES_LOOKBACK_NS = 7 * 24 * _HOUR_NS

JAEGER_PATHS = ("/api/services", "/api/operations", "/api/traces")

# The spans table's SpanKind -> Jaeger's `span.kind` tag (Unspecified: no tag).
SPAN_KIND = {"Server": "server", "Client": "client", "Internal": "internal", "Producer": "producer",
             "Consumer": "consumer"}
_SPAN_KIND_FILTERS = ("server", "client", "internal", "producer", "consumer", "unspecified")
_STATUS_CODE = {"Ok": "OK", "Error": "ERROR"}


def is_jaeger_path(path: str) -> bool:
    """A request path the Jaeger routes own (their errors use Jaeger's envelope)."""
    return any(path == p or path.startswith(p + "/") for p in JAEGER_PATHS)


# ------------------------------------------------------------------------------ envelope


class JaegerError(Exception):
    def __init__(self, code: int, msg: str):
        super().__init__(msg)
        self.code = code
        self.msg = msg


def envelope(data: Any, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    total = len(data) if isinstance(data, list) else 0
    return {"data": data, "total": total, "limit": 0, "offset": 0, "errors": errors or None}


def jaeger_error(code: int, msg: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(envelope(None, [{"code": code, "msg": msg}]), status_code=code,
                        headers=dict(headers) if headers else None)


class _JaegerRoute(APIRoute):
    """Turns whatever a Jaeger route raises into Jaeger's error envelope (never the app's
    `{"error": ...}` shape, never a stack trace)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def jaeger_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except JaegerError as exc:
                return jaeger_error(exc.code, exc.msg)
            except StoreError as exc:
                return jaeger_error(503, f"the trace store could not answer: {exc}", {"Retry-After": "5"})
            except RequestValidationError as exc:
                errors = exc.errors()
                first = errors[0] if errors else {}
                loc = [str(p) for p in first.get("loc", ()) if p not in ("query", "path", "body", "header")]
                message = str(first.get("msg", "invalid request"))
                return jaeger_error(400, f"{loc[0]}: {message}" if loc else message)
            except StarletteHTTPException as exc:
                return jaeger_error(exc.status_code, str(exc.detail), exc.headers)
            except Exception as exc:
                log.error("Jaeger API request failed", path=request.url.path, error=repr(exc))
                return jaeger_error(500, "internal error (see the service log)")

        return jaeger_handler


# ------------------------------------------------------------------------------ parameters


_TRACE_ID_RE = re.compile(r"^[0-9a-fA-F]{1,32}$")
_MICROS_RE = re.compile(r"^\d{1,19}$")
_LIMIT_RE = re.compile(r"^\d+$")
_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNITS_NS = {"ns": 1, "us": _US, "µs": _US, "μs": _US, "ms": 1_000_000, "s": _NS, "m": 60 * _NS,
                "h": _HOUR_NS}
_DAYS_RE = re.compile(r"^(\d+(?:\.\d+)?)(d|w)$")


def parse_trace_id(text: str, parameter: str = "traceID") -> str:
    """Up to 32 hex digits, any case (Jaeger's 64-bit ids are left-padded) -> 32 lowercase."""
    value = text.strip()
    if not _TRACE_ID_RE.match(value):
        raise JaegerError(400, f"{parameter}: expected a trace id of 1 to 32 hex digits, got {text!r}")
    trace_id = value.lower().rjust(32, "0")
    if trace_id == "0" * 32:
        raise JaegerError(400, f"{parameter}: the all-zero trace id is invalid")
    return trace_id


def parse_go_duration(text: str, parameter: str) -> int:
    """A Go duration (`500us`, `100ms`, `1.5s`, `2m`, `1h30m`; `0`) -> whole nanoseconds."""
    value = text.strip()
    if value == "0":
        return 0
    total = Decimal(0)
    pos = 0
    while pos < len(value):
        m = _GO_DURATION_PART.match(value, pos)
        if not m:
            break
        try:
            total += Decimal(m[1]) * _GO_UNITS_NS[m[2]]
        except InvalidOperation:
            break
        pos = m.end()
    if pos == 0 or pos != len(value):
        raise JaegerError(400, f"{parameter}: expected a duration such as 500us, 100ms, 1.5s, 2m or 1h, "
                               f"got {text!r}")
    ns = int(total)
    if ns > _MAX_NS:
        raise JaegerError(400, f"{parameter}: {text!r} is too large")
    return ns


def parse_lookback(text: str) -> int | None:
    """The Jaeger UI's `lookback` (`1h`, `2d`, `1w`, any Go duration) -> ns; `custom` or empty
    -> None (start/end decide)."""
    value = text.strip()
    if value in ("", "custom"):
        return None
    m = _DAYS_RE.match(value)
    if m:
        ns = int(Decimal(m[1]) * (24 if m[2] == "d" else 168) * _HOUR_NS)
    else:
        ns = parse_go_duration(value, "lookback")
    if ns <= 0 or ns > _MAX_NS:
        raise JaegerError(400, f"lookback: must be a positive duration such as 1h or 2d, got {text!r}")
    return ns


def parse_micros(text: str, parameter: str) -> int:
    """Microseconds since the epoch (what the Jaeger UI and Grafana send) -> ns."""
    value = text.strip()
    if not _MICROS_RE.match(value) or int(value) * _US > _MAX_NS:
        raise JaegerError(400, f"{parameter}: expected microseconds since the epoch (e.g. "
                               f"{time.time_ns() // _US}), got {text!r}")
    return int(value) * _US


def parse_limit(text: str) -> int:
    """Jaeger's `limit`: 0 or empty = the default, above MAX_LIMIT = MAX_LIMIT."""
    value = text.strip()
    if not value:
        return DEFAULT_LIMIT
    if not _LIMIT_RE.match(value):
        raise JaegerError(400, f"limit: expected a whole number of traces (0 = default {DEFAULT_LIMIT}), "
                               f"got {text!r}")
    n = int(value)
    return DEFAULT_LIMIT if n == 0 else min(n, MAX_LIMIT)


def _json_tag_value(key: str, value: Any) -> str:
    """A JSON value -> the string the span's tag would show (attributes are stored as strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    raise JaegerError(400, f"tags: the value of {key!r} must be a string, number or boolean")


_LOGFMT_PAIR = re.compile(r'\s*([^\s="]+)=("(?:[^"\\]|\\.)*"|[^\s"]*)')


def parse_logfmt(text: str) -> list[tuple[str, str]]:
    """`k=v k2="v 2"` -> pairs (double-quoted values take JSON-style escapes)."""
    pairs = []
    pos = 0
    while pos < len(text):
        if not text[pos:].strip():
            break
        m = _LOGFMT_PAIR.match(text, pos)
        if not m or (m.end() < len(text) and not text[m.end()].isspace()):
            raise JaegerError(400, "tags: expected a JSON object ({\"key\": \"value\"}) or logfmt "
                                   f"(key=value key2=\"value 2\"), got {text!r}")
        key, raw = m[1], m[2]
        if raw.startswith('"'):
            try:
                raw = json.loads(raw)
            except ValueError:
                raise JaegerError(400, f"tags: bad quoted value for {key!r} in {text!r}") from None
        pairs.append((key, raw))
        pos = m.end()
    return pairs


def parse_tags(tags: str | None, tag: Sequence[str]) -> list[tuple[str, str]]:
    """`tags` (a JSON object, as the Jaeger UI and Grafana send, or logfmt) and Jaeger's
    repeatable `tag=key:value` -> (key, value) pairs, all of which must hold on one span."""
    pairs: list[tuple[str, str]] = []
    text = (tags or "").strip()
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except ValueError as exc:
            raise JaegerError(400, f"tags: not a JSON object ({exc}): {text!r}") from None
        if not isinstance(obj, dict):
            raise JaegerError(400, f"tags: expected a JSON object of key -> value, got {text!r}")
        pairs += [(str(k), _json_tag_value(str(k), v)) for k, v in obj.items()]
    elif text:
        pairs += parse_logfmt(text)
    for item in tag:
        key, sep, value = item.partition(":")
        if not sep or not key.strip():
            raise JaegerError(400, f"tag: expected key:value, got {item!r}")
        pairs.append((key.strip(), value))
    if any(not k for k, _ in pairs):
        raise JaegerError(400, "tags: a tag key is empty")
    if len(pairs) > MAX_TAGS:
        raise JaegerError(400, f"tags: at most {MAX_TAGS} tags")
    return pairs


# ------------------------------------------------------------------------------ spans -> Jaeger


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


def span_tags(span: SpanDetail) -> list[dict[str, Any]]:
    """Span attributes (stored as strings), then the OTLP translator's conventions, then
    the GenAI columns. No key twice: an attribute wins over a derived `gen_ai.*` or
    convention tag; the canonical `tracehouse.genai.*` tags win over attributes."""
    tags: dict[str, dict[str, Any]] = {k: kv(k, v) for k, v in span.attributes.items()}

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

    g = span.genai
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
        fields += [kv(k, v) for k, v in event.attributes.items()]
        logs.append({"timestamp": int(event.time_unix_nano) // _US, "fields": fields})
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
        "startTime": start_ns // _US,
        "duration": span.duration_ns // _US,
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
                                     "tags": [kv(k, v) for k, v in span.resource_attributes.items()]}
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


# ------------------------------------------------------------------------------ OpenAPI models


class JaegerErrorItem(BaseModel):
    code: int = Field(description="HTTP status code.")
    msg: str = Field(description="What went wrong; for a 400 it names the parameter.")
    traceID: str | None = Field(default=None, description="The trace a `traceID` lookup did not find.")


class JaegerErrorResponse(BaseModel):
    data: None = None
    total: int = 0
    limit: int = 0
    offset: int = 0
    errors: list[JaegerErrorItem]


class JaegerKeyValue(BaseModel):
    key: str
    type: str = Field(description="`string`, `bool`, `int64` or `float64`.")
    value: str | bool | int | float


class JaegerReference(BaseModel):
    refType: str = Field(description="`CHILD_OF` (the parent) or `FOLLOWS_FROM` (an OpenTelemetry link).")
    traceID: str
    spanID: str


class JaegerLog(BaseModel):
    timestamp: int = Field(description="Microseconds since the epoch.")
    fields: list[JaegerKeyValue] = Field(description="`event` = the event name, then its attributes.")


class JaegerSpan(BaseModel):
    traceID: str = Field(description="32 lowercase hex characters.")
    spanID: str = Field(description="16 lowercase hex characters.")
    flags: int
    operationName: str
    references: list[JaegerReference]
    startTime: int = Field(description="Microseconds since the epoch (nanoseconds truncated).")
    duration: int = Field(description="Microseconds (nanoseconds truncated).")
    tags: list[JaegerKeyValue]
    logs: list[JaegerLog]
    processID: str
    warnings: list[str] | None


class JaegerProcess(BaseModel):
    serviceName: str
    tags: list[JaegerKeyValue] = Field(description="The resource attributes.")


class JaegerTrace(BaseModel):
    traceID: str
    spans: list[JaegerSpan]
    processes: dict[str, JaegerProcess]
    warnings: list[str] | None


class _Envelope(BaseModel):
    total: int
    limit: int = 0
    offset: int = 0
    errors: list[JaegerErrorItem] | None = None


class JaegerTracesResponse(_Envelope):
    data: list[JaegerTrace]


class JaegerNamesResponse(_Envelope):
    data: list[str]


class JaegerOperation(BaseModel):
    name: str
    spanKind: str = Field(description="`server`, `client`, `internal`, `producer`, `consumer` or \"\".")


class JaegerOperationsResponse(_Envelope):
    data: list[JaegerOperation]


_BAD: dict[int | str, dict[str, Any]] = {400: {"model": JaegerErrorResponse, "description": "A parameter is invalid; the message names it."},
        503: {"model": JaegerErrorResponse, "description": "ClickHouse could not answer."}}


# ------------------------------------------------------------------------------ routes


def jaeger_router(store: TraceStore, *, default_lookback_ns: int = _HOUR_NS) -> APIRouter:
    router = APIRouter(tags=["jaeger"], route_class=_JaegerRoute)

    @router.get("/api/services", response_model=JaegerNamesResponse, responses=_BAD)
    async def jaeger_services() -> JSONResponse:
        """Service names with spans in the last 7 days, sorted (Jaeger's API has no time range here)."""
        names = await store.jaeger_services(time.time_ns() - NAMES_LOOKBACK_NS)
        return JSONResponse(envelope(names))

    @router.get("/api/services/{service:path}/operations", response_model=JaegerNamesResponse, responses=_BAD)
    async def jaeger_service_operations(
        service: Annotated[str, Path(description="A service name (URL-encoded).")],
    ) -> JSONResponse:
        """Span names of the service's spans in the last 7 days, sorted."""
        operations = await store.jaeger_operations(service, time.time_ns() - NAMES_LOOKBACK_NS)
        return JSONResponse(envelope(sorted({name for name, _ in operations})))

    @router.get("/api/operations", response_model=JaegerOperationsResponse, responses=_BAD)
    async def jaeger_operations(
        service: Annotated[str | None, Query(description="A service name (required).")] = None,
        span_kind: Annotated[str | None, Query(
            alias="spanKind", description="Only this kind: `server`, `client`, `internal`, `producer`, "
                                          "`consumer` or `unspecified`.")] = None,
    ) -> JSONResponse:
        """(span name, span kind) pairs of the service's spans in the last 7 days, by name."""
        if not service:
            raise JaegerError(400, "service: parameter is required")
        kind_filter = (span_kind or "").strip().lower()
        if kind_filter and kind_filter not in _SPAN_KIND_FILTERS:
            raise JaegerError(400, f"spanKind: expected one of {', '.join(_SPAN_KIND_FILTERS)}, got {span_kind!r}")
        operations = await store.jaeger_operations(service, time.time_ns() - NAMES_LOOKBACK_NS)
        data = []
        for name, kind in operations:
            jaeger_kind = SPAN_KIND.get(kind, "")
            if kind_filter and jaeger_kind != ("" if kind_filter == "unspecified" else kind_filter):
                continue
            data.append({"name": name, "spanKind": jaeger_kind})
        return JSONResponse(envelope(data))

    @router.get("/api/traces", response_model=JaegerTracesResponse, responses=_BAD)
    async def jaeger_find_traces(
        service: Annotated[str | None, Query(
            description="A service name; required unless `traceID` is given.")] = None,
        operation: Annotated[str | None, Query(description="A span name of that service.")] = None,
        tags: Annotated[str | None, Query(
            description="Tags one span must all have: a JSON object `{\"k\": \"v\"}` (what the Jaeger UI "
                        "and Grafana send) or logfmt `k=v k2=\"v 2\"`. Matched against span attributes, "
                        "resource attributes and the derived tags (`error`, `span.kind`, "
                        "`otel.status_code`, `gen_ai.*`, `tracehouse.genai.*`).")] = None,
        tag: Annotated[list[str] | None, Query(description="`key:value`, repeatable (Jaeger's older form).")] = None,
        start: Annotated[str | None, Query(
            description="Microseconds since the epoch (inclusive). Default: `end` minus `lookback`.")] = None,
        end: Annotated[str | None, Query(
            description="Microseconds since the epoch (inclusive). Default: now.")] = None,
        lookback: Annotated[str | None, Query(
            description="Range when `start` is missing: `1h`, `2d`, `1w` or a Go duration; `custom` = "
                        "ignore. Default: the configured lookback (1h).")] = None,
        limit: Annotated[str | None, Query(
            description=f"Most traces returned; 0 or missing = {DEFAULT_LIMIT}, capped at {MAX_LIMIT}.")] = None,
        min_duration: Annotated[str | None, Query(
            alias="minDuration", description="Go duration (`500us`, `100ms`, `1.5s`, `2m`): the matching "
                                             "span lasted at least this.")] = None,
        max_duration: Annotated[str | None, Query(
            alias="maxDuration", description="Go duration: the matching span lasted at most this.")] = None,
        trace_id: Annotated[list[str] | None, Query(
            alias="traceID", description=f"Return these traces (repeatable, at most {MAX_TRACE_IDS}); the "
                                         "search parameters are then ignored.")] = None,
    ) -> JSONResponse:
        """Traces with a span of `service` (and `operation`) that started in [start, end], lasted
        within [minDuration, maxDuration] and has every tag; whole traces, newest first."""
        if trace_id:
            return await _by_ids(trace_id)
        if not service or not service.strip():
            raise JaegerError(400, "service: parameter is required")
        end_ns = parse_micros(end, "end") if end else time.time_ns() // _US * _US
        lookback_ns = parse_lookback(lookback) if lookback else None
        if start:
            start_ns = parse_micros(start, "start")
        else:
            start_ns = max(0, end_ns - (lookback_ns or default_lookback_ns))
        if start_ns > end_ns:
            raise JaegerError(400, "start: must not be after end")
        min_ns = parse_go_duration(min_duration, "minDuration") if min_duration else 0
        max_ns = parse_go_duration(max_duration, "maxDuration") if max_duration else None
        if max_ns is not None and max_ns < min_ns:
            raise JaegerError(400, "maxDuration: must not be less than minDuration")
        query = JaegerSearchQuery(
            service=service, operation=operation or "", start_ns=start_ns,
            end_ns=min(end_ns + _US, _MAX_NS),  # `end` is inclusive to the microsecond
            limit=parse_limit(limit) if limit else DEFAULT_LIMIT,
            min_duration_ns=min_ns, max_duration_ns=max_ns, tags=parse_tags(tags, tag or []))
        trace_ids = await store.jaeger_search(query)
        rows = await store.traces_spans(trace_ids, MAX_TRACE_SPANS + 1)
        return JSONResponse(envelope(traces_from_rows(trace_ids, rows)))

    async def _by_ids(values: Sequence[str]) -> JSONResponse:
        ids = list(dict.fromkeys(parse_trace_id(v, "traceID") for value in values for v in value.split(",")))
        if len(ids) > MAX_TRACE_IDS:
            raise JaegerError(400, f"traceID: at most {MAX_TRACE_IDS} trace ids")
        rows = await store.traces_spans(ids, MAX_TRACE_SPANS + 1)
        traces = traces_from_rows(ids, rows)
        found = {t["traceID"] for t in traces}
        missing = [{"code": 404, "msg": "trace not found", "traceID": i} for i in ids if i not in found]
        return JSONResponse(envelope(traces, missing))

    @router.get("/api/traces/{trace_id}", response_model=JaegerTracesResponse,
                responses={**_BAD, 404: {"model": JaegerErrorResponse, "description": "No span of this trace."}})
    async def jaeger_get_trace(
        trace_id: Annotated[str, Path(description="Up to 32 hex digits, any case (shorter ids are left-padded).")],
    ) -> JSONResponse:
        """Every span of the trace, once each, ordered by start time."""
        tid = parse_trace_id(trace_id, "traceID")
        rows = await store.trace_spans(tid, MAX_TRACE_SPANS + 1)
        if not rows:
            return jaeger_error(404, "trace not found")
        warnings = None
        if len(rows) > MAX_TRACE_SPANS:
            warnings = [f"the trace has more than {MAX_TRACE_SPANS} spans; only the first are shown"]
        return JSONResponse(envelope([jaeger_trace(tid, rows[:MAX_TRACE_SPANS], warnings)]))

    return router
