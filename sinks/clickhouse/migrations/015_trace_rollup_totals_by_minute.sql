-- Two changes for the trace list over a large range (query/store.py, "search at scale";
-- measured on 10M spans in BENCHMARKS.md).
--
-- 1. The per-trace rollup's totals per tenant and minute of the rows' starts, for the
--    estimated totals of a search without filters or with only a status
--    (query/sql/trace_search_totals_by_minute.sql): those read all 1.7M rows of a day for
--    every page (~135 ms), here ~1,440 rows (~28 ms with the range's edges). An aggregate
--    projection, so the engine keeps it with the rows: built on insert, merged with the
--    parts, rebuilt on a trace's deletion and by retention (migration 012's settings), and
--    read for a query of its very expressions (query/store.py's _MINUTE_TOTALS): every
--    row's, then those of the rows with an error, without one, and with no status set.
--    Traces are counted by `uniqCombined` states of their ids: states of different minutes
--    merge, so a trace in rows of two minutes counts once. ~11 MB on 10M spans.
ALTER TABLE ${db}.${traces}_trace_rollup ADD PROJECTION IF NOT EXISTS totals_by_minute (
    SELECT Tenant, toStartOfMinute(Start),
           uniqCombinedState(TraceId), sum(ifNull(InputTokens, 0)), sum(ifNull(OutputTokens, 0)),
           sum(ifNull(TotalCostUSD, 0)),
           uniqCombinedStateIf(TraceId, ErrorSpans > 0), sumIf(ifNull(InputTokens, 0), ErrorSpans > 0),
           sumIf(ifNull(OutputTokens, 0), ErrorSpans > 0), sumIf(ifNull(TotalCostUSD, 0), ErrorSpans > 0),
           uniqCombinedStateIf(TraceId, ErrorSpans = 0), sumIf(ifNull(InputTokens, 0), ErrorSpans = 0),
           sumIf(ifNull(OutputTokens, 0), ErrorSpans = 0), sumIf(ifNull(TotalCostUSD, 0), ErrorSpans = 0),
           uniqCombinedStateIf(TraceId, StatusSetSpans = 0), sumIf(ifNull(InputTokens, 0), StatusSetSpans = 0),
           sumIf(ifNull(OutputTokens, 0), StatusSetSpans = 0), sumIf(ifNull(TotalCostUSD, 0), StatusSetSpans = 0)
    GROUP BY Tenant, toStartOfMinute(Start));
ALTER TABLE ${db}.${traces}_trace_rollup MATERIALIZE PROJECTION totals_by_minute;
--
-- 2. The projections by cost, tokens and duration (migration 013) with the labels a page
--    shows (first span, services, models): the page groups them with its candidates, in a
--    few granules, instead of looking them up by trace id after, in ~50 granules of 8,192
--    rows (~70 ms). +~140 MB on 10M spans. Rebuilt in the background; until then the
--    page reads those parts in the table's order.
ALTER TABLE ${db}.${traces}_trace_rollup DROP PROJECTION IF EXISTS by_cost;
ALTER TABLE ${db}.${traces}_trace_rollup DROP PROJECTION IF EXISTS by_tokens;
ALTER TABLE ${db}.${traces}_trace_rollup DROP PROJECTION IF EXISTS by_duration;
ALTER TABLE ${db}.${traces}_trace_rollup ADD PROJECTION by_cost (
    SELECT TraceId, Tenant, Start, End, LastSpanStart, Spans, ErrorSpans, StatusSetSpans, InputTokens,
           OutputTokens, TotalTokens, TotalCostUSD, SessionId, UserId, FirstSpan, ServiceNames, ModelNames
    ORDER BY Tenant, toFloat64(TotalCostUSD));
ALTER TABLE ${db}.${traces}_trace_rollup ADD PROJECTION by_tokens (
    SELECT TraceId, Tenant, Start, End, LastSpanStart, Spans, ErrorSpans, StatusSetSpans, InputTokens,
           OutputTokens, TotalTokens, TotalCostUSD, SessionId, UserId, FirstSpan, ServiceNames, ModelNames
    ORDER BY Tenant, toInt64(ifNull(TotalTokens, ifNull(InputTokens, 0) + ifNull(OutputTokens, 0))));
ALTER TABLE ${db}.${traces}_trace_rollup ADD PROJECTION by_duration (
    SELECT TraceId, Tenant, Start, End, LastSpanStart, Spans, ErrorSpans, StatusSetSpans, InputTokens,
           OutputTokens, TotalTokens, TotalCostUSD, SessionId, UserId, FirstSpan, ServiceNames, ModelNames
    ORDER BY Tenant, toInt64(toUnixTimestamp64Nano(End) - toUnixTimestamp64Nano(Start)));
ALTER TABLE ${db}.${traces}_trace_rollup MATERIALIZE PROJECTION by_cost;
ALTER TABLE ${db}.${traces}_trace_rollup MATERIALIZE PROJECTION by_tokens;
ALTER TABLE ${db}.${traces}_trace_rollup MATERIALIZE PROJECTION by_duration;
