-- Usage of one prompt per version (GET /api/v1/prompts/{name}), from the usage rollup.
-- first/last seen are over all time; the usage sums and latency only count the minutes in
-- [start_s, end_s) (the whole table by default), so a version used only outside the
-- window is still listed, with zero usage.
SELECT
    toString(PromptVersion) AS version,
    toUnixTimestamp64Nano(min(FirstSeen)) AS first_seen_ns,
    toUnixTimestamp64Nano(max(LastSeen)) AS last_seen_ns,
    sumIf(Spans, in_window) AS spans,
    sumIf(Requests, in_window) AS requests,
    sumIf(Errors, in_window) AS errors,
    sumIf(InputTokens, in_window) AS input_tokens,
    sumIf(OutputTokens, in_window) AS output_tokens,
    sumIf(TotalTokens, in_window) AS total_tokens,
    sumIf(TotalCostUSD, in_window) AS cost_usd,
    sumIf(DurationSumNs, in_window) AS duration_sum_ns,
    quantilesTDigestMergeIf(0.5, 0.9, 0.95, 0.99)(DurationQuantiles, in_window) AS duration_quantiles_ns
FROM
(
    SELECT
        *,
        Minute >= toDateTime({start_s:UInt32}) AND Minute < toDateTime({end_s:UInt32}) AS in_window
    FROM ${db}.${traces}_genai_usage_1m
    WHERE PromptName = {name:String} AND Tenant = {tenant:String}
)
GROUP BY PromptVersion
