"""`GET /api/v1/traces` (search, keyset-paged), `GET /api/v1/traces/export` (every span the
search finds, streamed: query/export.py) and `GET /api/v1/traces/{trace_id}` (one trace, or
with `format=otlp` its spans as OTLP/JSON: query/otlp.py)."""

# No `from __future__ import annotations`: FastAPI evaluates the parameters' annotations,
# and some name the factory's arguments (a closure FastAPI cannot see in strings).

import asyncio
import dataclasses
import math
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response, StreamingResponse

from tracehouse.core.auth import Principal
from tracehouse.query.access import OPEN, Access
from tracehouse.query.config import QueryApiConfig
from tracehouse.query.errors import ERROR_RESPONSES, ApiError
from tracehouse.query.export import BODIES, FORMATS, filename, prepend, span_batches, trace_id_pages
from tracehouse.query.models import (
    ErrorResponse,
    MlflowTraceInfo,
    Score,
    TraceDeletedResponse,
    TraceDetailResponse,
    TraceSearchResponse,
)
from tracehouse.query.params import (
    NS,
    decode_cursor,
    encode_cursor,
    parse_attributes,
    parse_range,
    parse_trace_id,
)
from tracehouse.query.scores import parse_score_filters
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
from tracehouse.query.store import INT64_MAX, MAX_TRACE_SPANS, UINT64_MAX, SearchQuery, TraceStore


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


def duration_ns(ms: float | None, default: int) -> int:
    """Milliseconds -> nanoseconds, capped at ClickHouse's Int64."""
    return default if ms is None else int(min(ms * 1_000_000, INT64_MAX))


def search_parameters(settings: QueryApiConfig) -> Callable[..., SearchQuery]:
    """The parameters of `GET /api/v1/traces` but `limit` (range, filters, sort, cursor),
    parsed into a SearchQuery, as a FastAPI dependency: the search and its export take them
    through this one call. The query's `limit` is 0; each route sets its own."""
    lookback_ns = int(settings.default_lookback * NS)
    window_ns = int(settings.max_trace_duration * NS)

    def search_query(
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
        prompt_version: Annotated[str | None, Query(
            description="A span's GenAI prompt version (with `prompt`, that prompt's version).")] = None,
        session: Annotated[str | None, Query(description="A span's GenAI session id.")] = None,
        user: Annotated[str | None, Query(description="A span's GenAI user id.")] = None,
        min_duration_ms: Annotated[float | None, Query(
            ge=0, allow_inf_nan=False, description="Minimum trace duration in milliseconds.")] = None,
        max_duration_ms: Annotated[float | None, Query(
            ge=0, allow_inf_nan=False, description="Maximum trace duration in milliseconds.")] = None,
        min_tokens: Annotated[int | None, Query(
            ge=0, description="Minimum trace total tokens (input + output when totals are missing).")] = None,
        max_tokens: Annotated[int | None, Query(
            ge=0, description="Maximum trace total tokens (input + output when totals are missing).")] = None,
        min_cost_usd: Annotated[float | None, Query(
            ge=0, allow_inf_nan=False, description="Minimum trace total cost in USD.")] = None,
        max_cost_usd: Annotated[float | None, Query(
            ge=0, allow_inf_nan=False,
            description="Maximum trace total cost in USD (a trace without a cost counts as 0).")] = None,
        attr: Annotated[list[str] | None, Query(
            description="`key=value`, repeatable: a span attribute or resource attribute equals the value. "
                        "All span-level filters must hold on the same span.")] = None,
        score: Annotated[list[str] | None, Query(
            description="`<name><op><value>`, repeatable: the trace has a score of that name (on it or a span) "
                        "whose value passes. `>`, `>=`, `<`, `<=` compare numbers (booleans as 1/0), e.g. "
                        "`helpfulness>=0.8`; `=` and `!=` a category, `true`/`false` or a number, e.g. "
                        "`verdict=pass`.")] = None,
        sort: Annotated[Literal["time", "cost", "tokens", "duration"], Query(
            description="Order, largest first: `time` (newest), `cost`, `tokens` or `duration`; "
                        "ties by trace id. Unpriced traces come last by cost.")] = "time",
        cursor: Annotated[str | None, Query(
            description="`next_cursor` of the previous page; keeps that page's time range.")] = None,
    ) -> SearchQuery:
        keyset: tuple[int, str] | None = None
        range_start = range_end = None
        if cursor:
            cursor_sort, cursor_key, cursor_trace, range_start, range_end = decode_cursor(cursor)
            if cursor_sort != sort:
                raise ApiError(400, f"cursor: it continues a search sorted by {cursor_sort}, not {sort}", "cursor")
            keyset = (cursor_key, cursor_trace)
        start_ns, end_ns = parse_range(start, end, lookback_ns, (range_start, range_end))
        query = SearchQuery(
            start_ns=start_ns, end_ns=end_ns, limit=0,
            service=service or "", span_name=span_name or "", status=status or "",
            provider=provider or "", model=model or "", prompt=prompt or "", prompt_version=prompt_version or "",
            session=session or "", user=user or "",
            min_duration_ns=duration_ns(min_duration_ms, 0),
            max_duration_ns=duration_ns(max_duration_ms, INT64_MAX),
            min_tokens=min(min_tokens or 0, UINT64_MAX),
            max_tokens=UINT64_MAX if max_tokens is None else min(max_tokens, UINT64_MAX),
            min_cost_usd=min_cost_usd or 0.0,
            max_cost_usd=math.inf if max_cost_usd is None else max_cost_usd,
            attributes=parse_attributes(attr or []), scores=parse_score_filters(score or []),
            sort=sort, cursor=keyset, window_ns=window_ns,
        )
        for low, high, name in ((query.min_duration_ns, query.max_duration_ns, "max_duration_ms"),
                                (query.min_tokens, query.max_tokens, "max_tokens"),
                                (query.min_cost_usd, query.max_cost_usd, "max_cost_usd")):
            if high < low:
                raise ApiError(400, f"{name}: must not be below its minimum", name)
        return query

    return search_query


