-- The usage rollup's rows (`<traces>_genai_usage_1m`, migrations 003 and 009: the same
-- columns, rows and definitions), computed from the spans of the range, with two more keys:
-- the user and the session of each span's trace. genai_metrics.sql reads these instead of
-- the rollup when grouped by user or session (GET /api/v1/metrics/genai?group_by=user), as
-- the rollup has neither: a user's or a session's many values would multiply its rows.
--
-- A trace's user and session are the per-trace rollup's (the greatest of its spans', as
-- GET /api/v1/sessions groups turns), so a model call is counted for its conversation's
-- user even when only the agent span above it names one. The rollup rows of a trace start
-- within it: rows starting `window` (the API's max_trace_duration) before the range hold
-- every trace with a span in it.
SELECT
    toStartOfMinute(s.Timestamp) AS Minute,
    s.ServiceName AS ServiceName,
    s.GenAIProvider AS Provider,
    s.GenAIRequestModel AS RequestModel,
    s.GenAIResponseModel AS ResponseModel,
    s.GenAIPromptName AS PromptName,
    s.GenAIPromptVersion AS PromptVersion,
    s.Tenant AS Tenant,
    -- Only the key the metrics group by: a day's sessions are as many as its traces, and a
    -- row per session, each with its quantile state, is gigabytes when grouping by user.
    if({by_user:UInt8}, ifNull(t.TraceUserId, ''), '') AS UserId,
    if({by_session:UInt8}, ifNull(t.TraceSessionId, ''), '') AS SessionId,
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
    quantilesTDigestStateIf(0.5, 0.9, 0.95, 0.99)(Duration, IsCall) AS DurationQuantiles
FROM
(
    SELECT
        TraceId, Timestamp, ServiceName, GenAIProvider, GenAIRequestModel, GenAIResponseModel, GenAIPromptName,
        GenAIPromptVersion, Tenant, StatusCode, Duration, GenAIInputTokens, GenAIOutputTokens,
        GenAICachedInputTokens, GenAIReasoningTokens, GenAITotalTokens, GenAITokensEstimated, GenAIUsageScope,
        GenAIInputCostUSD, GenAIOutputCostUSD, GenAITotalCostUSD,
        GenAISpanKind IN ('llm', 'embedding', 'reranker')
            OR (GenAISpanKind = '' AND (GenAIRequestModel != '' OR GenAIResponseModel != '')) AS IsCall
    FROM ${db}.${traces}
    WHERE Tenant = {tenant:String}
      AND Timestamp >= toDateTime({start_s:UInt32})
      AND Timestamp < toDateTime({end_s:UInt32})
      AND (IsCall OR GenAIPromptName != '' OR GenAIUsageScope = 'aggregate')
) AS s
LEFT JOIN
(
    SELECT TraceId, max(SessionId) AS TraceSessionId, max(UserId) AS TraceUserId
    FROM ${db}.${traces}_trace_rollup
    WHERE Tenant = {tenant:String}
      AND Start >= toDateTime64({start_s:UInt32}, 9) - toIntervalNanosecond({window_ns:Int64})
      AND Start < toDateTime64({end_s:UInt32}, 9) + toIntervalNanosecond({window_ns:Int64})
      -- A trace without the key grouped by is the join's default (''): only the others are
      -- held in the join's table.
      AND (({by_user:UInt8} AND UserId != '') OR ({by_session:UInt8} AND SessionId != ''))
    GROUP BY TraceId
) AS t ON s.TraceId = t.TraceId
GROUP BY Minute, ServiceName, Provider, RequestModel, ResponseModel, PromptName, PromptVersion, Tenant, UserId,
         SessionId
