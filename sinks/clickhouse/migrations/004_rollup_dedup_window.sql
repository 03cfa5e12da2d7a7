-- Insert deduplication for the tables materialized views fill, so a replayed insert block
-- (same deduplication token, or the same rows again) is dropped in the spans table and in
-- every rollup alike. Without a window on the target tables, ClickHouse still runs the
-- views on a block the spans table dropped, and the rollups would count it twice. A view's
-- block is identified by the source block it came from, never by its aggregated content,
-- so two different inserts that aggregate to the same rows are both kept.
ALTER TABLE ${db}.${traces}_trace_id_ts MODIFY SETTING non_replicated_deduplication_window = ${dedup_window};
ALTER TABLE ${db}.${traces}_span_keys MODIFY SETTING non_replicated_deduplication_window = ${dedup_window};
ALTER TABLE ${db}.${traces}_trace_rollup MODIFY SETTING non_replicated_deduplication_window = ${dedup_window};
ALTER TABLE ${db}.${traces}_genai_usage_1m MODIFY SETTING non_replicated_deduplication_window = ${dedup_window};
