-- How many per-trace rollup rows a trace search would group (trace_search.sql's rows): the
-- store answers exactly, totals included, up to `exact_totals_max_traces`, and at scale
-- above it (query/store.py). `in_range`: the rows starting in the range itself, what an
-- estimate from a slice of them scales by. Counts the rows' starts only.
SELECT
    count() AS rows,
    countIf(Start >= fromUnixTimestamp64Nano({start_ns:Int64}) AND Start < fromUnixTimestamp64Nano({end_ns:Int64})) AS in_range
FROM ${db}.${table}_trace_rollup
WHERE Tenant = {tenant:String}
  AND Start >= fromUnixTimestamp64Nano({start_ns:Int64}) - toIntervalNanosecond({window_ns:Int64})
  AND Start < fromUnixTimestamp64Nano({end_ns:Int64}) + toIntervalNanosecond({window_ns:Int64})
