"""Jaeger's API v3 over HTTP, as its query service's gateway serves it (apiv3/http_gateway.go):
`GET /api/v3/services`, `GET /api/v3/operations`, `GET /api/v3/traces` (FindTraces) and
`GET /api/v3/traces/{trace_id}` (GetTrace). Traces are OTLP/JSON in `{"result": TracesData}`
(query/otlp.py renders them, as the OTLP export); errors are the gateway's
`{"error": {"httpCode", "message"}}`, and a search or trace with nothing to show is its 404
"No traces found"."""

# No `from __future__ import annotations`: FastAPI evaluates the parameters' annotations,
# and the access dependency is the factory's argument (a closure FastAPI cannot see in strings).

import time
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse

from tracehouse.core.auth import Principal
from tracehouse.query.access import OPEN, Access
from tracehouse.query.jaeger.errors import JaegerError, JaegerV3Route
from tracehouse.query.jaeger.models import (
    V3_ERROR_RESPONSES,
    JaegerV3ErrorResponse,
    JaegerV3OperationsResponse,
    JaegerV3ServicesResponse,
    JaegerV3TracesResponse,
)
from tracehouse.query.jaeger.params import MAX_NS
from tracehouse.query.jaeger.router import NAMES_LOOKBACK_NS, off_loop
from tracehouse.query.jaeger.rows import SPAN_KIND
from tracehouse.query.jaeger.v3_params import (
    SPAN_KINDS,
    malformed,
    parse_bool,
    parse_find_traces,
    parse_rfc3339,
    parse_trace_id,
    pick,
)
from tracehouse.query.otlp import traces_data
from tracehouse.query.store import MAX_TRACE_SPANS, JaegerSearchQuery, TraceStore

NOT_FOUND = "No traces found"  # the gateway's message for a search or trace without spans
WARNINGS_ATTRIBUTE = "@jaeger@warnings"  # where Jaeger puts a span's warnings (jptrace)
_NOT_FOUND_RESPONSE: dict[int | str, dict[str, Any]] = {404: {"model": JaegerV3ErrorResponse, "description": NOT_FOUND}}


def _text(description: str, alias: str) -> Any:
    return Query(alias=alias, description=description)


def _by_trace(trace_ids: Sequence[str], rows: Sequence[Mapping[str, Any]],
              max_spans: int) -> list[list[Mapping[str, Any]]]:
    """Rows of trace_spans.sql -> one list per trace in `trace_ids` order, at most `max_spans`
    rows in all (later ones left out)."""
    by_trace: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows[:max_spans]:
        by_trace.setdefault(row["TraceId"], []).append(row)
    return [by_trace[t] for t in trace_ids if t in by_trace]


def traces_result(trace_ids: Sequence[str], rows: Sequence[Mapping[str, Any]], *, adjusted: bool,
                  max_spans: int = MAX_TRACE_SPANS) -> dict[str, Any]:
    """The gateway's `{"result": TracesData}` of the traces' rows (trace_spans.sql, trace by
    trace); past `max_spans` rows it is cut, and its last span says so in Jaeger's warnings
    attribute. No rows: the gateway's 404."""
    traces = _by_trace(trace_ids, rows, max_spans)
    if not traces:
        raise JaegerError(404, NOT_FOUND)
    data = traces_data(traces, adjusted=adjusted)
    if len(rows) > max_spans:
        last = data["resourceSpans"][-1]["scopeSpans"][-1]["spans"][-1]
        warning = f"the response holds at most {max_spans} spans; the spans after this one were left out"
        last.setdefault("attributes", []).append(
            {"key": WARNINGS_ATTRIBUTE, "value": {"arrayValue": {"values": [{"stringValue": warning}]}}})
    return {"result": data}


