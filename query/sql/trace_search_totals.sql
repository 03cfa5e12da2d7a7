-- The totals of a large trace search, estimated (query/store.py, "search at scale"): over
-- the per-trace rollup's rows rather than its merged traces, so no GROUP BY over millions
-- of traces. Each row is tested on its own (in the range, the trace-level filters on its
-- values); the traces are counted by `uniq` (an adaptive sample of the ids' hashes,
-- `TraceKey`, migration 014: within ~1% of the exact count, and a trace split over rows
-- counts once), tokens and cost summed from
-- the rows that pass. Exact where every trace is one row, the usual case once the rollup's
-- parts have merged; a trace whose spans came in several inserts may be counted by the rows
-- that pass a bound while the whole trace would not.
SELECT
    uniq(TraceKey) AS matched_traces,
    sum(ifNull(InputTokens, 0)) AS matched_input_tokens,
    sum(ifNull(OutputTokens, 0)) AS matched_output_tokens,
    toFloat64(sum(ifNull(TotalCostUSD, 0))) AS matched_cost_usd
FROM ${db}.${table}_trace_rollup
WHERE Tenant = {tenant:String}
  AND Start >= fromUnixTimestamp64Nano({start_ns:Int64}) - toIntervalNanosecond({window_ns:Int64})
  AND Start < fromUnixTimestamp64Nano({end_ns:Int64})
  AND LastSpanStart >= fromUnixTimestamp64Nano({start_ns:Int64})
  ${span_traces}
  AND ${score_traces}
  AND ${row_filters}
