-- GenAI usage time series (GET /api/v1/metrics/genai), read from the per-minute usage
-- rollup `${traces}_genai_usage_1m`, never from the spans table.
--
-- Rollup rows are partial aggregates (one per insert block until merges combine them), so
-- everything is re-aggregated here: sum() of the SimpleAggregateFunction columns and
-- quantilesTDigestMerge of the latency digests. One scan computes three levels with
-- GROUPING SETS: each (bucket, group) point, each group's totals over the whole range,
-- and the grand total. `grouping(...)` tells the levels apart (1 = aggregated away).
--
-- A dimension not asked for in `group_by` becomes the constant '' (ClickHouse folds the
-- `if` on a constant parameter), so the SQL text never depends on user input. `start_s`
-- and `end_s` are multiples of `step_s` (the API aligns them), so every bucket is whole.
--
-- The usage_rows slot is the rollup table, whose rows know no user or session (user_id and
-- session_id are then ''). Grouped by user or session, the store loads this file a second
-- time with the rollup's rows computed from the spans instead (genai_usage_spans.sql).
SELECT
    grouping(bucket_s) AS all_buckets,
    grouping(g_service, g_provider, g_model, g_response_model, g_prompt, g_prompt_version, g_user, g_session) != 0
        AS all_groups,
    bucket_s,
    g_service,
    g_provider,
    g_model,
    g_response_model,
    g_prompt,
    g_prompt_version,
    g_user,
    g_session,
    sum(Spans) AS spans,
    sum(Requests) AS requests,
    sum(Errors) AS errors,
    sum(InputTokens) AS input_tokens,
    sum(OutputTokens) AS output_tokens,
    sum(CachedInputTokens) AS cached_input_tokens,
    sum(ReasoningTokens) AS reasoning_tokens,
    sum(TotalTokens) AS total_tokens,
    sum(EstimatedTokens) AS estimated_tokens,
    sum(EstimatedRequests) AS estimated_requests,
    sum(UnpricedRequests) AS unpriced_requests,
    sum(TotalCostUSD) AS cost_usd,
    sum(InputCostUSD) AS input_cost_usd,
    sum(OutputCostUSD) AS output_cost_usd,
    sum(DurationSumNs) AS duration_sum_ns,
    quantilesTDigestMerge(0.5, 0.9, 0.95, 0.99)(DurationQuantiles) AS duration_quantiles_ns
FROM
(
    SELECT
        *,
        intDiv(toUnixTimestamp(Minute), {step_s:UInt32}) * {step_s:UInt32} AS bucket_s,
        if({by_service:UInt8}, toString(ServiceName), '') AS g_service,
        if({by_provider:UInt8}, toString(Provider), '') AS g_provider,
        if({by_model:UInt8}, if(RequestModel != '', toString(RequestModel), toString(ResponseModel)), '') AS g_model,
        if({by_response_model:UInt8}, toString(ResponseModel), '') AS g_response_model,
        if({by_prompt:UInt8}, toString(PromptName), '') AS g_prompt,
        if({by_prompt_version:UInt8}, toString(PromptVersion), '') AS g_prompt_version,
        if({by_user:UInt8}, ${user_id}, '') AS g_user,
        if({by_session:UInt8}, ${session_id}, '') AS g_session
    FROM ${usage_rows}
    WHERE Tenant = {tenant:String}
      AND Minute >= toDateTime({start_s:UInt32})
      AND Minute < toDateTime({end_s:UInt32})
      AND ({service:String} = '' OR ServiceName = {service:String})
      AND ({provider:String} = '' OR Provider IN ({provider:String}, {provider_normalized:String}))
      AND ({model:String} = '' OR RequestModel IN ({model:String}, {model_bare:String}) OR ResponseModel IN ({model:String}, {model_bare:String}))
      AND ({prompt:String} = '' OR PromptName = {prompt:String})
      AND ({prompt_version:String} = '' OR PromptVersion = {prompt_version:String})
)
GROUP BY GROUPING SETS (
    (bucket_s, g_service, g_provider, g_model, g_response_model, g_prompt, g_prompt_version, g_user, g_session),
    (g_service, g_provider, g_model, g_response_model, g_prompt, g_prompt_version, g_user, g_session),
    ()
)
-- Totals first, so a response cut at `max_rows` (the API then refuses it) still has them.
ORDER BY all_groups DESC, all_buckets DESC, g_service, g_provider, g_model, g_response_model, g_prompt,
         g_prompt_version, g_user, g_session, bucket_s
LIMIT {max_rows:UInt32}
