-- The trace list (GET /api/v1/traces, the explorer's first page) reads the per-trace rollup,
-- never the spans: one row per trace instead of one per span. For that the rollup carries
-- everything a list row shows and filters on, exactly as the spans would give it:
--
-- - `LastSpanStart`: with `Start`, whether the trace has a span starting in a time range;
-- - `FirstSpan`: (not a root, start, name, service), whose `min` is the earliest root span,
--   or the earliest span when the root never arrived (the list's root name and service);
-- - `StatusSetSpans`: spans that set a status (the `unset` filter);
-- - `ModelNames`: request and response models both (`Models` keeps one per span, for
--   dashboards that count models);
-- - token and cost sums become Nullable: NULL when no span of the trace reported one
--   (unknown, not zero, as in the spans table), so a list sorted by tokens or cost and
--   the API's nulls mean the same as a sum over spans.
--
-- Rows written before this migration read the new columns from their DEFAULTs (a good
-- approximation: their token and cost sums stay 0 where unknown); the view writes exact
-- values from now on. ALTER ... MODIFY QUERY swaps the view's query in place, so no insert
-- runs without it.
ALTER TABLE ${db}.${traces}_trace_rollup
    ADD COLUMN IF NOT EXISTS `LastSpanStart` SimpleAggregateFunction(max, DateTime64(9)) DEFAULT End CODEC(ZSTD(1)) AFTER `End`;
ALTER TABLE ${db}.${traces}_trace_rollup
    ADD COLUMN IF NOT EXISTS `FirstSpan` SimpleAggregateFunction(min, Tuple(UInt8, DateTime64(9), String, String))
        DEFAULT (RootSpanName = '', Start, RootSpanName, RootServiceName) CODEC(ZSTD(1)) AFTER `RootServiceName`;
ALTER TABLE ${db}.${traces}_trace_rollup
    ADD COLUMN IF NOT EXISTS `StatusSetSpans` SimpleAggregateFunction(sum, UInt64) DEFAULT ErrorSpans CODEC(ZSTD(1)) AFTER `ErrorSpans`;
ALTER TABLE ${db}.${traces}_trace_rollup
    ADD COLUMN IF NOT EXISTS `ModelNames` SimpleAggregateFunction(groupUniqArrayArray, Array(String)) DEFAULT Models CODEC(ZSTD(1)) AFTER `Models`;
ALTER TABLE ${db}.${traces}_trace_rollup
    MODIFY COLUMN `InputTokens` SimpleAggregateFunction(sum, Nullable(UInt64)) CODEC(ZSTD(1));
ALTER TABLE ${db}.${traces}_trace_rollup
    MODIFY COLUMN `OutputTokens` SimpleAggregateFunction(sum, Nullable(UInt64)) CODEC(ZSTD(1));
ALTER TABLE ${db}.${traces}_trace_rollup
    MODIFY COLUMN `TotalTokens` SimpleAggregateFunction(sum, Nullable(UInt64)) CODEC(ZSTD(1));
ALTER TABLE ${db}.${traces}_trace_rollup
    MODIFY COLUMN `TotalCostUSD` SimpleAggregateFunction(sum, Nullable(Decimal(38, 12))) CODEC(ZSTD(1));

ALTER TABLE ${db}.${traces}_trace_rollup_mv MODIFY QUERY
SELECT
    TraceId,
    min(Timestamp) AS Start,
    max(Timestamp + toIntervalNanosecond(Duration)) AS End,
    max(Timestamp) AS LastSpanStart,
    maxIf(SpanName, ParentSpanId = '') AS RootSpanName,
    maxIf(ServiceName, ParentSpanId = '') AS RootServiceName,
    min((toUInt8(ParentSpanId != ''), Timestamp, toString(SpanName), toString(ServiceName))) AS FirstSpan,
    groupUniqArray(ServiceName) AS ServiceNames,
    groupUniqArrayIf(GenAIProvider, GenAIProvider != '') AS Providers,
    groupUniqArrayIf(if(GenAIRequestModel != '', GenAIRequestModel, GenAIResponseModel),
                     GenAIRequestModel != '' OR GenAIResponseModel != '') AS Models,
    arrayFilter(m -> m != '', groupUniqArrayArray([toString(GenAIRequestModel), toString(GenAIResponseModel)])) AS ModelNames,
    groupUniqArrayIf(GenAIPromptName, GenAIPromptName != '') AS Prompts,
    count() AS Spans,
    countIf(StatusCode = 'Error') AS ErrorSpans,
    countIf(StatusCode != 'Unset') AS StatusSetSpans,
    sum(GenAIInputTokens) AS InputTokens,
    sum(GenAIOutputTokens) AS OutputTokens,
    sum(GenAITotalTokens) AS TotalTokens,
    toDecimal128(sum(GenAITotalCostUSD), 12) AS TotalCostUSD,
    max(GenAISessionId) AS SessionId,
    max(GenAIUserId) AS UserId
FROM ${db}.${traces}
WHERE TraceId != ''
GROUP BY TraceId;
