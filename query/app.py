"""The query HTTP API (FastAPI): trace search, trace detail, GenAI usage metrics, the
prompt registry, health and metrics.

Every error is JSON, `{"error": {"code": ..., "message": ..., "parameter": ...}}`: a bad
parameter is a 400 naming it (FastAPI's default 422 is replaced), an unknown trace a 404,
and a ClickHouse failure a 503 with a one-line reason (never a stack trace).
"""


import asyncio
import base64
import binascii
import calendar
import json
import math
import re
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

import structlog
from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from tracehouse.core.health import PROMETHEUS_CONTENT_TYPE, HealthSource, readiness_body
from tracehouse.query.config import QueryApiConfig
from tracehouse.query.jaeger import is_jaeger_path, jaeger_error, jaeger_router
from tracehouse.query.models import (
    ErrorResponse,
    GenAIMetricsResponse,
    GenAIPoint,
    GenAISeries,
    GenAIUsage,
    HealthResponse,
    LatencyMs,
    PromptDetailResponse,
    PromptListResponse,
    PromptSummary,
    PromptUsageTotals,
    PromptVersionDetail,
    PromptVersionUsage,
    ReadyResponse,
    TraceDetailResponse,
    TraceSearchResponse,
)
from tracehouse.query.rows import format_ns, span_from_row, summary_from_row, totals_of
from tracehouse.query.store import (
    GROUP_DIMENSIONS,
    MAX_DATETIME_S,
    MAX_TRACE_SPANS,
    MetricsQuery,
    SearchQuery,
    StoreError,
    TraceStore,
)

log = structlog.get_logger("tracehouse.query.app")

MAX_ATTRIBUTE_FILTERS = 32
# DateTime64(9) ends at 2262-04-11; nanoseconds since the epoch must fit an Int64.
_MAX_NS = 2**63 - 1
_NS = 1_000_000_000
# GenAI metrics: the rollup's resolution, the default number of points, the most a response may have.
_MINUTE = 60
DEFAULT_POINTS = 120
MAX_POINTS = 10_000
MAX_METRIC_ROWS = 200_000  # points of every series together
MAX_PROMPT_LIMIT = 1000


# ------------------------------------------------------------------------------ host


# ------------------------------------------------------------------------------ errors


class ApiError(Exception):
    def __init__(self, code: int, message: str, parameter: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.parameter = parameter


def error_response(code: int, message: str, parameter: str | None = None,
                   headers: Mapping[str, str] | None = None) -> JSONResponse:
    error: dict[str, Any] = {"code": code, "message": message}
    if parameter is not None:
        error["parameter"] = parameter
    return JSONResponse({"error": error}, status_code=code, headers=dict(headers) if headers else None)


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "A parameter is invalid; `error.parameter` names it."},
    503: {"model": ErrorResponse, "description": "ClickHouse could not answer."},
}


# ------------------------------------------------------------------------------ time


_RFC3339_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$")
_NUMBER_RE = re.compile(r"^\d+(?:\.\d+)?$")


def parse_time_ns(text: str, parameter: str = "time") -> int:
    """RFC 3339 (nanoseconds kept) or unix seconds (a decimal number) -> ns since the epoch."""
    value = text.strip()
    if _NUMBER_RE.match(value):
        try:
            ns = int(Decimal(value) * _NS)
        except InvalidOperation:
            ns = -1
    else:
        m = _RFC3339_RE.match(value)
        if not m:
            raise ApiError(400, f"{parameter}: expected an RFC 3339 timestamp (2026-01-02T15:04:05Z) "
                                f"or unix seconds, got {text!r}", parameter)
        year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
        try:
            datetime(year, month, day, hour, minute, second)
        except ValueError as exc:
            raise ApiError(400, f"{parameter}: invalid date or time in {text!r}: {exc}", parameter) from None
        seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
        zone = m[8]
        if zone not in ("Z", "z"):
            sign = 1 if zone[0] == "+" else -1
            seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
        fraction = (m[7] or "")[:9].ljust(9, "0")
        ns = seconds * _NS + int(fraction)
    if not 0 <= ns <= _MAX_NS:
        raise ApiError(400, f"{parameter}: {text!r} is outside 1970-01-01 .. 2262-04-11", parameter)
    return ns


