-- Where a span's reported usage belongs (genai_normalize's `usage_scope`): "aggregate" = the
-- sum of the model calls below the span (DSPy's root span under MLflow), "in_aggregate" = a
-- call whose usage an ancestor's aggregate holds, "repeated" = usage repeating descendants'
-- own reports (its counts are left empty), "" = the span's own.
--
-- The usage rollup now takes aggregate spans' tokens and cost (they are not requests), and a
-- call inside an aggregate is not unpriced: its usage and cost sit on the aggregate.
ALTER TABLE ${db}.${traces}
    ADD COLUMN IF NOT EXISTS `GenAIUsageScope` LowCardinality(String) CODEC(ZSTD(1)) AFTER `GenAITokensEstimated`;

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
    countIf(IsCall AND GenAITotalCostUSD IS NULL AND GenAIUsageScope != 'in_aggregate') AS UnpricedRequests,
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
WHERE IsCall OR GenAIPromptName != '' OR GenAIUsageScope = 'aggregate'
GROUP BY Minute, ServiceName, Provider, RequestModel, ResponseModel, PromptName, PromptVersion, Tenant;