def jaeger_v3_router(store: TraceStore, *, access: Access = OPEN) -> APIRouter:
    router = APIRouter(tags=["jaeger-v3"], route_class=JaegerV3Route)

    @router.get("/api/v3/services", response_model=JaegerV3ServicesResponse, responses=V3_ERROR_RESPONSES)
    async def v3_services(principal: Annotated[Principal, Depends(access.read)]) -> JSONResponse:
        """Service names with spans in the last 7 days, sorted (the API has no time range here)."""
        names = await store.jaeger_services(time.time_ns() - NAMES_LOOKBACK_NS, tenant=principal.tenant)
        return JSONResponse({"services": names})

    @router.get("/api/v3/operations", response_model=JaegerV3OperationsResponse, responses=V3_ERROR_RESPONSES)
    async def v3_operations(
        principal: Annotated[Principal, Depends(access.read)],
        service: Annotated[str | None, Query(description="A service name (required).")] = None,
        span_kind: Annotated[str | None, _text(
            f"Only this kind: {', '.join(SPAN_KINDS)} (`internal` includes unspecified spans, which the "
            "gateway shows as `internal`).", "spanKind")] = None,
        span_kind_old: Annotated[str | None, _text("`spanKind`'s older name.", "span_kind")] = None,
    ) -> JSONResponse:
        """(span name, span kind) pairs of the service's spans in the last 7 days, by name."""
        kind, kind_name = pick({"spanKind": span_kind, "span_kind": span_kind_old}, "spanKind", "span_kind")
        if kind and kind not in SPAN_KINDS:
            raise malformed(kind_name, f"expected one of {', '.join(SPAN_KINDS)}, got {kind!r}")
        if not service:
            raise malformed("service", "a service name is required")
        pairs = await store.jaeger_operations(service, time.time_ns() - NAMES_LOOKBACK_NS, tenant=principal.tenant)
        operations = []
        for name, stored_kind in pairs:
            shown = SPAN_KIND.get(stored_kind) or "internal"  # the gateway's default for no kind
            if not kind or shown == kind:
                operations.append({"name": name, "spanKind": shown})
        unique = list({(o["name"], o["spanKind"]): o for o in operations}.values())
        return JSONResponse({"operations": unique})

    @router.get("/api/v3/traces", response_model=JaegerV3TracesResponse,
                responses={**V3_ERROR_RESPONSES, **_NOT_FOUND_RESPONSE})
    async def v3_find_traces(
        principal: Annotated[Principal, Depends(access.read)],
        service_name: Annotated[str | None, _text("A service name (required).", "query.serviceName")] = None,
        service_name_old: Annotated[str | None, _text("Older name of query.serviceName.",
                                                      "query.service_name")] = None,
        operation_name: Annotated[str | None, _text("A span name of that service.", "query.operationName")] = None,
        operation_name_old: Annotated[str | None, _text("Older name of query.operationName.",
                                                        "query.operation_name")] = None,
        attributes: Annotated[str | None, _text(
            "Attributes one span must all have: a JSON object of strings, `{\"http.status_code\":\"200\"}`; "
            "matched as `tags` of `/api/traces` (span and resource attributes, derived tags).",
            "query.attributes")] = None,
        start_min: Annotated[str | None, _text("RFC 3339 (required): spans starting at or after.",
                                               "query.startTimeMin")] = None,
        start_min_old: Annotated[str | None, _text("Older name of query.startTimeMin.",
                                                   "query.start_time_min")] = None,
        start_max: Annotated[str | None, _text("RFC 3339 (required): spans starting at or before.",
                                               "query.startTimeMax")] = None,
        start_max_old: Annotated[str | None, _text("Older name of query.startTimeMax.",
                                                   "query.start_time_max")] = None,
        duration_min: Annotated[str | None, _text("Go duration: the span lasted at least this.",
                                                  "query.durationMin")] = None,
        duration_min_old: Annotated[str | None, _text("Older name of query.durationMin.",
                                                      "query.duration_min")] = None,
        duration_max: Annotated[str | None, _text("Go duration: the span lasted at most this.",
                                                  "query.durationMax")] = None,
        duration_max_old: Annotated[str | None, _text("Older name of query.durationMax.",
                                                      "query.duration_max")] = None,
        search_depth: Annotated[str | None, _text("Most traces returned: default 100, capped at 1500.",
                                                  "query.searchDepth")] = None,
        search_depth_old: Annotated[str | None, _text("Older name of query.searchDepth.",
                                                      "query.search_depth")] = None,
        num_traces: Annotated[str | None, _text("Older name of query.searchDepth.", "query.num_traces")] = None,
        raw_traces: Annotated[str | None, _text("`true`: spans as stored (attributes unsorted).",
                                                "query.rawTraces")] = None,
        raw_traces_old: Annotated[str | None, _text("Older name of query.rawTraces.", "query.raw_traces")] = None,
        filter_: Annotated[str | None, _text("Jaeger's structured filter: not supported (400).",
                                             "query.filter")] = None,
    ) -> JSONResponse:
        """Traces with a span of the service (and operation) that started in [startTimeMin,
        startTimeMax], lasted within [durationMin, durationMax] and has every attribute: whole
        traces, newest first, as one OTLP TracesData."""
        given = {
            "query.serviceName": service_name, "query.service_name": service_name_old,
            "query.operationName": operation_name, "query.operation_name": operation_name_old,
            "query.attributes": attributes, "query.filter": filter_,
            "query.startTimeMin": start_min, "query.start_time_min": start_min_old,
            "query.startTimeMax": start_max, "query.start_time_max": start_max_old,
            "query.durationMin": duration_min, "query.duration_min": duration_min_old,
            "query.durationMax": duration_max, "query.duration_max": duration_max_old,
            "query.searchDepth": search_depth, "query.search_depth": search_depth_old,
            "query.num_traces": num_traces, "query.rawTraces": raw_traces, "query.raw_traces": raw_traces_old,
        }
        p = parse_find_traces(given)
        query = JaegerSearchQuery(
            service=p.service, operation=p.operation, start_ns=p.start_ns,
            end_ns=min(p.end_ns + 1, MAX_NS),  # startTimeMax is inclusive; the SQL's end is not
            limit=p.limit, min_duration_ns=p.min_duration_ns, max_duration_ns=p.max_duration_ns, tags=p.tags)
        trace_ids = await store.jaeger_search(query, tenant=principal.tenant)
        rows = await store.traces_spans(trace_ids, MAX_TRACE_SPANS + 1, tenant=principal.tenant)
        return await off_loop(lambda: JSONResponse(traces_result(trace_ids, rows, adjusted=not p.raw_traces)))

    @router.get("/api/v3/traces/{trace_id:path}", response_model=JaegerV3TracesResponse,
                responses={**V3_ERROR_RESPONSES, **_NOT_FOUND_RESPONSE})
    async def v3_get_trace(
        principal: Annotated[Principal, Depends(access.read)],
        trace_id: Annotated[str, Path(description="Hex (1 to 32 digits) or the base64 of the id's bytes "
                                                  "(URL-encoded).")],
        start_time: Annotated[str | None, _text(
            "RFC 3339. Checked, not needed: the trace-id lookup table bounds the read and the trace comes "
            "whole.", "startTime")] = None,
        start_time_old: Annotated[str | None, _text("Older name of startTime.", "start_time")] = None,
        end_time: Annotated[str | None, _text("RFC 3339; as startTime.", "endTime")] = None,
        end_time_old: Annotated[str | None, _text("Older name of endTime.", "end_time")] = None,
        raw_traces: Annotated[str | None, _text("`true`: spans as stored (attributes unsorted).",
                                                "rawTraces")] = None,
        raw_traces_old: Annotated[str | None, _text("Older name of rawTraces.", "raw_traces")] = None,
    ) -> JSONResponse:
        """Every span of the trace, once each, by start time, as one OTLP TracesData."""
        given = {"startTime": start_time, "start_time": start_time_old, "endTime": end_time,
                 "end_time": end_time_old, "rawTraces": raw_traces, "raw_traces": raw_traces_old}
        tid = parse_trace_id(trace_id)
        for canonical, old in (("startTime", "start_time"), ("endTime", "end_time")):
            value, name = pick(given, canonical, old)
            if value:
                parse_rfc3339(value, name)
        raw_text, raw_name = pick(given, "rawTraces", "raw_traces")
        raw = parse_bool(raw_text, raw_name) if raw_text else False
        rows = await store.trace_spans(tid, MAX_TRACE_SPANS + 1, tenant=principal.tenant)
        return await off_loop(lambda: JSONResponse(traces_result([tid], rows, adjusted=not raw)))

    return router

