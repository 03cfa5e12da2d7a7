"""The Jaeger-compatible routes: `GET /api/services`, `GET /api/services/{service}/operations`,
`GET /api/operations`, `GET /api/traces` (search, or `?traceID=...` repeated),
`GET /api/traces/{traceID}` and `GET /api/dependencies`, all answering in Jaeger's envelope."""

# No `from __future__ import annotations`: FastAPI evaluates the parameters' annotations,
# and the access dependency is the factory's argument (a closure FastAPI cannot see in strings).

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from tracehouse.core.auth import Principal
from tracehouse.query.access import OPEN, Access
from fastapi.responses import JSONResponse

from tracehouse.query.jaeger.errors import JaegerError, JaegerRoute, envelope, jaeger_error
from tracehouse.query.jaeger.models import (
    ERROR_RESPONSES,
    JaegerDependenciesResponse,
    JaegerErrorResponse,
    JaegerNamesResponse,
    JaegerOperationsResponse,
    JaegerTracesResponse,
)
from tracehouse.query.jaeger.params import (
    DEFAULT_LIMIT,
    DEFAULT_LOOKBACK_NS,
    DEPENDENCIES_LOOKBACK_NS,
    HOUR_NS,
    MS,
    MAX_LIMIT,
    MAX_NS,
    US,
    parse_go_duration,
    parse_limit,
    parse_lookback,
    parse_micros,
    parse_millis,
    parse_tags,
    parse_trace_id,
)
from tracehouse.query.jaeger.rows import SPAN_KIND, jaeger_trace, traces_from_rows
from tracehouse.query.store import MAX_TRACE_SPANS, JaegerSearchQuery, TraceStore

MAX_TRACE_IDS = 100  # `traceID` values one /api/traces request may name
# Jaeger's API sends no time range for services and operations: they are read from the
# spans of this window (the primary key's prefix keeps it cheap).
NAMES_LOOKBACK_NS = 7 * 24 * HOUR_NS
_SPAN_KIND_FILTERS = ("server", "client", "internal", "producer", "consumer", "unspecified")


async def off_loop(render: Callable[[], JSONResponse]) -> JSONResponse:
    """Build (and serialize) a response on a worker thread: whole traces can be large, and the
    event loop serves ingest too."""
    return await asyncio.to_thread(render)


