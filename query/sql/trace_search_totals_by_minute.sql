-- The totals of a large trace search without filters, or with only a status, estimated
-- (query/store.py, "search at scale"): trace_search_totals.sql's figures (`aggregates`,
-- store.py's _MINUTE_TOTALS: of every row, or of the rows in that status), with the range's
-- whole minutes read from the
-- rollup's per-minute totals (migration 015: ~1,440 rows a day, where the rows are every
-- trace's; 1.7M on 10M spans) and only the rest from the rows: its partial minutes at either
-- end, and the traces started in the window before it. A row starting in a whole minute of
-- the range has every span from `start_ns` on, so only the rest tests `LastSpanStart`; the
-- rest lies in a few granules of the projection by start (migration 012). The traces are
-- counted by `uniqCombined` states (within ~0.5% of the exact count, exact for a few
-- thousand), which merge across minutes: a trace in rows of two minutes counts once.
SELECT
    uniqCombinedMerge(traces) AS matched_traces,
    sum(input_tokens) AS matched_input_tokens,
    sum(output_tokens) AS matched_output_tokens,
    toFloat64(sum(cost_usd)) AS matched_cost_usd
FROM (
    SELECT ${aggregates}
    FROM ${db}.${table}_trace_rollup
    WHERE Tenant = {tenant:String}
      AND toStartOfMinute(Start) >= fromUnixTimestamp({first_minute_s:Int64})
      AND toStartOfMinute(Start) < fromUnixTimestamp({end_minute_s:Int64})
    UNION ALL
    SELECT ${aggregates}
    FROM ${db}.${table}_trace_rollup
    WHERE Tenant = {tenant:String}
      AND Start >= fromUnixTimestamp64Nano({start_ns:Int64}) - toIntervalNanosecond({window_ns:Int64})
      AND Start < fromUnixTimestamp64Nano({end_ns:Int64})
      AND LastSpanStart >= fromUnixTimestamp64Nano({start_ns:Int64})
      AND (Start < fromUnixTimestamp({first_minute_s:Int64}) OR Start >= fromUnixTimestamp({end_minute_s:Int64}))
)
