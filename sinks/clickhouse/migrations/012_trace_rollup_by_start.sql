-- The per-trace rollup, also in the order of the traces' starts: a projection sorted by
-- (Tenant, Start) beside the table's own order (by trace id, for reads of given traces).
-- A search over a large range reads the newest or oldest rows first (query/store.py,
-- "search at scale"): in trace id order those rows lie in every granule, so finding the
-- newest 1,000 of 1.7M rows read them all; in the projection they are a few granules.
-- Measured on 10M spans (BENCHMARKS.md): the cut 20 -> 6 ms, grouping the candidates
-- 73 -> 7 ms.
--
-- An AggregatingMergeTree merges its rows when parts merge: `rebuild` rebuilds the
-- projection from the merged rows; a trace's deletion (DELETE FROM, query/deletion.py) and
-- retention rebuild it too (ClickHouse refuses a lightweight delete on a table with a
-- projection otherwise). MATERIALIZE builds it for the parts written before, as a mutation
-- in the background; until it is done, those parts are read in the table's order.
ALTER TABLE ${db}.${traces}_trace_rollup MODIFY SETTING deduplicate_merge_projection_mode = 'rebuild',
    lightweight_mutation_projection_mode = 'rebuild';
ALTER TABLE ${db}.${traces}_trace_rollup ADD PROJECTION IF NOT EXISTS by_start (SELECT * ORDER BY Tenant, Start);
ALTER TABLE ${db}.${traces}_trace_rollup MATERIALIZE PROJECTION by_start;
