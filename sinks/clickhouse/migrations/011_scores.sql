-- Scores by model and prompt version (issue 16): what a score is about comes from the span it
-- judges, or for a whole-trace score from the trace's GenAI spans. A score and its spans
-- arrive in any order, and a score can be replaced or deleted at any time (a
-- ReplacingMergeTree read with FINAL), so no view can sum scores at insert time: the rollup
-- (query/sql/score_rollup.sql) joins the live scores to their spans' labels when it is read.
--
-- Those labels are kept in the retry gate's table, `_span_keys`: one row per stored span,
-- sorted by trace id, so a scored trace's labels are a primary-key read and never a scan of
-- the spans table. It is deleted with its trace and expired with the tenant's data already.
-- Spans stored before this migration have no labels: their scores count under no model and
-- no prompt.
ALTER TABLE ${db}.${traces}_span_keys
    ADD COLUMN IF NOT EXISTS `ServiceName` LowCardinality(String) CODEC(ZSTD(1)),
    ADD COLUMN IF NOT EXISTS `Provider` LowCardinality(String) CODEC(ZSTD(1)),
    ADD COLUMN IF NOT EXISTS `RequestModel` LowCardinality(String) CODEC(ZSTD(1)),
    ADD COLUMN IF NOT EXISTS `ResponseModel` LowCardinality(String) CODEC(ZSTD(1)),
    ADD COLUMN IF NOT EXISTS `PromptName` LowCardinality(String) CODEC(ZSTD(1)),
    ADD COLUMN IF NOT EXISTS `PromptVersion` LowCardinality(String) CODEC(ZSTD(1));
ALTER TABLE ${db}.${traces}_span_keys_mv MODIFY QUERY
SELECT Timestamp, TraceId, SpanId, Tenant, ServiceName, GenAIProvider AS Provider,
       GenAIRequestModel AS RequestModel, GenAIResponseModel AS ResponseModel,
       GenAIPromptName AS PromptName, GenAIPromptVersion AS PromptVersion
FROM ${db}.${traces};

-- `DELETE /api/v1/scores/{id}` and the API's idempotency check find a score by its id alone.
ALTER TABLE ${db}.${traces}_scores ADD INDEX IF NOT EXISTS idx_score_id ScoreId TYPE bloom_filter(0.001) GRANULARITY 1;
