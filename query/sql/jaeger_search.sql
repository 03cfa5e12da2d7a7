-- Trace ids for the Jaeger-compatible search (GET /api/traces).
--
-- A trace matches when one of its spans of `service` (and `operation`, when given) started
-- in [start, end), lasted within [min_duration, max_duration] and has every tag. Matching
-- traces come newest first (by their latest matching span), at most `limit`; the caller then
-- reads the whole of each trace (trace_spans.sql). A span stored twice only repeats a
-- trace id, which GROUP BY folds.
--
-- A tag (k, v) holds when the span shows it in its Jaeger form (query/jaeger/rows.py): a span
-- attribute or resource (process) attribute `k` equal to `v`, or one of the tags derived
-- from the columns, compared the way they are shown (span.kind lower case, otel.status_code
-- OK/ERROR, error=true for status Error, token counts and costs as numbers). Empty strings
-- and NULLs are "not known" and match nothing. Both arrays empty = no tag filter.
SELECT
    TraceId AS trace_id,
    max(toUnixTimestamp64Nano(Timestamp)) AS newest_ns
FROM ${db}.${table}
WHERE ServiceName = {service:String}
  AND Tenant = {tenant:String}
  AND ({operation:String} = '' OR SpanName = {operation:String})
  AND Timestamp >= fromUnixTimestamp64Nano({start_ns:Int64})
  AND Timestamp < fromUnixTimestamp64Nano({end_ns:Int64})
  AND Duration >= {min_duration_ns:UInt64}
  AND Duration <= {max_duration_ns:UInt64}
  AND TraceId != ''
  AND arrayAll(
        (k, v) -> ifNull(
            (mapContains(SpanAttributes, k) AND SpanAttributes[k] = v AND NOT startsWith(k, 'tracehouse.genai.'))
            OR (mapContains(ResourceAttributes, k) AND ResourceAttributes[k] = v)
            OR multiIf(
                k = 'span.kind', SpanKind NOT IN ('Unspecified', '') AND lower(SpanKind) = v,
                k = 'error', v = 'true' AND StatusCode = 'Error',
                k = 'otel.status_code', (v = 'OK' AND StatusCode = 'Ok') OR (v = 'ERROR' AND StatusCode = 'Error'),
                k = 'otel.status_description', StatusMessage != '' AND StatusMessage = v,
                k = 'otel.scope.name', ScopeName != '' AND ScopeName = v,
                k = 'otel.scope.version', ScopeVersion != '' AND ScopeVersion = v,
                k = 'w3c.tracestate', TraceState != '' AND TraceState = v,
                k = 'gen_ai.provider.name', GenAIProvider != '' AND GenAIProvider = v,
                k = 'gen_ai.operation.name', GenAIOperation != '' AND GenAIOperation = v,
                k = 'gen_ai.request.model', GenAIRequestModel != '' AND GenAIRequestModel = v,
                k = 'gen_ai.response.model', GenAIResponseModel != '' AND GenAIResponseModel = v,
                k = 'tracehouse.genai.span_kind', GenAISpanKind != '' AND GenAISpanKind = v,
                k = 'tracehouse.genai.input_tokens', GenAIInputTokens = toUInt64OrNull(v),
                k = 'tracehouse.genai.output_tokens', GenAIOutputTokens = toUInt64OrNull(v),
                k = 'tracehouse.genai.cached_input_tokens', GenAICachedInputTokens = toUInt64OrNull(v),
                k = 'tracehouse.genai.reasoning_tokens', GenAIReasoningTokens = toUInt64OrNull(v),
                k = 'tracehouse.genai.total_tokens', GenAITotalTokens = toUInt64OrNull(v),
                k = 'tracehouse.genai.tokens_estimated',
                    toString(GenAITokensEstimated) = v
                    AND (GenAITokensEstimated OR GenAIInputTokens IS NOT NULL OR GenAIOutputTokens IS NOT NULL
                         OR GenAICachedInputTokens IS NOT NULL OR GenAIReasoningTokens IS NOT NULL
                         OR GenAITotalTokens IS NOT NULL),
                k = 'tracehouse.genai.input_cost_usd', toFloat64(GenAIInputCostUSD) = toFloat64OrNull(v),
                k = 'tracehouse.genai.output_cost_usd', toFloat64(GenAIOutputCostUSD) = toFloat64OrNull(v),
                k = 'tracehouse.genai.total_cost_usd', toFloat64(GenAITotalCostUSD) = toFloat64OrNull(v),
                k = 'tracehouse.genai.cost_source', GenAICostSource != '' AND GenAICostSource = v,
                k = 'tracehouse.genai.prompt.name', GenAIPromptName != '' AND GenAIPromptName = v,
                k = 'tracehouse.genai.prompt.version', GenAIPromptVersion != '' AND GenAIPromptVersion = v,
                k = 'tracehouse.genai.session_id', GenAISessionId != '' AND GenAISessionId = v,
                k = 'tracehouse.genai.user_id', GenAIUserId != '' AND GenAIUserId = v,
                false),
            false),
        {tag_keys:Array(String)}, {tag_values:Array(String)})
GROUP BY TraceId
ORDER BY newest_ns DESC, trace_id ASC
LIMIT {limit:UInt32}
