-- Tenants: every row belongs to the tenant whose API key sent it (core/auth.py). The
-- default tenant (data sent without keys, and every row stored before this migration) is
-- the empty string, the new column's value in old parts.
--
-- `Tenant` closes the sorting key of every table keyed by ids another tenant could send
-- too: rows of two tenants never collapse or aggregate into one, and the retry gate
-- (`_span_keys`) never takes one tenant's span for another's. (ClickHouse only lets a
-- column added in the same ALTER, without a default, extend a sorting key.) Reads filter
-- on it; a set index skips the granules of other tenants on the spans table, whose primary
-- key stays the Collector's.
--
-- `_trace_id_ts` keeps one row per trace id: it only bounds a lookup in time, and every
-- read of spans filters the tenant.
ALTER TABLE ${db}.${traces}
    ADD COLUMN IF NOT EXISTS `Tenant` LowCardinality(String) CODEC(ZSTD(1)),
    MODIFY ORDER BY (ServiceName, SpanName, toDateTime(Timestamp), Timestamp, TraceId, SpanId, Tenant);
ALTER TABLE ${db}.${traces} ADD INDEX IF NOT EXISTS idx_tenant Tenant TYPE set(0) GRANULARITY 4;

ALTER TABLE ${db}.${traces}_span_keys
    ADD COLUMN IF NOT EXISTS `Tenant` LowCardinality(String) CODEC(ZSTD(1)),
    MODIFY ORDER BY (TraceId, SpanId, Tenant);
ALTER TABLE ${db}.${traces}_span_keys_mv MODIFY QUERY
SELECT Timestamp, TraceId, SpanId, Tenant
FROM ${db}.${traces};

ALTER TABLE ${db}.${traces}_trace_rollup
    ADD COLUMN IF NOT EXISTS `Tenant` LowCardinality(String) CODEC(ZSTD(1)),
    MODIFY ORDER BY (TraceId, Tenant);
ALTER TABLE ${db}.${traces}_trace_rollup_mv MODIFY QUERY
SELECT
    TraceId,
    Tenant,
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
GROUP BY TraceId, Tenant;

ALTER TABLE ${db}.${traces}_genai_usage_1m
    ADD COLUMN IF NOT EXISTS `Tenant` LowCardinality(String) CODEC(ZSTD(1)),
    MODIFY ORDER BY (Minute, ServiceName, Provider, RequestModel, ResponseModel, PromptName, PromptVersion, Tenant);
ALTER TABLE ${db}.${traces}_genai_usage_1m_mv MODIFY QUERY
SELECT
    toStartOfMinute(Timestamp) AS Minute,
    ServiceName,
    GenAIProvider AS Provider,
    GenAIRequestModel AS RequestModel,
    GenAIResponseModel AS ResponseModel,
    GenAIPromptName AS PromptName,
    GenAIPromptVersion AS PromptVersion,
    Tenant,
    count() AS Spans,
    countIf(IsCall) AS Requests,
    countIf(IsCall AND StatusCode = 'Error') AS Errors,
    sum(ifNull(GenAIInputTokens, 0)) AS InputTokens,
    sum(ifNull(GenAIOutputTokens, 0)) AS OutputTokens,
    sum(ifNull(GenAICachedInputTokens, 0)) AS CachedInputTokens,
    sum(ifNull(GenAIReasoningTokens, 0)) AS ReasoningTokens,
    sum(ifNull(GenAITotalTokens, 0)) AS TotalTokens,
    sumIf(ifNull(GenAITotalTokens, 0), GenAITokensEstimated) AS EstimatedTokens,
    countIf(IsCall AND GenAITokensEstimated) AS EstimatedRequests,
    countIf(IsCall AND GenAITotalCostUSD IS NULL) AS UnpricedRequests,
    toDecimal128(sum(ifNull(GenAIInputCostUSD, 0)), 12) AS InputCostUSD,
    toDecimal128(sum(ifNull(GenAIOutputCostUSD, 0)), 12) AS OutputCostUSD,
    toDecimal128(sum(ifNull(GenAITotalCostUSD, 0)), 12) AS TotalCostUSD,
    sumIf(Duration, IsCall) AS DurationSumNs,
    quantilesTDigestStateIf(0.5, 0.9, 0.95, 0.99)(Duration, IsCall) AS DurationQuantiles,
    min(Timestamp) AS FirstSeen,
    max(Timestamp) AS LastSeen
FROM
(
    SELECT *,
        GenAISpanKind IN ('llm', 'embedding', 'reranker')
            OR (GenAISpanKind = '' AND (GenAIRequestModel != '' OR GenAIResponseModel != '')) AS IsCall
    FROM ${db}.${traces}
)
WHERE IsCall OR GenAIPromptName != ''
GROUP BY Minute, ServiceName, Provider, RequestModel, ResponseModel, PromptName, PromptVersion, Tenant;

ALTER TABLE ${db}.${traces}_prompts
    ADD COLUMN IF NOT EXISTS `Tenant` LowCardinality(String) CODEC(ZSTD(1)),
    MODIFY ORDER BY (Name, Version, TemplateHash, Tenant);
