-- The per-trace rollup also in the order of each value a trace list can be sorted by: cost,
-- tokens and duration, each a projection sorted by (Tenant, the row's own sort key as
-- query/store.py's _ROW_KEYS computes it; for cost its Float64, which that key rounds).
-- A search over a large range sorted by a value groups the rows whose key reaches the
-- page's cut (query/store.py, "search at scale"): in trace id order they lie in every
-- granule, so grouping 1,000 of 1.7M rows read every granule of every column; here they
-- are a few granules. Measured on 10M spans (BENCHMARKS.md): the page 310 -> 50 ms, the
-- cut of tokens and duration 77 -> 16 ms.
--
-- Only the columns the page groups: the labels (names, services, models) are looked up by
-- id for the page's rows, so these copies leave out the rollup's arrays. The table's
-- settings (migration 012) rebuild them on merges and deletions; MATERIALIZE builds them
-- for the parts written before, in the background.
ALTER TABLE ${db}.${traces}_trace_rollup ADD PROJECTION IF NOT EXISTS by_cost (
    SELECT TraceId, Tenant, Start, End, LastSpanStart, Spans, ErrorSpans, StatusSetSpans, InputTokens,
           OutputTokens, TotalTokens, TotalCostUSD, SessionId, UserId
    ORDER BY Tenant, toFloat64(TotalCostUSD));
ALTER TABLE ${db}.${traces}_trace_rollup ADD PROJECTION IF NOT EXISTS by_tokens (
    SELECT TraceId, Tenant, Start, End, LastSpanStart, Spans, ErrorSpans, StatusSetSpans, InputTokens,
           OutputTokens, TotalTokens, TotalCostUSD, SessionId, UserId
    ORDER BY Tenant, toInt64(ifNull(TotalTokens, ifNull(InputTokens, 0) + ifNull(OutputTokens, 0))));
ALTER TABLE ${db}.${traces}_trace_rollup ADD PROJECTION IF NOT EXISTS by_duration (
    SELECT TraceId, Tenant, Start, End, LastSpanStart, Spans, ErrorSpans, StatusSetSpans, InputTokens,
           OutputTokens, TotalTokens, TotalCostUSD, SessionId, UserId
    ORDER BY Tenant, toInt64(toUnixTimestamp64Nano(End) - toUnixTimestamp64Nano(Start)));
ALTER TABLE ${db}.${traces}_trace_rollup MATERIALIZE PROJECTION by_cost;
ALTER TABLE ${db}.${traces}_trace_rollup MATERIALIZE PROJECTION by_tokens;
ALTER TABLE ${db}.${traces}_trace_rollup MATERIALIZE PROJECTION by_duration;
