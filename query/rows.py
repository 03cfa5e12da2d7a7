"""ClickHouse result rows -> the query API's response models: traces (search rows, span rows,
totals; shared by the API's own routes and the Jaeger-compatible ones, query/jaeger/), GenAI
usage metrics, the prompt registry, and MLflow's experiments, runs and scores."""

from __future__ import annotations

import functools
import json
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

from tracehouse.sinks.clickhouse.genai import GENAI_COLUMNS
from tracehouse.core.genai import ChatMessage
from tracehouse.query.messages import span_messages
from tracehouse.query.models import (
    ChatMessageModel,
    ExperimentSummary,
    MetricPoint,
    MlflowTraceInfo,
    MlflowTraceSummary,
    RunSummary,
    NamedScoreStats,
    Score,
    ScoreMetrics,
    ScorePoint,
    ScoreSeries,
    ScoreStats,
    SessionSummary,
    ToolCall,
    TraceSearchTotals,
    GenAIFields,
    GenAILogEvent,
    LatencyMs,
    PromptSummary,
    PromptUsageTotals,
    PromptVersionDetail,
    PromptVersionUsage,
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
    return _format_second(seconds) + f".{fraction:09d}Z"


@functools.lru_cache(maxsize=4096)
def _format_second(seconds: int) -> str:
    # A trace's spans start within a few seconds of each other: formatted once each.
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")



def cost_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def _sum_or_none(values: Sequence[Any]) -> Any:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def search_totals(rows: Sequence[Mapping[str, Any]], *, first_page: bool) -> TraceSearchTotals | None:
    """Totals of the whole filtered set, which every row of a search carries; zero when a
    first page is empty, unknown on an empty later page."""
    if not rows:
        return TraceSearchTotals(traces=0, input_tokens=0, output_tokens=0, cost_usd=0.0) if first_page else None
    row = rows[0]
    return TraceSearchTotals(traces=int(row["matched_traces"]), input_tokens=int(row["matched_input_tokens"]),
                             output_tokens=int(row["matched_output_tokens"]),
                             cost_usd=float(row["matched_cost_usd"]),
                             estimated=bool(row.get("totals_estimated", False)))


def session_from_row(row: Mapping[str, Any]) -> SessionSummary:
    return SessionSummary(
        session_id=row["session_id"], user_id=row["user_id"], turns=int(row["turns"]),
        first_time=format_ns(int(row["first_ns"])), last_time=format_ns(int(row["last_ns"])),
        input_tokens=int(row["input_tokens"]), output_tokens=int(row["output_tokens"]),
        cost_usd=float(row["cost_usd"]), error_spans=int(row["error_spans"]))


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
        scores=[NamedScoreStats(name=score["name"], **score_stats(score)) for score in row.get("scores", ())],
    )


def genai_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    """The stored GenAI columns of a span row, by field name, as the API shows them."""
    out: dict[str, Any] = {}
    for field, column in GENAI_COLUMNS:
        value = row[column]
        out[field.name] = cost_or_none(value) if field.kind is Decimal else bool(value) if field.kind is bool else value
    return out


def _chat(messages: list[ChatMessage] | None) -> list[ChatMessageModel] | None:
    if messages is None:
        return None
    return [ChatMessageModel(role=m.role, content=m.content,
                             tool_calls=[ToolCall(name=str(c.get("name", "")), arguments=str(c.get("arguments", "")))
                                         for c in m.tool_calls])
            for m in messages]


# The key under which a span row carries its GenAI log events (trace_genai_events.sql rows).
LOG_EVENTS = "genai_log_events"


def attach_log_events(rows: Sequence[dict[str, Any]], events: Sequence[Mapping[str, Any]]) -> None:
    """Hand each span row its GenAI log events; events of spans not (yet) stored wait for them."""
    by_span: dict[str, list[Mapping[str, Any]]] = {}
    for event in events:
        by_span.setdefault(event["SpanId"], []).append(event)
    for row in rows:
        found = by_span.get(row["SpanId"])
        if found:
            row[LOG_EVENTS] = found