def traces_router(store: TraceStore, settings: QueryApiConfig, access: Access = OPEN) -> APIRouter:
    search_query = search_parameters(settings)
    router = APIRouter(tags=["traces"])

    @router.get("/api/v1/traces", response_model=TraceSearchResponse, responses=ERROR_RESPONSES)
    async def search_traces(
        principal: Annotated[Principal, Depends(access.read)],
        search: Annotated[SearchQuery, Depends(search_query)],
        limit: Annotated[int, Query(ge=1, le=settings.max_limit, description="Traces per page.")] = 20,
    ) -> TraceSearchResponse:
        """Find traces: a trace matches when one of its spans in the range passes every
        span-level filter (service, span_name, provider, model, prompt, prompt_version,
        session, user, attr); status, scores and the duration, token and cost bounds apply to
        the whole trace. Newest first; page with `cursor`. Each row has the trace's scores per name."""
        query = dataclasses.replace(search, limit=limit + 1)
        rows = await store.search(query, tenant=principal.tenant)
        page = [summary_from_row(r) for r in rows[:limit]]
        next_cursor = None
        if len(rows) > limit and page:
            last = page[-1]
            next_cursor = encode_cursor(query.sort, int(rows[limit - 1]["sort_key"]), last.trace_id,
                                        query.start_ns, query.end_ns)
        return TraceSearchResponse(traces=page, totals=search_totals(rows, first_page=query.cursor is None),
                                   next_cursor=next_cursor, start=format_ns(query.start_ns),
                                   end=format_ns(query.end_ns), limit=limit)

    # Before `/api/v1/traces/{trace_id}`, which would take `export` for a trace id.
    @router.get("/api/v1/traces/export", response_class=StreamingResponse, responses={
        **ERROR_RESPONSES,
        200: {"description": "The spans, streamed: one JSON object per line (`format=jsonl`, each the "
                             "span shape of `GET /api/v1/traces/{trace_id}`), or a Parquet file of the "
                             "same fields, typed (`format=parquet`).",
              "content": {f.media_type: {} for f in FORMATS.values()}}})
    async def export_traces(
        principal: Annotated[Principal, Depends(access.read)],
        search: Annotated[SearchQuery, Depends(search_query)],
        fmt: Annotated[Literal["jsonl", "parquet"], Query(
            alias="format", description="`jsonl` (one span per line) or `parquet`.")] = "jsonl",
        limit: Annotated[int | None, Query(
            ge=1, description="At most this many traces (the first ones in the search's order). "
                              "Default: every trace the search finds.")] = None,
    ) -> StreamingResponse:
        """Every span of every trace the search finds (the parameters of `GET /api/v1/traces`),
        trace by trace in the search's order, each trace's spans by start time. Streamed: the
        traces are read a page at a time, whatever their number."""
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
