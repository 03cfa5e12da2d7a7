-- Trace search (GET /api/v1/traces).
--
-- 1. `matched`: traces with at least one span in [start, end) that passes every span-level
--    filter (all on the same span, as in Jaeger). An empty string / empty array / 0 means
--    "no filter"; ClickHouse folds those branches to constants.
-- 2. The whole of each matched trace is read, bounded in time by the trace-id lookup table
--    (min(Start) .. max(End) + 1, as the Collector's README does), and duplicate rows of a
--    span (a client retry after a lost acknowledgement) are collapsed with
--    LIMIT 1 BY TraceId, SpanId before anything is counted or summed.
-- 3. Trace-level filters; totals of the whole filtered set (window sums, computed before
--    the page is cut); then keyset pagination on (sort key, trace id): largest first
--    (newest, costliest, most tokens, longest), ties by trace id ascending. Costs sort in
--    integer nano-dollars and a trace without any as -1, so the key is exact and unpriced
--    traces come last.
WITH
matched AS (
    SELECT DISTINCT TraceId
    FROM ${db}.${table}
    WHERE Timestamp >= fromUnixTimestamp64Nano({start_ns:Int64})
      AND Timestamp < fromUnixTimestamp64Nano({end_ns:Int64})
      AND ({service:String} = '' OR ServiceName = {service:String})
      AND ({span_name:String} = '' OR SpanName = {span_name:String})
      AND ({provider:String} = '' OR GenAIProvider = {provider:String})
      AND ({model:String} = '' OR GenAIRequestModel = {model:String} OR GenAIResponseModel = {model:String})
      AND ({prompt:String} = '' OR GenAIPromptName = {prompt:String})
      AND ({session:String} = '' OR GenAISessionId = {session:String})
      AND ({user:String} = '' OR GenAIUserId = {user:String})
      AND arrayAll(
            (k, v) -> (mapContains(SpanAttributes, k) AND SpanAttributes[k] = v)
                   OR (mapContains(ResourceAttributes, k) AND ResourceAttributes[k] = v),
            {attr_keys:Array(String)}, {attr_values:Array(String)})
),
(SELECT (min(Start), max(End) + 1) FROM ${db}.${table}_trace_id_ts WHERE TraceId IN matched) AS trace_bounds,
spans AS (
    SELECT
        TraceId,
        ParentSpanId,
        SpanName,
        ServiceName,
        StatusCode,
        toUnixTimestamp64Nano(Timestamp) AS span_start_ns,
        span_start_ns + toInt64(Duration) AS span_end_ns,
        GenAIInputTokens,
        GenAIOutputTokens,
        GenAITotalTokens,
        GenAITotalCostUSD,
        GenAIRequestModel,
        GenAIResponseModel
    FROM ${db}.${table}
    WHERE TraceId IN matched
      AND Timestamp >= trace_bounds.1
      AND Timestamp <= trace_bounds.2
    LIMIT 1 BY TraceId, SpanId
)
SELECT *
FROM (
    SELECT
        *,
        count() OVER () AS matched_traces,
        sum(ifNull(input_tokens, 0)) OVER () AS matched_input_tokens,
        sum(ifNull(output_tokens, 0)) OVER () AS matched_output_tokens,
        sum(ifNull(total_cost_usd, 0)) OVER () AS matched_cost_usd
    FROM (
        SELECT
            TraceId AS trace_id,
            if(countIf(ParentSpanId = '') > 0,
               argMinIf(SpanName, span_start_ns, ParentSpanId = ''),
               argMin(SpanName, span_start_ns)) AS root_span_name,
            if(countIf(ParentSpanId = '') > 0,
               argMinIf(ServiceName, span_start_ns, ParentSpanId = ''),
               argMin(ServiceName, span_start_ns)) AS root_service_name,
            arraySort(groupUniqArray(ServiceName)) AS service_names,
            min(span_start_ns) AS start_ns,
            max(span_end_ns) - start_ns AS duration_ns,
            count() AS span_count,
            countIf(StatusCode = 'Error') AS error_count,
            countIf(StatusCode != 'Unset') AS status_set_count,
            sum(GenAIInputTokens) AS input_tokens,
            sum(GenAIOutputTokens) AS output_tokens,
            sum(GenAITotalTokens) AS total_tokens,
            toFloat64(sum(GenAITotalCostUSD)) AS total_cost_usd,
            arraySort(arrayFilter(m -> m != '',
                groupUniqArrayArray([toString(GenAIRequestModel), toString(GenAIResponseModel)]))) AS models,
            multiIf({sort:String} = 'cost', toInt64(round(ifNull(total_cost_usd, -1e-9) * 1e9)),
                    {sort:String} = 'tokens', toInt64(ifNull(total_tokens, ifNull(input_tokens, 0) + ifNull(output_tokens, 0))),
                    {sort:String} = 'duration', toInt64(duration_ns),
                    toInt64(start_ns)) AS sort_key
        FROM spans
        GROUP BY TraceId
        HAVING ({status:String} = ''
                OR ({status:String} = 'error' AND error_count > 0)
                OR ({status:String} = 'ok' AND error_count = 0)
                OR ({status:String} = 'unset' AND status_set_count = 0))
           AND duration_ns >= {min_duration_ns:Int64}
           AND ({min_tokens:UInt64} = 0
                OR ifNull(total_tokens, ifNull(input_tokens, 0) + ifNull(output_tokens, 0)) >= {min_tokens:UInt64})
           AND ({min_cost_usd:Float64} = 0 OR ifNull(total_cost_usd, 0) >= {min_cost_usd:Float64})
    )
)
WHERE {has_cursor:UInt8} = 0
   OR sort_key < {cursor_key:Int64}
   OR (sort_key = {cursor_key:Int64} AND trace_id > {cursor_trace_id:String})
ORDER BY sort_key DESC, trace_id ASC
LIMIT {limit:UInt32}
