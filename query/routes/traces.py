"""`GET /api/v1/traces` (search, keyset-paged), `GET /api/v1/traces/export` (every span the
search finds, streamed: query/export.py) and `GET /api/v1/traces/{trace_id}` (one trace, or
with `format=otlp` its spans as OTLP/JSON: query/otlp.py)."""

# No `from __future__ import annotations`: FastAPI evaluates the parameters' annotations,
# and some name the factory's arguments (a closure FastAPI cannot see in strings).

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response, StreamingResponse

from tracehouse.core.auth import Principal
from tracehouse.query.access import OPEN, Access
from tracehouse.query.config import QueryApiConfig
from tracehouse.query.errors import ERROR_RESPONSES, ApiError
from tracehouse.query.export import BODIES, FORMATS, export_limit, filename, prepend, span_batches, trace_id_pages
from tracehouse.query.models import (
    ErrorResponse,
    MlflowTraceInfo,
    Score,
    TraceDeletedResponse,
    TraceDetailResponse,
    TraceSearchResponse,
)
from tracehouse.query.params import Cursor, encode_cursor, parse_trace_id
from tracehouse.query.rows import (
    attach_log_events,
    format_ns,
    mlflow_info_from_row,
    score_from_row,
    search_totals,
    span_json,
    summary_from_row,
    totals_of,
)
from tracehouse.query.otlp import trace_otlp_json
from tracehouse.query.search import SearchLimits, export_search_openapi, parse_search, search_openapi
from tracehouse.query.store import MAX_TRACE_SPANS, TraceStore


SPANS_PER_CHUNK = 500


async def detail_json(trace_id: str, rows: list[dict[str, Any]], truncated: bool,
                      scores: Sequence[Score] = (), mlflow: MlflowTraceInfo | None = None) -> AsyncIterator[bytes]:
    """TraceDetailResponse as JSON, produced piece by piece; each span row is dropped once
    it is written. Scores and the MLflow trace info (small, read beside the spans) come last."""
    totals = await asyncio.to_thread(lambda: totals_of(rows).model_dump_json().encode())
    yield b'{"trace_id":"' + trace_id.encode() + b'","spans":['
    for start in range(0, len(rows), SPANS_PER_CHUNK):
        yield await asyncio.to_thread(_spans_json, rows, start, start == 0)
    extras = b'"scores":[' + b",".join(s.model_dump_json().encode() for s in scores) + b'],"mlflow":' + (
        b"null" if mlflow is None else mlflow.model_dump_json().encode())
    yield b'],"totals":' + totals + b',"truncated":' + (b"true" if truncated else b"false") + b"," + extras + b"}"


def _spans_json(rows: list[dict[str, Any]], start: int, first: bool) -> bytes:
    end = min(len(rows), start + SPANS_PER_CHUNK)
    parts = [span_json(rows[i]) for i in range(start, end)]
    rows[start:end] = [{}] * (end - start)  # free the rows as they are written
    return (b"" if first else b",") + b",".join(parts)


