"""Every rollup the migrations keep (sinks/clickhouse/migrations/*.sql) equals what the raw
spans give, each span counted once.

A span inserted twice is invisible in the spans table once background merges collapse
it (ReplacingMergeTree), but a materialized view has already summed it twice: the
rollups keep the evidence. So exactly-once tests compare every rollup with aggregates
recomputed over the distinct raw spans (`LIMIT 1 BY TraceId, SpanId`), never with other
rollups. Read here:

* `<traces>_trace_rollup`: per trace, time bounds and last span start, root span and
  service, first span, services, providers, models (both ways), prompts, span, error and
  status-set counts, tokens and cost (NULL when no span reported any), session and user;
* `<traces>_genai_usage_1m`: per minute x service x provider x models x prompt version,
  spans, requests, errors, tokens, estimated tokens/requests, unpriced requests, costs,
  latency sum and first/last seen (the t-digest quantile state is approximate and is not
  compared; DurationSumNs and Requests cover what it is built from);
* `<traces>_trace_id_ts`: per trace, time bounds (min/max: duplicates cannot show, but a
  span the view missed can);
* `<traces>_span_keys`: the set of keys the exporter's retry gate reads.

Every query groups the rollup by its key, so the result does not depend on merges.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

RAW = "(SELECT * FROM {db}.{t} LIMIT 1 BY TraceId, SpanId)"


@dataclass(frozen=True)
class Rollup:
    table: str  # suffix after the traces table's name
    key: tuple[str, ...]
    rollup: str  # SELECT over the rollup table {src}, grouped by key, columns in `columns` order
    raw: str  # the same columns over the distinct raw spans {src}
    columns: tuple[str, ...]


_TRACE_COLUMNS = ("Start", "End", "LastSpanStart", "RootSpanName", "RootServiceName", "FirstSpan", "ServiceNames",
                  "Providers", "Models", "ModelNames", "Prompts", "Spans", "ErrorSpans", "StatusSetSpans",
                  "InputTokens", "OutputTokens", "TotalTokens", "TotalCostUSD", "SessionId", "UserId")
_USAGE_KEY = ("Minute", "ServiceName", "Provider", "RequestModel", "ResponseModel", "PromptName", "PromptVersion")
_USAGE_SUMS = ("Spans", "Requests", "Errors", "InputTokens", "OutputTokens", "CachedInputTokens", "ReasoningTokens",
               "TotalTokens", "EstimatedTokens", "EstimatedRequests", "UnpricedRequests", "InputCostUSD",
               "OutputCostUSD", "TotalCostUSD", "DurationSumNs")
_IS_CALL = ("(GenAISpanKind IN ('llm', 'embedding', 'reranker') "
            "OR (GenAISpanKind = '' AND (GenAIRequestModel != '' OR GenAIResponseModel != '')))")

ROLLUPS = (
    Rollup(
        "_trace_rollup", ("TraceId",),
        rollup="""SELECT TraceId, min(Start), max(End), max(LastSpanStart), max(RootSpanName), max(RootServiceName),
                         min(FirstSpan), arraySort(groupUniqArrayArray(ServiceNames)),
                         arraySort(groupUniqArrayArray(Providers)), arraySort(groupUniqArrayArray(Models)),
                         arraySort(groupUniqArrayArray(ModelNames)), arraySort(groupUniqArrayArray(Prompts)),
                         sum(Spans), sum(ErrorSpans), sum(StatusSetSpans), sum(InputTokens), sum(OutputTokens),
                         sum(TotalTokens), sum(TotalCostUSD), max(SessionId), max(UserId)
                  FROM {src} GROUP BY TraceId""",
        raw="""SELECT TraceId, min(Timestamp), max(Timestamp + toIntervalNanosecond(Duration)), max(Timestamp),
                      maxIf(SpanName, ParentSpanId = ''), maxIf(ServiceName, ParentSpanId = ''),
                      min((toUInt8(ParentSpanId != ''), Timestamp, toString(SpanName), toString(ServiceName))),
                      arraySort(groupUniqArray(ServiceName)),
                      arraySort(groupUniqArrayIf(GenAIProvider, GenAIProvider != '')),
                      arraySort(groupUniqArrayIf(if(GenAIRequestModel != '', GenAIRequestModel, GenAIResponseModel),
                                                 GenAIRequestModel != '' OR GenAIResponseModel != '')),
                      arraySort(arrayFilter(m -> m != '', groupUniqArrayArray(
                          [toString(GenAIRequestModel), toString(GenAIResponseModel)]))),
                      arraySort(groupUniqArrayIf(GenAIPromptName, GenAIPromptName != '')),
                      count(), countIf(StatusCode = 'Error'), countIf(StatusCode != 'Unset'),
                      sum(GenAIInputTokens), sum(GenAIOutputTokens), sum(GenAITotalTokens),
                      toDecimal128(sum(GenAITotalCostUSD), 12), max(GenAISessionId), max(GenAIUserId)
               FROM {src} WHERE TraceId != '' GROUP BY TraceId""",
        columns=_TRACE_COLUMNS),
    Rollup(
        "_genai_usage_1m", _USAGE_KEY,
        rollup=f"""SELECT {', '.join(_USAGE_KEY)}, {', '.join(f'sum({c})' for c in _USAGE_SUMS)},
                          min(FirstSeen), max(LastSeen)
                   FROM {{src}} GROUP BY {', '.join(_USAGE_KEY)}""",
        raw=f"""SELECT toStartOfMinute(Timestamp) AS Minute, ServiceName, GenAIProvider AS Provider,
                       GenAIRequestModel AS RequestModel, GenAIResponseModel AS ResponseModel,
                       GenAIPromptName AS PromptName, GenAIPromptVersion AS PromptVersion,
                       count(), countIf(IsCall), countIf(IsCall AND StatusCode = 'Error'),
                       sum(ifNull(GenAIInputTokens, 0)), sum(ifNull(GenAIOutputTokens, 0)),
                       sum(ifNull(GenAICachedInputTokens, 0)), sum(ifNull(GenAIReasoningTokens, 0)),
                       sum(ifNull(GenAITotalTokens, 0)), sumIf(ifNull(GenAITotalTokens, 0), GenAITokensEstimated),
                       countIf(IsCall AND GenAITokensEstimated),
                       countIf(IsCall AND GenAITotalCostUSD IS NULL AND GenAIUsageScope != 'in_aggregate'),
                       toDecimal128(sum(ifNull(GenAIInputCostUSD, 0)), 12),
                       toDecimal128(sum(ifNull(GenAIOutputCostUSD, 0)), 12),
                       toDecimal128(sum(ifNull(GenAITotalCostUSD, 0)), 12),
                       sumIf(Duration, IsCall), min(Timestamp), max(Timestamp)
                FROM (SELECT *, {_IS_CALL} AS IsCall FROM {{src}})
                WHERE IsCall OR GenAIPromptName != '' OR GenAIUsageScope = 'aggregate'
                GROUP BY {', '.join(_USAGE_KEY)}""",
        columns=(*_USAGE_SUMS, "FirstSeen", "LastSeen")),
    Rollup(
        "_trace_id_ts", ("TraceId",),
        rollup="SELECT TraceId, min(Start), max(End) FROM {src} GROUP BY TraceId",
        raw="SELECT TraceId, toDateTime(min(Timestamp)), toDateTime(max(Timestamp)) FROM {src} "
            "WHERE TraceId != '' GROUP BY TraceId",
        columns=("Start", "End")),
    Rollup(
        "_span_keys", ("TraceId", "SpanId"),
        rollup="SELECT DISTINCT TraceId, SpanId FROM {src}",
        raw="SELECT DISTINCT TraceId, SpanId FROM {src}",
        columns=()),
)

# Additive columns: their totals say how much a rollup over- or under-counts.
_ADDITIVE = {"Spans", "ErrorSpans", "StatusSetSpans", "Requests", "Errors", "InputTokens", "OutputTokens", "CachedInputTokens",
             "ReasoningTokens", "TotalTokens", "EstimatedTokens", "EstimatedRequests", "UnpricedRequests",
             "InputCostUSD", "OutputCostUSD", "TotalCostUSD", "DurationSumNs"}


def _rows(client: Any, sql: str, width: int) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    out: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for row in client.query(sql).result_rows:
        out[tuple(row[:width])] = tuple(row[width:])
    return out


def rollup_mismatches(client: Any, database: str, traces_table: str = "otel_traces") -> list[str]:
    """One line per rollup that differs from the distinct raw spans (empty when all agree)."""
    problems = []
    raw_src = RAW.format(db=database, t=traces_table)
    for r in ROLLUPS:
        stored = _rows(client, r.rollup.format(src=f"{database}.{traces_table}{r.table}"), len(r.key))
        expected = _rows(client, r.raw.format(src=raw_src), len(r.key))
        if stored == expected:
            continue
        differing = [k for k in expected.keys() & stored.keys() if expected[k] != stored[k]]
        line = (f"{traces_table}{r.table}: {len(differing)} of {len(expected)} {'/'.join(r.key)} groups differ "
                f"from the raw spans, {len(stored.keys() - expected.keys())} extra, "
                f"{len(expected.keys() - stored.keys())} missing")
        totals = []
        for i, column in enumerate(r.columns):
            if column in _ADDITIVE:
                got = sum(v[i] or 0 for v in stored.values())  # a NULL sum: no span reported any
                want = sum(v[i] or 0 for v in expected.values())
                if got != want:
                    totals.append(f"{column} {got} vs {want}")
        if totals:
            line += "; rollup vs raw totals: " + ", ".join(totals)
        if differing:
            k = sorted(differing)[0]
            diff = {c: (s, e) for c, s, e in zip(r.columns, stored[k], expected[k], strict=True) if s != e}
            line += f"; e.g. {k}: {diff}"
        problems.append(line)
    return problems


def assert_rollups_match_spans(client: Any, database: str, traces_table: str = "otel_traces") -> None:
    problems = rollup_mismatches(client, database, traces_table)
    assert not problems, "rollups disagree with the stored spans:\n" + "\n".join(problems)