# ------------------------------------------------------------------------------ cursor


_TRACE_ID_RE = re.compile(r"^[0-9a-fA-F]{32}$")


def encode_cursor(start_ns: int, trace_id: str, range_start_ns: int, range_end_ns: int) -> str:
    """Opaque keyset position: the last row's (start, trace id) and the searched range, so
    later pages keep the same range even when `end` defaulted to "now"."""
    payload = {"v": 1, "t": start_ns, "id": trace_id, "s": range_start_ns, "e": range_end_ns}
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str, int, int]:
    bad = ApiError(400, "cursor: not a cursor this API returned (pass `next_cursor` unchanged)", "cursor")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError):
        raise bad from None
    if not isinstance(data, dict) or data.get("v") != 1:
        raise bad
    t, trace_id, s, e = data.get("t"), data.get("id"), data.get("s"), data.get("e")
    ints = (t, s, e)
    if not all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= _MAX_NS for x in ints):
        raise bad
    if not isinstance(trace_id, str) or not _TRACE_ID_RE.match(trace_id):
        raise bad
    assert isinstance(t, int) and isinstance(s, int) and isinstance(e, int)
    return t, trace_id.lower(), s, e


# ------------------------------------------------------------------------------ GenAI metrics


_STEP_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d)?$")
_STEP_UNITS = {None: 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_step(text: str) -> int:
    """`60s`, `5m`, `1h`, `1d`, `1.5h` or plain seconds -> whole seconds, a multiple of 60."""
    m = _STEP_RE.match(text.strip())
    if not m:
        raise ApiError(400, f"step: expected a duration such as 60s, 5m or 1h (or seconds), got {text!r}", "step")
    seconds = Decimal(m[1]) * _STEP_UNITS[m[2]]
    if seconds <= 0 or seconds != seconds.to_integral_value() or seconds % _MINUTE:
        raise ApiError(400, f"step: must be a positive whole number of minutes (the rollup's resolution), "
                            f"got {text!r}", "step")
    if seconds > MAX_DATETIME_S:
        raise ApiError(400, f"step: {text!r} is too large", "step")
    return int(seconds)


def default_step(range_ns: int) -> int:
    """The smallest whole number of minutes giving at most DEFAULT_POINTS buckets."""
    minutes = -(-range_ns // (DEFAULT_POINTS * _MINUTE * _NS))
    return max(1, minutes) * _MINUTE


def parse_group_by(values: Sequence[str]) -> list[str]:
    out: list[str] = []
    for value in values:
        for item in value.split(","):
            name = item.strip()
            if not name:
                continue
            if name not in GROUP_DIMENSIONS:
                raise ApiError(400, f"group_by: unknown dimension {name!r}; use {', '.join(GROUP_DIMENSIONS)}",
                               "group_by")
            if name not in out:
                out.append(name)
    return out


def latency_of(row: Mapping[str, Any]) -> LatencyMs | None:
    """Percentiles from the merged t-digest, avg = duration sum / requests; null without calls."""
    requests = int(row["requests"])
    quantiles = [float(q) for q in row["duration_quantiles_ns"]]
    if requests == 0 or len(quantiles) != 4 or any(math.isnan(q) for q in quantiles):
        return None
    p50, p90, p95, p99 = (q / 1e6 for q in quantiles)
    return LatencyMs(p50=p50, p90=p90, p95=p95, p99=p99, avg=int(row["duration_sum_ns"]) / requests / 1e6)


_USAGE_COUNTS = ("spans", "requests", "errors", "input_tokens", "output_tokens", "cached_input_tokens",
                 "reasoning_tokens", "total_tokens", "estimated_tokens", "estimated_requests", "unpriced_requests")
_USAGE_COSTS = ("cost_usd", "input_cost_usd", "output_cost_usd")


def usage_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {name: int(row[name]) for name in _USAGE_COUNTS}
    fields.update({name: float(row[name]) for name in _USAGE_COSTS})  # exact Decimal -> nearest double
    fields["latency_ms"] = latency_of(row)
    return fields


def _zero_usage() -> GenAIUsage:
    zeros: dict[str, Any] = {**dict.fromkeys(_USAGE_COUNTS, 0), **dict.fromkeys(_USAGE_COSTS, 0.0)}
    return GenAIUsage(**zeros, latency_ms=None)


def metrics_from_rows(rows: Sequence[Mapping[str, Any]], group_by: Sequence[str]) -> tuple[
        list[GenAISeries], GenAIUsage]:
    """Rows of sql/genai_metrics.sql (grand total, series totals, then points) -> series."""
    totals = _zero_usage()
    series: dict[tuple[str, ...], GenAISeries] = {}
    for row in rows:
        if row["all_groups"]:
            totals = GenAIUsage(**usage_fields(row))
            continue
        key = tuple(str(row[f"g_{d}"]) for d in group_by)
        if row["all_buckets"]:
            series[key] = GenAISeries(group=dict(zip(group_by, key, strict=True)), points=[],
                                      totals=GenAIUsage(**usage_fields(row)))
        else:
            series[key].points.append(GenAIPoint(time=format_ns(int(row["bucket_s"]) * _NS), **usage_fields(row)))
    return list(series.values()), totals


# ------------------------------------------------------------------------------ prompts


_NUMERIC_VERSION_RE = re.compile(r"[0-9]{1,18}")


def version_sort_key(numeric: bool) -> Any:
    """Order of a prompt's versions (the same rule as sql/prompt_list.sql): "" first; then by
    number when every non-empty version is a number, else by registration time (first use when
    unregistered); ties by the version string."""
    def key(item: tuple[str, int | None]) -> tuple[bool, int, str]:
        version, when_ns = item
        return (version != "", int(version) if numeric and version else when_ns or 0, version)
    return key


def sort_versions(versions: Sequence[tuple[str, int | None]]) -> list[str]:
    """(version, registered_at_ns or first_seen_ns) pairs -> versions oldest first."""
    numeric = all(v == "" or _NUMERIC_VERSION_RE.fullmatch(v) for v, _ in versions)
    return [v for v, _ in sorted(versions, key=version_sort_key(numeric))]


def _time_or_none(ns: Any) -> str | None:
    return None if ns is None else format_ns(int(ns))


def prompt_summary_from_row(row: Mapping[str, Any]) -> PromptSummary:
    return PromptSummary(
        name=row["name"],
        version_count=int(row["version_count"]),
        latest_version=row["latest_version"],
        source=row["source"],
        registered_at=_time_or_none(row["registered_at_ns"]),
        first_seen=_time_or_none(row["first_seen_ns"]),
        last_seen=_time_or_none(row["last_seen_ns"]),
        usage=PromptUsageTotals(spans=int(row["spans"]), requests=int(row["requests"]),
                                total_tokens=int(row["total_tokens"]), cost_usd=float(row["cost_usd"])),
    )


def prompt_versions(registry: Sequence[Mapping[str, Any]],
                    usage: Sequence[Mapping[str, Any]]) -> list[PromptVersionDetail]:
    """Registry entries and usage rows of one prompt, joined by version and sorted; a version
    seen only in use has a null template."""
    entries = {r["version"]: r for r in registry}
    used = {r["version"]: r for r in usage}
    names = list(dict.fromkeys([*entries, *used]))
    when = {v: (entries[v]["registered_at_ns"] if v in entries else used[v]["first_seen_ns"]) for v in names}
    out = []
    for version in sort_versions([(v, None if when[v] is None else int(when[v])) for v in names]):
        entry, use = entries.get(version), used.get(version)
        if use is None:
            counts = dict.fromkeys(("spans", "requests", "errors", "input_tokens", "output_tokens", "total_tokens"), 0)
            usage_model = PromptVersionUsage(**counts, cost_usd=0.0, latency_ms=None)
        else:
            usage_model = PromptVersionUsage(
                spans=int(use["spans"]), requests=int(use["requests"]), errors=int(use["errors"]),
                input_tokens=int(use["input_tokens"]), output_tokens=int(use["output_tokens"]),
                total_tokens=int(use["total_tokens"]), cost_usd=float(use["cost_usd"]), latency_ms=latency_of(use))
        out.append(PromptVersionDetail(
            version=version,
            template=entry["template"] if entry else None,
            template_hash=entry["template_hash"] if entry else None,
            source=entry["source"] if entry else None,
            registered_at=_time_or_none(entry["registered_at_ns"]) if entry else None,
            first_seen=_time_or_none(use["first_seen_ns"]) if use else None,
            last_seen=_time_or_none(use["last_seen_ns"]) if use else None,
            usage=usage_model,
        ))
    return out


# ------------------------------------------------------------------------------ app


def _parse_attributes(values: Sequence[str]) -> list[tuple[str, str]]:
    if len(values) > MAX_ATTRIBUTE_FILTERS:
        raise ApiError(400, f"attr: at most {MAX_ATTRIBUTE_FILTERS} attribute filters", "attr")
    pairs = []
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ApiError(400, f"attr: expected key=value, got {item!r}", "attr")
        pairs.append((key.strip(), value))
    return pairs


def create_app(store: TraceStore, health: HealthSource, *, settings: QueryApiConfig | None = None) -> FastAPI:
    cfg = settings or QueryApiConfig()
    lookback_ns = int(cfg.default_lookback * _NS)
    app = FastAPI(
        title="tracehouse query API",
        version="1",
        description="Search GenAI traces and read them span by span; GenAI usage metrics and the "
                    "prompt registry from the rollups. Every error is "
                    "`{\"error\": {\"code\", \"message\", \"parameter\"}}`. A span stored twice "
                    "(same trace id and span id) is shown and counted once.",
    )

    # -- errors ----------------------------------------------------------------------
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.code, exc.message, exc.parameter)

    @app.exception_handler(StoreError)
    async def _store_error(_: Request, exc: StoreError) -> JSONResponse:
        return error_response(503, f"the trace store could not answer: {exc}", headers={"Retry-After": "5"})

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("query", "path", "body", "header")]
        parameter = loc[0] if loc else None
        message = str(first.get("msg", "invalid request"))
        return error_response(400, f"{parameter}: {message}" if parameter else message, parameter)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("query API request failed", error=repr(exc))
        return error_response(500, "internal error (see the service log)")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if is_jaeger_path(request.url.path):  # e.g. a 404/405 under /api/traces: Jaeger's envelope
            return jaeger_error(exc.status_code, str(exc.detail), exc.headers)
        return error_response(exc.status_code, str(exc.detail), headers=exc.headers)

    # -- health ----------------------------------------------------------------------
    @app.get("/healthz", response_model=HealthResponse, tags=["health"],
             responses={503: {"model": HealthResponse, "description": "A component failed fatally."}})
    async def healthz() -> JSONResponse:
        """Liveness: 200 unless a component of the service failed fatally."""
        ok = health.healthy()
        return JSONResponse({"status": "ok" if ok else "unhealthy"}, status_code=200 if ok else 503)

    @app.get("/readyz", response_model=ReadyResponse, tags=["health"],
             responses={503: {"model": ReadyResponse,
                              "description": "Not ready; see the component statuses."}})
    async def readyz() -> JSONResponse:
        """Readiness: 200 once every component started and none failed permanently."""
        status, body = readiness_body(health)
        return JSONResponse(body, status_code=status)

    @app.get("/metrics", tags=["health"], response_class=Response,
             responses={200: {"content": {PROMETHEUS_CONTENT_TYPE: {}},
                              "description": "The pipeline's own metrics, Prometheus text format."}})
    async def metrics() -> Response:
        """The pipeline's own metrics (received, refused, dropped, queued, exported)."""
        return Response(health.telemetry.render(), media_type=PROMETHEUS_CONTENT_TYPE)

    # -- traces ----------------------------------------------------------------------
    @app.get("/api/v1/traces", response_model=TraceSearchResponse, tags=["traces"], responses=_ERRORS)
    async def search_traces(
        start: Annotated[str | None, Query(
            description="Start of the range (inclusive): RFC 3339 or unix seconds. "
                        "Default: `end` minus the configured lookback (1h).")] = None,
        end: Annotated[str | None, Query(
            description="End of the range (exclusive): RFC 3339 or unix seconds. Default: now.")] = None,
        service: Annotated[str | None, Query(description="A span's service.name.")] = None,
        span_name: Annotated[str | None, Query(description="A span's exact name.")] = None,
        status: Annotated[Literal["ok", "error", "unset"] | None, Query(
            description="`error`: some span has status Error. `ok`: no span has status Error. "
                        "`unset`: no span set a status at all.")] = None,
        provider: Annotated[str | None, Query(description="A span's GenAI provider (e.g. `openai`).")] = None,
        model: Annotated[str | None, Query(description="A span's GenAI request or response model.")] = None,
        prompt: Annotated[str | None, Query(description="A span's GenAI prompt name.")] = None,
        session: Annotated[str | None, Query(description="A span's GenAI session id.")] = None,
        user: Annotated[str | None, Query(description="A span's GenAI user id.")] = None,
        min_duration_ms: Annotated[float | None, Query(
            ge=0, description="Minimum trace duration in milliseconds.")] = None,
        min_tokens: Annotated[int | None, Query(
            ge=0, description="Minimum trace total tokens (input + output when totals are missing).")] = None,
        min_cost_usd: Annotated[float | None, Query(
            ge=0, description="Minimum trace total cost in USD.")] = None,
        attr: Annotated[list[str] | None, Query(
            description="`key=value`, repeatable: a span attribute or resource attribute equals the value. "
                        "All span-level filters must hold on the same span.")] = None,
        limit: Annotated[int, Query(ge=1, le=cfg.max_limit, description="Traces per page.")] = 20,
        cursor: Annotated[str | None, Query(
            description="`next_cursor` of the previous page; keeps that page's time range.")] = None,
    ) -> TraceSearchResponse:
        """Find traces: a trace matches when one of its spans in the range passes every
        span-level filter (service, span_name, provider, model, prompt, session, user, attr);
        status, min_duration_ms, min_tokens and min_cost_usd apply to the whole trace.
        Newest first; page with `cursor`."""
        keyset: tuple[int, str] | None = None
        range_start = range_end = None
        if cursor:
            cursor_start, cursor_trace, range_start, range_end = decode_cursor(cursor)
            keyset = (cursor_start, cursor_trace)
        end_ns = parse_time_ns(end, "end") if end else range_end if range_end is not None else time.time_ns()
        if start:
            start_ns = parse_time_ns(start, "start")
        elif range_start is not None:
            start_ns = range_start
        else:
            start_ns = max(0, end_ns - lookback_ns)
        if start_ns >= end_ns:
            raise ApiError(400, "start: must be before end", "start")
        query = SearchQuery(
            start_ns=start_ns, end_ns=end_ns, limit=limit + 1,
            service=service or "", span_name=span_name or "", status=status or "",
            provider=provider or "", model=model or "", prompt=prompt or "",
            session=session or "", user=user or "",
            min_duration_ns=int((min_duration_ms or 0) * 1_000_000),
            min_tokens=min_tokens or 0, min_cost_usd=min_cost_usd or 0.0,
            attributes=_parse_attributes(attr or []), cursor=keyset,
        )
        rows = await store.search(query)
        page = [summary_from_row(r) for r in rows[:limit]]
        next_cursor = None
        if len(rows) > limit and page:
            last = page[-1]
            next_cursor = encode_cursor(int(last.start_time_unix_nano), last.trace_id, start_ns, end_ns)
        return TraceSearchResponse(traces=page, next_cursor=next_cursor, start=format_ns(start_ns),
                                   end=format_ns(end_ns), limit=limit)

    @app.get("/api/v1/traces/{trace_id}", response_model=TraceDetailResponse, tags=["traces"],
             responses={**_ERRORS,
                        404: {"model": ErrorResponse, "description": "No span of this trace is stored."}})
    async def get_trace(
        trace_id: Annotated[str, Path(description="32 hex characters, any case.")],
    ) -> TraceDetailResponse:
        """Every span of a trace, once each, ordered by start time, with GenAI fields and totals."""
        if not _TRACE_ID_RE.match(trace_id):
            raise ApiError(400, f"trace_id: expected 32 hex characters, got {trace_id!r}", "trace_id")
        tid = trace_id.lower()
        if tid == "0" * 32:
            raise ApiError(400, "trace_id: the all-zero trace id is invalid", "trace_id")
        rows = await store.trace_spans(tid, MAX_TRACE_SPANS + 1)
        if not rows:
            raise ApiError(404, f"trace {tid} not found")
        kept = rows[:MAX_TRACE_SPANS]
        return TraceDetailResponse(trace_id=tid, spans=[span_from_row(r) for r in kept],
                                   totals=totals_of(kept),
                                   truncated=len(rows) > MAX_TRACE_SPANS)

    # -- GenAI metrics ---------------------------------------------------------------
    @app.get("/api/v1/metrics/genai", response_model=GenAIMetricsResponse, tags=["genai"], responses=_ERRORS)
    async def genai_metrics(
        start: Annotated[str | None, Query(
            description="Start of the range: RFC 3339 or unix seconds, rounded down to a multiple of `step`. "
                        "Default: `end` minus the configured lookback (1h).")] = None,
        end: Annotated[str | None, Query(
            description="End of the range (exclusive), rounded up to a multiple of `step`. Default: now.")] = None,
        step: Annotated[str | None, Query(
            description="Bucket width: `60s`, `5m`, `1h`, `1d` or seconds; a whole number of minutes. Default: "
                        f"the smallest whole number of minutes giving at most {DEFAULT_POINTS} buckets. "
                        f"At most {MAX_POINTS} buckets.")] = None,
        group_by: Annotated[list[str] | None, Query(
            description="Comma-separated (or repeated) dimensions: " + ", ".join(f"`{d}`" for d in GROUP_DIMENSIONS)
                        + ". `model` is the request model, else the response model; `prompt` the prompt "
                          "name. Default: one series.")] = None,
        service: Annotated[str | None, Query(description="Only this service.name.")] = None,
        provider: Annotated[str | None, Query(description="Only this GenAI provider (e.g. `openai`).")] = None,
        model: Annotated[str | None, Query(description="Only calls whose request or response model is this.")] = None,
        prompt: Annotated[str | None, Query(description="Only spans linked to this prompt name.")] = None,
        prompt_version: Annotated[str | None, Query(description="Only this prompt version.")] = None,
    ) -> GenAIMetricsResponse:
        """Requests, errors, tokens, cost and model-call latency over time, read from the
        per-minute usage rollup (never the spans table). Only buckets with data are returned."""
        end_ns = parse_time_ns(end, "end") if end else time.time_ns()
        start_ns = parse_time_ns(start, "start") if start else max(0, end_ns - lookback_ns)
        if start_ns >= end_ns:
            raise ApiError(400, "start: must be before end", "start")
        step_s = parse_step(step) if step is not None else default_step(end_ns - start_ns)
        dimensions = parse_group_by(group_by or [])
        start_s = start_ns // _NS // step_s * step_s
        end_s = -(-end_ns // (step_s * _NS)) * step_s
        points = (end_s - start_s) // step_s
        if points > MAX_POINTS:
            raise ApiError(400, f"step: {points} buckets of {step_s}s; at most {MAX_POINTS} (use a larger step "
                                f"or a shorter range)", "step")
        query = MetricsQuery(start_s=start_s, end_s=end_s, step_s=step_s, group_by=dimensions,
                             service=service or "", provider=provider or "", model=model or "",
                             prompt=prompt or "", prompt_version=prompt_version or "",
                             max_rows=MAX_METRIC_ROWS + 1)
        rows = await store.genai_metrics(query)
        if len(rows) > MAX_METRIC_ROWS:
            raise ApiError(400, f"step: more than {MAX_METRIC_ROWS} points over all series; use a larger step, "
                                f"fewer group_by dimensions or filters", "step")
        series, totals = metrics_from_rows(rows, dimensions)
        return GenAIMetricsResponse(start=format_ns(start_s * _NS), end=format_ns(end_s * _NS), step_seconds=step_s,
                                    group_by=dimensions, series=series, totals=totals)

    # -- prompts ---------------------------------------------------------------------
    @app.get("/api/v1/prompts", response_model=PromptListResponse, tags=["prompts"], responses=_ERRORS)
    async def list_prompts(
        q: Annotated[str | None, Query(description="Only names containing this (case-insensitive).")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PROMPT_LIMIT, description="Prompts per page.")] = 100,
        offset: Annotated[int, Query(ge=0, le=2**63 - 1, description="Prompts to skip (by name order).")] = 0,
    ) -> PromptListResponse:
        """The prompt registry, one item per name: versions, latest version, first/last use and
        all-time usage. Reads the registry table and the usage rollup (never the spans table)."""
        rows = await store.prompt_list(q or "", limit, offset)
        if rows:
            total = int(rows[0]["total_names"])
        elif offset:  # past the last page: count without it
            first = await store.prompt_list(q or "", 1, 0)
            total = int(first[0]["total_names"]) if first else 0
        else:
            total = 0
        return PromptListResponse(prompts=[prompt_summary_from_row(r) for r in rows], total=total,
                                  limit=limit, offset=offset)

    @app.get("/api/v1/prompts/{name:path}", response_model=PromptDetailResponse, tags=["prompts"],
             responses={**_ERRORS, 404: {"model": ErrorResponse,
                                         "description": "No registry entry and no use of this prompt."}})
    async def get_prompt(
        name: Annotated[str, Path(description="The prompt name, URL-encoded (dots, dashes and slashes allowed).")],
        start: Annotated[str | None, Query(
            description="Count usage from this time (RFC 3339 or unix seconds, rounded down to the minute). "
                        "Default: all time.")] = None,
        end: Annotated[str | None, Query(
            description="Count usage before this time (rounded up to the minute). Default: all time.")] = None,
    ) -> PromptDetailResponse:
        """Every version of a prompt: template, registration, first/last use and usage (cost,
        tokens, latency) per version; versions seen in use but never registered are included
        with a null template."""
        start_ns = parse_time_ns(start, "start") if start else None
        end_ns = parse_time_ns(end, "end") if end else None
        if start_ns is not None and end_ns is not None and start_ns >= end_ns:
            raise ApiError(400, "start: must be before end", "start")
        start_s = 0 if start_ns is None else start_ns // _NS // _MINUTE * _MINUTE
        end_s = MAX_DATETIME_S if end_ns is None else min(MAX_DATETIME_S, -(-end_ns // (_MINUTE * _NS)) * _MINUTE)
        registry, usage = await asyncio.gather(store.prompt_registry(name), store.prompt_usage(name, start_s, end_s))
        if not registry and not usage:
            raise ApiError(404, f"prompt {name!r} not found")
        versions = prompt_versions(registry, usage)
        return PromptDetailResponse(
            name=name, latest_version=versions[-1].version, versions=versions,
            start=None if start_ns is None else format_ns(start_s * _NS),
            end=None if end_ns is None else format_ns(end_s * _NS))

    # -- Jaeger-compatible API (/api/services, /api/operations, /api/traces): query/jaeger.py
    app.include_router(jaeger_router(store, default_lookback_ns=lookback_ns))

    def openapi() -> dict[str, Any]:
        # A bad parameter is a 400 here (documented per route), never FastAPI's 422.
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
