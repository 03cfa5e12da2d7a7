"""`GET /api/v1/metrics/genai`: GenAI usage over time, read from the per-minute usage rollup
(never the spans table), and with `scores=true` the scores of the range by the same groups
(sql/score_rollup.sql)."""

import asyncio

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from tracehouse.core.auth import Principal
from tracehouse.query.access import OPEN, Access
from tracehouse.query.config import QueryApiConfig
from tracehouse.query.errors import ERROR_RESPONSES, ApiError
from tracehouse.query.models import GenAIMetricsResponse
from tracehouse.query.params import (
    DEFAULT_POINTS,
    MAX_POINTS,
    NS,
    default_step,
    parse_group_by,
    parse_step,
    parse_range,
)
from tracehouse.query.rows import format_ns, metrics_from_rows, metrics_json, score_metrics_from_rows
from tracehouse.query.store import GROUP_DIMENSIONS, MetricsQuery, TraceStore

MAX_METRIC_ROWS = 200_000  # points of every series together


async def _nothing() -> list[dict[str, Any]]:
    return []


def genai_metrics_router(store: TraceStore, settings: QueryApiConfig, access: Access = OPEN) -> APIRouter:
    lookback_ns = int(settings.default_lookback * NS)
    router = APIRouter(tags=["genai"])

    @router.get("/api/v1/metrics/genai", response_model=GenAIMetricsResponse, responses=ERROR_RESPONSES)
    async def genai_metrics(
        principal: Annotated[Principal, Depends(access.read)],
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
                          "name; `user` and `session` the span's trace's (read from the spans, not the "
                          "rollup: slower over long ranges). Default: one series.")] = None,
        service: Annotated[str | None, Query(description="Only this service.name.")] = None,
        provider: Annotated[str | None, Query(description="Only this GenAI provider (e.g. `openai`).")] = None,
        model: Annotated[str | None, Query(description="Only calls whose request or response model is this.")] = None,
        prompt: Annotated[str | None, Query(description="Only spans linked to this prompt name.")] = None,
        prompt_version: Annotated[str | None, Query(description="Only this prompt version.")] = None,
        scores: Annotated[bool, Query(
            description="Also aggregate the scores of the range (by their time) per score name and the same "
                        "`group_by` dimensions and filters, which apply to what each score judges: its span "
                        "when that span has a model or prompt, else its trace's GenAI spans. Count, mean, "
                        "min, max and the labels' distribution, exact under re-sent, updated and deleted "
                        "scores.")] = False,
        score_name: Annotated[str | None, Query(description="With `scores`: only scores of this name.")] = None,
    ) -> Response:
        """Requests, errors, tokens, cost and model-call latency over time, read from the
        per-minute usage rollup (from the spans when grouped by `user` or `session`, which the
        rollup does not hold). Only buckets with data are returned. With `scores=true`, the scores too."""
        start_ns, end_ns = parse_range(start, end, lookback_ns)
        step_s = parse_step(step) if step is not None else default_step(end_ns - start_ns)
        dimensions = parse_group_by(group_by or [])
        start_s = start_ns // NS // step_s * step_s
        end_s = -(-end_ns // (step_s * NS)) * step_s
        points = (end_s - start_s) // step_s
        if points > MAX_POINTS:
            raise ApiError(400, f"step: {points} buckets of {step_s}s; at most {MAX_POINTS} (use a larger step "
                                f"or a shorter range)", "step")
        query = MetricsQuery(start_s=start_s, end_s=end_s, step_s=step_s, group_by=dimensions,
                             service=service or "", provider=provider or "", model=model or "",
                             prompt=prompt or "", prompt_version=prompt_version or "",
                             max_rows=MAX_METRIC_ROWS + 1, window_ns=int(settings.max_trace_duration * NS))
        rows, score_rows = await asyncio.gather(
            store.genai_metrics(query, tenant=principal.tenant),
            store.score_rollup(query, score_name or "", tenant=principal.tenant) if scores else _nothing())
        if len(rows) > MAX_METRIC_ROWS or len(score_rows) > MAX_METRIC_ROWS:
            raise ApiError(400, f"step: more than {MAX_METRIC_ROWS} points over all series; use a larger step, "
                                f"fewer group_by dimensions or filters", "step")
        series, totals = metrics_from_rows(rows, dimensions)
        # Written as the response model would be (it stays the schema), without a model per point.
        return Response(metrics_json(format_ns(start_s * NS), format_ns(end_s * NS), step_s, dimensions, series, totals,
                                     score_metrics_from_rows(score_rows, dimensions) if scores else None),
                        media_type="application/json")

    return router