def event_fields(attributes: Mapping[str, str], body: str) -> dict[str, str]:
    """A log record's attributes and, when its body is a map (the deprecated per-message
    events: `{content, role, tool_calls}`, `{index, finish_reason, message}`), the body's
    fields beside them: the shape the events have when recorded on the span."""
    fields = dict(attributes)
    if body.startswith("{"):
        try:
            parsed = json.loads(body)
        except ValueError:
            return fields
        if isinstance(parsed, dict):
            for key, value in parsed.items():
                fields.setdefault(str(key), value if isinstance(value, str) else json.dumps(value))
    return fields


def span_from_row(row: Mapping[str, Any], *, messages: bool = False) -> SpanDetail:
    """One stored span; with `messages`, its prompt and completion read back as chat messages."""
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
    log_events = [GenAILogEvent(time_unix_nano=str(e["time_ns"]), name=e["name"], attributes=dict(e["LogAttributes"]),
                                body=e["Body"]) for e in row.get(LOG_EVENTS, ())]
    chat: tuple[list[ChatMessageModel] | None, list[ChatMessageModel] | None] = (None, None)
    if messages:
        inputs, outputs = span_messages(row["SpanAttributes"], [(e.name, e.attributes) for e in events]
                                        + [(e.name, event_fields(e.attributes, e.body)) for e in log_events])
        chat = (_chat(inputs), _chat(outputs))
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
        log_events=log_events,
        links=links,
        genai=GenAIFields(**genai_fields(row)),
        input_messages=chat[0] if messages else None,
        output_messages=chat[1] if messages else None,
    )


def span_json(row: Mapping[str, Any]) -> bytes:
    """One span as the API shows it (a trace's page and the export): JSON, messages included.

    The bytes of `span_from_row(row, messages=True).model_dump_json()`, built as plain dicts
    in SpanDetail's field order and encoded by orjson: a model per span (and one per event,
    link and message) made a trace of 10k spans take most of a second. The models stay the
    schema; tests/query/test_span_json.py holds the two to the same bytes."""
    start_ns = int(row["start_ns"])
    duration = int(row["Duration"])
    events = [{"time_unix_nano": str(t), "name": n, "attributes": dict(a)}
              for t, n, a in zip(row["event_times_ns"], row["Events.Name"], row["Events.Attributes"], strict=False)]
    links = [{"trace_id": t, "span_id": s, "trace_state": ts, "attributes": dict(a)}
             for t, s, ts, a in zip(row["Links.TraceId"], row["Links.SpanId"], row["Links.TraceState"],
                                    row["Links.Attributes"], strict=False)]
    log_events = [{"time_unix_nano": str(e["time_ns"]), "name": e["name"], "attributes": dict(e["LogAttributes"]),
                   "body": e["Body"]} for e in row.get(LOG_EVENTS, ())]
    attributes = dict(row["SpanAttributes"])
    inputs, outputs = span_messages(attributes, [(e["name"], e["attributes"]) for e in events]
                                    + [(e["name"], event_fields(e["attributes"], e["body"])) for e in log_events])
    return orjson.dumps({
        "trace_id": row["TraceId"],
        "span_id": row["SpanId"],
        "parent_span_id": row["ParentSpanId"],
        "trace_state": row["TraceState"],
        "name": row["SpanName"],
        "kind": row["SpanKind"],
        "service_name": row["ServiceName"],
        "start_time": format_ns(start_ns),
        "start_time_unix_nano": str(start_ns),
        "end_time_unix_nano": str(start_ns + duration),
        "duration_ns": duration,
        "status": {"code": row["StatusCode"], "message": row["StatusMessage"]},
        "resource_attributes": dict(row["ResourceAttributes"]),
        "scope": {"name": row["ScopeName"], "version": row["ScopeVersion"]},
        "attributes": attributes,
        "events": events,
        "links": links,
        "genai": _genai_json(row),
        "log_events": log_events,
        "input_messages": _chat_json(inputs),
        "output_messages": _chat_json(outputs),
    })


