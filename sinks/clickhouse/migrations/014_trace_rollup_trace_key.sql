-- A 64-bit hash of each rollup row's trace id, stored beside it: the estimated totals of a
-- large search count distinct traces with `uniq` over the rows (query/sql/
-- trace_search_totals.sql), and reading 8 bytes a row instead of the 32-character id halves
-- that count's cost (75 -> 37 ms over 1.7M rows, 10M spans; BENCHMARKS.md). Parts written
-- before compute it from the id when read, so nothing is rewritten. Every row of a trace
-- has the same value, so `any` is what a merge keeps.
ALTER TABLE ${db}.${traces}_trace_rollup
    ADD COLUMN IF NOT EXISTS TraceKey SimpleAggregateFunction(any, UInt64) MATERIALIZED sipHash64(TraceId);