def jaeger_router(store: TraceStore, *, default_lookback_ns: int = DEFAULT_LOOKBACK_NS,
                  access: Access = OPEN) -> APIRouter:
    router = APIRouter(tags=["jaeger"], route_class=JaegerRoute)

    @router.get("/api/services", response_model=JaegerNamesResponse, responses=ERROR_RESPONSES)
    async def jaeger_services(principal: Annotated[Principal, Depends(access.read)]) -> JSONResponse:
        """Service names with spans in the last 7 days, sorted (Jaeger's API has no time range here)."""
        names = await store.jaeger_services(time.time_ns() - NAMES_LOOKBACK_NS, tenant=principal.tenant)
        return JSONResponse(envelope(names))

    @router.get("/api/services/{service:path}/operations", response_model=JaegerNamesResponse, responses=ERROR_RESPONSES)
    async def jaeger_service_operations(
        principal: Annotated[Principal, Depends(access.read)],
        service: Annotated[str, Path(description="A service name (URL-encoded).")],
    ) -> JSONResponse:
        """Span names of the service's spans in the last 7 days, sorted."""
        operations = await store.jaeger_operations(service, time.time_ns() - NAMES_LOOKBACK_NS,
                                                   tenant=principal.tenant)
        return JSONResponse(envelope(sorted({name for name, _ in operations})))

    @router.get("/api/operations", response_model=JaegerOperationsResponse, responses=ERROR_RESPONSES)
    async def jaeger_operations(
        principal: Annotated[Principal, Depends(access.read)],
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
        operations = await store.jaeger_operations(service, time.time_ns() - NAMES_LOOKBACK_NS,
                                                   tenant=principal.tenant)
        data = []
        for name, kind in operations:
            jaeger_kind = SPAN_KIND.get(kind, "")
            if kind_filter and jaeger_kind != ("" if kind_filter == "unspecified" else kind_filter):
                continue
            data.append({"name": name, "spanKind": jaeger_kind})
        return JSONResponse(envelope(data))

    @router.get("/api/traces", response_model=JaegerTracesResponse, responses=ERROR_RESPONSES)
    async def jaeger_find_traces(
        principal: Annotated[Principal, Depends(access.read)],
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
                        "ignore. Default: 2d, as Jaeger's query service.")] = None,
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
            return await _by_ids(trace_id, principal.tenant)
        if not service or not service.strip():
            raise JaegerError(400, "service: parameter is required")
        end_ns = parse_micros(end, "end") if end else time.time_ns() // US * US
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
            end_ns=min(end_ns + US, MAX_NS),  # `end` is inclusive to the microsecond
            limit=parse_limit(limit) if limit else DEFAULT_LIMIT,
            min_duration_ns=min_ns, max_duration_ns=max_ns, tags=parse_tags(tags, tag or []))
        trace_ids = await store.jaeger_search(query, tenant=principal.tenant)
        rows = await store.traces_spans(trace_ids, MAX_TRACE_SPANS + 1, tenant=principal.tenant)
        return await off_loop(lambda: JSONResponse(envelope(traces_from_rows(trace_ids, rows))))

    async def _by_ids(values: Sequence[str], tenant: str) -> JSONResponse:
        ids = list(dict.fromkeys(parse_trace_id(v, "traceID") for value in values for v in value.split(",")))
        if len(ids) > MAX_TRACE_IDS:
            raise JaegerError(400, f"traceID: at most {MAX_TRACE_IDS} trace ids")
        rows = await store.traces_spans(ids, MAX_TRACE_SPANS + 1, tenant=tenant)
        traces = await asyncio.to_thread(traces_from_rows, ids, rows)
        found = {t["traceID"] for t in traces}
        missing = [{"code": 404, "msg": "trace not found", "traceID": i} for i in ids if i not in found]
        return await off_loop(lambda: JSONResponse(envelope(traces, missing)))

    @router.get("/api/traces/{trace_id}", response_model=JaegerTracesResponse,
                responses={**ERROR_RESPONSES, 404: {"model": JaegerErrorResponse, "description": "No span of this trace."}})
    async def jaeger_get_trace(
        principal: Annotated[Principal, Depends(access.read)],
        trace_id: Annotated[str, Path(description="Up to 32 hex digits, any case (shorter ids are left-padded).")],
        start: Annotated[str | None, Query(
            description="Microseconds since the epoch, as Grafana sends with its \"time range for trace ID "
                        "queries\" option. Checked, not needed: the trace-id lookup table bounds the read, and "
                        "the trace is returned whole.")] = None,
        end: Annotated[str | None, Query(description="Microseconds since the epoch; as `start`.")] = None,
    ) -> JSONResponse:
        """Every span of the trace, once each, ordered by start time."""
        for value, name in ((start, "start"), (end, "end")):
            if value:
                parse_micros(value, name)
        tid = parse_trace_id(trace_id, "traceID")
        rows = await store.trace_spans(tid, MAX_TRACE_SPANS + 1, tenant=principal.tenant)
        if not rows:
            return jaeger_error(404, "trace not found")
        warnings = None
        if len(rows) > MAX_TRACE_SPANS:
            warnings = [f"the trace has more than {MAX_TRACE_SPANS} spans; only the first are shown"]
        return await off_loop(lambda: JSONResponse(envelope([jaeger_trace(tid, rows[:MAX_TRACE_SPANS], warnings)])))

    @router.get("/api/dependencies", response_model=JaegerDependenciesResponse, responses=ERROR_RESPONSES)
    async def jaeger_dependencies(
        principal: Annotated[Principal, Depends(access.read)],
        end_ts: Annotated[str | None, Query(
            alias="endTs", description="Milliseconds since the epoch: the range's end. Default: now.")] = None,
        lookback: Annotated[str | None, Query(
            description="Milliseconds: the range's length. Default: 86400000 (24 h), as Jaeger.")] = None,
        service: Annotated[str | None, Query(description="Only edges from or to this service.")] = None,
    ) -> JSONResponse:
        """Calls between services: a span whose parent span is of another service, started in
        [endTs - lookback, endTs], is one call of the edge (parent's service, its service).
        Edges sorted by parent, then child."""
        end_ns = parse_millis(end_ts, "endTs") if end_ts else time.time_ns() // MS * MS
        lookback_ns = parse_millis(lookback, "lookback") if lookback else DEPENDENCIES_LOOKBACK_NS
        if lookback_ns <= 0:
            raise JaegerError(400, "lookback: must be more than 0 milliseconds")
        rows = await store.jaeger_dependencies(max(0, end_ns - lookback_ns), end_ns, service or "",
                                               tenant=principal.tenant)
        return JSONResponse(envelope([{"parent": r["parent"], "child": r["child"], "callCount": int(r["call_count"])}
                                      for r in rows]))

    return router