# span_json's GenAI fields, in GenAIFields' order: their columns read at once, then the few
# the API shows differently (costs as numbers, flags as booleans) converted.
_GENAI_NAMES = tuple(field.name for field, _ in GENAI_COLUMNS)
_GENAI_VALUES = operator.itemgetter(*(column for _, column in GENAI_COLUMNS))
_GENAI_CONVERT: tuple[tuple[str, Callable[[Any], Any]], ...] = tuple(
    (field.name, cost_or_none if field.kind is Decimal else bool)
    for field, _ in GENAI_COLUMNS if field.kind in (Decimal, bool))


def _genai_json(row: Mapping[str, Any]) -> dict[str, Any]:
    fields = dict(zip(_GENAI_NAMES, _GENAI_VALUES(row), strict=True))
    for name, convert in _GENAI_CONVERT:
        fields[name] = convert(fields[name])
    return fields


def _chat_json(messages: list[ChatMessage] | None) -> list[dict[str, Any]] | None:
    if messages is None:
        return None
    return [{"role": m.role, "content": m.content,
             "tool_calls": [{"name": str(c.get("name", "")), "arguments": str(c.get("arguments", ""))}
                            for c in m.tool_calls]}
            for m in messages]


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


# ------------------------------------------------------------------------------ GenAI metrics


def latency_of(row: Mapping[str, Any]) -> dict[str, float] | None:
    """Percentiles from the merged t-digest, avg = duration sum / requests (LatencyMs's
    fields); null without calls."""
    requests = int(row["requests"])
    quantiles = [float(q) for q in row["duration_quantiles_ns"]]
    if requests == 0 or len(quantiles) != 4 or any(math.isnan(q) for q in quantiles):
        return None
    p50, p90, p95, p99 = (q / 1e6 for q in quantiles)
    return {"p50": p50, "p90": p90, "p95": p95, "p99": p99, "avg": int(row["duration_sum_ns"]) / requests / 1e6}


_USAGE_COUNTS = ("spans", "requests", "errors", "input_tokens", "output_tokens", "cached_input_tokens",
                 "reasoning_tokens", "total_tokens", "estimated_tokens", "estimated_requests", "unpriced_requests")
_USAGE_COSTS = ("cost_usd", "input_cost_usd", "output_cost_usd")


def usage_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    """GenAIUsage's fields, in its order."""
    fields: dict[str, Any] = {name: int(row[name]) for name in _USAGE_COUNTS}
    fields.update({name: float(row[name]) for name in _USAGE_COSTS})  # exact Decimal -> nearest double
    fields["latency_ms"] = latency_of(row)
    return fields


def _zero_usage() -> dict[str, Any]:
    return {**dict.fromkeys(_USAGE_COUNTS, 0), **dict.fromkeys(_USAGE_COSTS, 0.0), "latency_ms": None}


def metrics_from_rows(rows: Sequence[Mapping[str, Any]], group_by: Sequence[str]) -> tuple[
        list[dict[str, Any]], dict[str, Any]]:
    """Rows of sql/genai_metrics.sql (grand total, series totals, then points) -> the series
    and totals of a GenAIMetricsResponse, as plain dicts in its models' field order (a model
    per point made 95k points take ~2 s, half of it garbage collection; metrics_json writes them)."""
    totals = _zero_usage()
    series: dict[tuple[str, ...], dict[str, Any]] = {}
    for row in rows:
        if row["all_groups"]:
            totals = usage_fields(row)
            continue
        key = tuple(str(row[f"g_{d}"]) for d in group_by)
        if row["all_buckets"]:
            series[key] = {"group": dict(zip(group_by, key, strict=True)), "points": [], "totals": usage_fields(row)}
        else:
            series[key]["points"].append({"time": format_ns(int(row["bucket_s"]) * _NS), **usage_fields(row)})
    return list(series.values()), totals