def traces_router(store: TraceStore, settings: QueryApiConfig, access: Access = OPEN) -> APIRouter:
    limits = SearchLimits.of(settings)
    export_openapi = export_search_openapi(limits)
    router = APIRouter(tags=["traces"])

    @router.get("/api/v1/traces", response_model=TraceSearchResponse, responses=ERROR_RESPONSES,
                openapi_extra=search_openapi(limits))
    async def search_traces(
        request: Request,
        principal: Annotated[Principal, Depends(access.read)],
    ) -> TraceSearchResponse:
        """Find traces: a trace matches when one of its spans in the range passes every
        span-level filter (service, span_name, span_kind, provider, model, prompt,
        prompt_version, attr); status, session, user and the duration, token and cost bounds
        apply to the whole trace. Newest first by default (`sort`, `order`); page with `cursor`.
        The parameters are parsed by query/search.py (`parse_search`)."""
        query = parse_search(request.query_params.multi_items(), limits)
        rows = await store.search(query, tenant=principal.tenant)
        limit = query.limit
        page = [summary_from_row(r) for r in rows[:limit]]
        next_cursor = None
        if len(rows) > limit and page:
            next_cursor = encode_cursor(Cursor(query.sort, query.order, int(rows[limit - 1]["sort_key"]),
                                               page[-1].trace_id, query.start_ns, query.end_ns))
        return TraceSearchResponse(traces=page, totals=search_totals(rows, first_page=query.cursor is None),
                                   next_cursor=next_cursor, start=format_ns(query.start_ns),
                                   end=format_ns(query.end_ns), limit=limit, sort=query.sort, order=query.order)

    # Before `/api/v1/traces/{trace_id}`, which would take `export` for a trace id.
    @router.get("/api/v1/traces/export", response_class=StreamingResponse, openapi_extra=export_openapi, responses={
        **ERROR_RESPONSES,
        200: {"description": "The spans, streamed: one JSON object per line (`format=jsonl`, each the "
                             "span shape of `GET /api/v1/traces/{trace_id}`), or a Parquet file of the "
                             "same fields, typed (`format=parquet`).",
              "content": {f.media_type: {} for f in FORMATS.values()}}})
    async def export_traces(
        request: Request,
        principal: Annotated[Principal, Depends(access.read)],
        fmt: Annotated[Literal["jsonl", "parquet"], Query(
            alias="format", description="`jsonl` (one span per line) or `parquet`.")] = "jsonl",
    ) -> StreamingResponse:
        """Every span of every trace the search finds (the parameters of `GET /api/v1/traces`),
        trace by trace in the search's order, each trace's spans by start time. Streamed: the
        traces are read a page at a time, whatever their number."""
        items = request.query_params.multi_items()
        search = parse_search([(k, v) for k, v in items if k != "limit"], limits)
        limit = export_limit([v for k, v in items if k == "limit"])
        tenant = principal.tenant
        pages = trace_id_pages(store, search, limit, tenant=tenant)
        # The first page before the response starts: a failing store is then a 503, not a cut body.
        first = await anext(pages)
        export_format = FORMATS[fmt]
        body = BODIES[fmt](span_batches(store, prepend(first, pages), tenant=tenant))
        return StreamingResponse(body, media_type=export_format.media_type, headers={
            "content-disposition": f'attachment; filename="{filename(search, export_format)}"'})

    @router.get("/api/v1/traces/{trace_id}", response_model=TraceDetailResponse,
                responses={**ERROR_RESPONSES,
                           200: {"description": "The trace (`format=json`), or with `format=otlp` an OTLP/JSON "
                                                "`ExportTraceServiceRequest` to send to any OTLP/HTTP endpoint."},
                           404: {"model": ErrorResponse, "description": "No span of this trace is stored."}})
    async def get_trace(
        principal: Annotated[Principal, Depends(access.read)],
        trace_id: Annotated[str, Path(description="32 hex characters, any case.")],
        fmt: Annotated[Literal["json", "otlp"], Query(
            alias="format", description="`json`: this API's trace (below). `otlp`: the spans as OTLP/JSON, "
                                        "as a download (`trace-<id>.otlp.json`).")] = "json",
    ) -> Response:
        """Every span of a trace, once each, ordered by start time, with GenAI fields, the GenAI
        events sent as log records on each span (its messages read from them when the span has none), and totals;
        the trace's scores (the API's, MLflow assessments, evaluation events) and, when an MLflow
        client logged it, its MLflow trace info. `format=otlp`: the spans only, as OTLP/JSON."""
        tid = parse_trace_id(trace_id)
        tenant = principal.tenant
        if fmt == "otlp":
            return await otlp_trace(tid, tenant)
        rows, score_rows, info, log_events = await asyncio.gather(
            store.trace_spans(tid, MAX_TRACE_SPANS + 1, tenant=tenant),
            store.trace_scores(tid, tenant=tenant), store.trace_mlflow(tid, tenant=tenant),
            store.trace_genai_events(tid, tenant=tenant))
        if not rows:
            raise ApiError(404, f"trace {tid} not found")
        truncated = len(rows) > MAX_TRACE_SPANS
        del rows[MAX_TRACE_SPANS:]
        attach_log_events(rows, log_events)
        # Streamed: spans are converted a chunk at a time on a worker thread, so a trace of
        # 100k spans neither blocks the event loop (ingest shares it) nor holds every span's
        # model and the whole body in memory at once.
        return StreamingResponse(detail_json(tid, rows, truncated, [score_from_row(r) for r in score_rows],
                                             mlflow_info_from_row(info)), media_type="application/json")

    async def otlp_trace(tid: str, tenant: str) -> Response:
        rows = await store.trace_spans(tid, MAX_TRACE_SPANS + 1, tenant=tenant)
        if not rows:
            raise ApiError(404, f"trace {tid} not found")
        truncated = len(rows) > MAX_TRACE_SPANS
        del rows[MAX_TRACE_SPANS:]
        body = await asyncio.to_thread(trace_otlp_json, rows)
        return Response(body, media_type="application/json", headers={
            "content-disposition": f'attachment; filename="trace-{tid}.otlp.json"',
            # As the JSON trace's `truncated`: the request holds the first MAX_TRACE_SPANS spans.
            "x-tracehouse-truncated": "true" if truncated else "false"})

    @router.delete("/api/v1/traces/{trace_id}", response_model=TraceDeletedResponse,
                   responses={**ERROR_RESPONSES,
                              404: {"model": ErrorResponse, "description": "No span of this trace is stored."}})
    async def delete_trace(
        principal: Annotated[Principal, Depends(access.write)],
        trace_id: Annotated[str, Path(description="32 hex characters, any case.")],
    ) -> TraceDeletedResponse:
        """Delete a trace: every span, and its part of every rollup (trace list, sessions,
        usage metrics, prompt usage). Needs a `full` key when keys are configured."""
        tid = parse_trace_id(trace_id)
        spans = await store.delete_trace(tid, tenant=principal.tenant)
        if not spans:
            raise ApiError(404, f"trace {tid} not found")
        return TraceDeletedResponse(trace_id=tid, deleted_spans=spans)

    return router
