"""ClickHouse result rows -> the query API's response models, shared by the API's own routes
and the Jaeger-compatible ones (query/jaeger.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from tracehouse.query.models import (
    GenAIFields,
    SpanDetail,
    SpanEvent,
    SpanLink,
    SpanScope,
    SpanStatus,
    TraceSummary,
    TraceTotals,
)

_NS = 1_000_000_000


def format_ns(ns: int) -> str:
    """Nanoseconds since the epoch -> RFC 3339 UTC with nine fraction digits."""
    seconds, fraction = divmod(int(ns), _NS)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{fraction:09d}Z"



def cost_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def _sum_or_none(values: Sequence[Any]) -> Any:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def summary_from_row(row: Mapping[str, Any]) -> TraceSummary:
    start_ns = int(row["start_ns"])
    return TraceSummary(
        trace_id=row["trace_id"],
        root_span_name=row["root_span_name"],
        root_service_name=row["root_service_name"],
        service_names=list(row["service_names"]),
        start_time=format_ns(start_ns),
        start_time_unix_nano=str(start_ns),
        duration_ns=int(row["duration_ns"]),
        span_count=int(row["span_count"]),
        error_count=int(row["error_count"]),
        status="error" if row["error_count"] else "ok",
        input_tokens=row["input_tokens"],
        output_tokens=row["output_tokens"],
        total_tokens=row["total_tokens"],
        total_cost_usd=cost_or_none(row["total_cost_usd"]),
        models=list(row["models"]),
    )


def span_from_row(row: Mapping[str, Any]) -> SpanDetail:
    start_ns = int(row["start_ns"])
    duration = int(row["Duration"])
    events = [
        SpanEvent(time_unix_nano=str(t), name=n, attributes=dict(a))
        for t, n, a in zip(row["event_times_ns"], row["Events.Name"], row["Events.Attributes"], strict=False)
    ]
    links = [
        SpanLink(trace_id=t, span_id=s, trace_state=ts, attributes=dict(a))
        for t, s, ts, a in zip(row["Links.TraceId"], row["Links.SpanId"], row["Links.TraceState"],
                               row["Links.Attributes"], strict=False)
    ]
    return SpanDetail(
        trace_id=row["TraceId"],
        span_id=row["SpanId"],
        parent_span_id=row["ParentSpanId"],
        trace_state=row["TraceState"],
        name=row["SpanName"],
        kind=row["SpanKind"],
        service_name=row["ServiceName"],
        start_time=format_ns(start_ns),
        start_time_unix_nano=str(start_ns),
        end_time_unix_nano=str(start_ns + duration),
        duration_ns=duration,
        status=SpanStatus(code=row["StatusCode"], message=row["StatusMessage"]),
        resource_attributes=dict(row["ResourceAttributes"]),
        scope=SpanScope(name=row["ScopeName"], version=row["ScopeVersion"]),
        attributes=dict(row["SpanAttributes"]),
        events=events,
        links=links,
        genai=GenAIFields(
            provider=row["GenAIProvider"],
            operation=row["GenAIOperation"],
            span_kind=row["GenAISpanKind"],
            request_model=row["GenAIRequestModel"],
            response_model=row["GenAIResponseModel"],
            input_tokens=row["GenAIInputTokens"],
            output_tokens=row["GenAIOutputTokens"],
            cached_input_tokens=row["GenAICachedInputTokens"],
            reasoning_tokens=row["GenAIReasoningTokens"],
            total_tokens=row["GenAITotalTokens"],
            tokens_estimated=bool(row["GenAITokensEstimated"]),
            input_cost_usd=cost_or_none(row["GenAIInputCostUSD"]),
            output_cost_usd=cost_or_none(row["GenAIOutputCostUSD"]),
            total_cost_usd=cost_or_none(row["GenAITotalCostUSD"]),
            cost_source=row["GenAICostSource"],
            price_version=row["GenAICostPriceVersion"],
            prompt_name=row["GenAIPromptName"],
            prompt_version=row["GenAIPromptVersion"],
            prompt_template_hash=row["GenAIPromptTemplateHash"],
            prompt_source=row["GenAIPromptSource"],
            session_id=row["GenAISessionId"],
            user_id=row["GenAIUserId"],
        ),
    )


def totals_of(rows: Sequence[Mapping[str, Any]]) -> TraceTotals:
    """Trace totals from the (already deduplicated) span rows; sums stay exact (Decimal)."""
    starts = [int(r["start_ns"]) for r in rows]
    ends = [int(r["start_ns"]) + int(r["Duration"]) for r in rows]
    start = min(starts)
    return TraceTotals(
        span_count=len(rows),
        error_count=sum(1 for r in rows if r["StatusCode"] == "Error"),
        start_time_unix_nano=str(start),
        duration_ns=max(ends) - start,
        input_tokens=_sum_or_none([r["GenAIInputTokens"] for r in rows]),
        output_tokens=_sum_or_none([r["GenAIOutputTokens"] for r in rows]),
        total_tokens=_sum_or_none([r["GenAITotalTokens"] for r in rows]),
        total_cost_usd=cost_or_none(_sum_or_none([r["GenAITotalCostUSD"] for r in rows])),
        services=sorted({r["ServiceName"] for r in rows}),
    )