def metrics_json(start: str, end: str, step_s: int, group_by: Sequence[str], series: list[dict[str, Any]],
                 totals: dict[str, Any], scores: ScoreMetrics | None) -> bytes:
    """The bytes of GenAIMetricsResponse(...).model_dump_json(), from metrics_from_rows' dicts
    (tests/query/test_genai_metrics_api.py holds the two to the same bytes)."""
    return orjson.dumps({"start": start, "end": end, "step_seconds": step_s, "group_by": list(group_by),
                         "series": series, "totals": totals,
                         "scores": None if scores is None else scores.model_dump(mode="json")})


# ------------------------------------------------------------------------------ prompts


_NUMERIC_VERSION_RE = re.compile(r"[0-9]{1,18}")


def version_sort_key(numeric: bool) -> Callable[[tuple[str, int | None]], tuple[bool, int, str]]:
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
            latency = latency_of(use)
            usage_model = PromptVersionUsage(
                spans=int(use["spans"]), requests=int(use["requests"]), errors=int(use["errors"]),
                input_tokens=int(use["input_tokens"]), output_tokens=int(use["output_tokens"]),
                total_tokens=int(use["total_tokens"]), cost_usd=float(use["cost_usd"]),
                latency_ms=None if latency is None else LatencyMs(**latency))
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


# ------------------------------------------------------------------------------ MLflow: experiments, runs, scores

PARENT_RUN_TAG = "mlflow.parentRunId"  # MLflow's nesting of runs
_NS_PER_MS = 1_000_000


def format_ms(ms: int) -> str:
    """Milliseconds since the epoch (MLflow's unit) -> RFC 3339 UTC, as every API time."""
    return format_ns(int(ms) * _NS_PER_MS)


def finite_or_none(value: Any) -> float | None:
    """JSON has no NaN or Infinity (MLflow metrics may be either): they read as null."""
    return None if value is None or not math.isfinite(float(value)) else float(value)


def experiment_from_row(row: Mapping[str, Any]) -> ExperimentSummary:
    return ExperimentSummary(
        experiment_id=row["experiment_id"], name=row["name"], lifecycle_stage=row["lifecycle_stage"],
        creation_time=format_ms(row["creation_ms"]), last_update_time=format_ms(row["last_update_ms"]),
        tags=dict(row["tags"]), run_count=int(row["run_count"] or 0), trace_count=int(row["trace_count"] or 0))


def _pairs(keys: Sequence[str] | None, values: Sequence[Any] | None) -> dict[str, Any]:
    return dict(sorted(zip(keys or (), values or (), strict=True)))


def run_from_row(row: Mapping[str, Any]) -> RunSummary:
    tags = _pairs(row["tag_keys"], row["tag_values"])
    start, end = int(row["start_ms"]), row["end_ms"]
    return RunSummary(
        run_id=row["run_id"], run_name=row["run_name"], experiment_id=row["experiment_id"], status=row["status"],
        lifecycle_stage=row["lifecycle_stage"], start_time=format_ms(start),
        end_time=None if end is None else format_ms(end), duration_ms=None if end is None else int(end) - start,
        parent_run_id=tags.get(PARENT_RUN_TAG) or None, user_id=row["user_id"],
        latest_metrics={k: finite_or_none(v) for k, v in _pairs(row["metric_keys"], row["metric_values"]).items()},
        params=_pairs(row["param_keys"], row["param_values"]), tags=tags)


def metric_history(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[MetricPoint]]:
    """Rows of sql/run_metric_history.sql (by key, step, timestamp) -> key -> points."""
    out: dict[str, list[MetricPoint]] = {}
    for row in rows:
        out.setdefault(row["key"], []).append(MetricPoint(
            step=int(row["step"]), timestamp=format_ms(row["timestamp_ms"]), value=finite_or_none(row["value"])))
    return out


def mlflow_trace_from_row(row: Mapping[str, Any]) -> MlflowTraceSummary:
    spans = int(row["span_count"] or 0)
    return MlflowTraceSummary(
        trace_id=row["trace_id"], request_id=row["request_id"], experiment_id=row["experiment_id"], name=row["name"],
        state=row["state"], start_time=format_ms(row["request_ms"]), duration_ms=int(row["duration_ms"]),
        source_run_id=row["source_run_id"] or None, span_count=spans,
        input_tokens=row["input_tokens"] if spans else None, output_tokens=row["output_tokens"] if spans else None,
        total_tokens=row["total_tokens"] if spans else None,
        total_cost_usd=cost_or_none(row["total_cost_usd"]) if spans else None)


def score_from_row(row: Mapping[str, Any]) -> Score:
    data_type = row["data_type"]
    value: bool | float | str | None
    if data_type == "numeric":
        value = finite_or_none(row["numeric_value"])
    elif data_type == "boolean":
        value = row["string_value"] == "true"
    else:
        value = row["string_value"]
    return Score(score_id=row["score_id"], name=row["name"], data_type=data_type, value=value,
                 label=row["string_value"] if data_type == "numeric" else "", comment=row["comment"], source=row["source"], author=row["author"],
                 timestamp=format_ns(int(row["timestamp_ns"])), span_id=row["span_id"], kind=row["kind"],
                 run_id=row["run_id"], error=row["error"], metadata=dict(row["metadata"]))


MAX_CATEGORIES = 100


def score_stats(row: Mapping[str, Any]) -> dict[str, Any]:
    """ScoreStats fields of a row of sql/score_rollup.sql or sql/trace_list_scores.sql."""
    numbers = int(row["numeric_count"])
    labels, counts = row["categories"]
    ranked = sorted(zip(labels, counts, strict=True), key=lambda lc: (-int(lc[1]), lc[0]))
    shown = ranked[:MAX_CATEGORIES]
    return {"scores": int(row["scores"]), "numeric_count": numbers,
            "mean": finite_or_none(row["mean"]) if numbers else None,
            "min": finite_or_none(row["min"]) if numbers else None,
            "max": finite_or_none(row["max"]) if numbers else None,
            "categories": {str(label): int(count) for label, count in shown},
            "other_categories": sum(int(count) for _, count in ranked[MAX_CATEGORIES:]),
            "errors": int(row["errors"])}


def score_metrics_from_rows(rows: Sequence[Mapping[str, Any]], group_by: Sequence[str]) -> ScoreMetrics:
    """Rows of sql/score_rollup.sql (name totals, then each series' totals and points) -> sections."""
    totals: list[NamedScoreStats] = []
    series: dict[tuple[str, ...], ScoreSeries] = {}
    for row in rows:
        if row["level"] == "name":
            totals.append(NamedScoreStats(name=row["name"], **score_stats(row)))
            continue
        key = (row["name"], *(str(row[f"g_{d}"]) for d in group_by))
        if row["level"] == "series":
            series[key] = ScoreSeries(name=row["name"], group=dict(zip(group_by, key[1:], strict=True)), points=[],
                                      totals=ScoreStats(**score_stats(row)))
        else:
            series[key].points.append(ScorePoint(time=format_ns(int(row["bucket_s"]) * _NS), **score_stats(row)))
    return ScoreMetrics(series=list(series.values()), totals=totals)


def mlflow_info_from_row(row: Mapping[str, Any] | None) -> MlflowTraceInfo | None:
    if row is None:
        return None
    return MlflowTraceInfo(experiment_id=row["experiment_id"], request_id=row["request_id"], tags=dict(row["tags"]),
                           metadata=dict(row["metadata"]))
