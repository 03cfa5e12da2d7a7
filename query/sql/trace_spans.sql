-- Every span of one trace (GET /api/v1/traces/{trace_id}).
--
-- The time range comes from the trace-id lookup table, as in the Collector's README:
-- min(Start) .. max(End) + 1 (the table holds whole seconds of span start times), so the
-- read touches only the partitions the trace lives in. A span stored twice (a client
-- retry after a lost acknowledgement) is returned once: LIMIT 1 BY SpanId. DateTime64(9)
-- values are read as integer nanoseconds so none are lost.
WITH
    (SELECT min(Start) FROM ${db}.${table}_trace_id_ts WHERE TraceId = {trace_id:String}) AS trace_lo,
    (SELECT max(End) + 1 FROM ${db}.${table}_trace_id_ts WHERE TraceId = {trace_id:String}) AS trace_hi
SELECT
    TraceId,
    SpanId,
    ParentSpanId,
    TraceState,
    SpanName,
    SpanKind,
    ServiceName,
    toUnixTimestamp64Nano(Timestamp) AS start_ns,
    Duration,
    StatusCode,
    StatusMessage,
    ResourceAttributes,
    ScopeName,
    ScopeVersion,
    SpanAttributes,
    arrayMap(t -> toUnixTimestamp64Nano(t), `Events.Timestamp`) AS event_times_ns,
    `Events.Name`,
    `Events.Attributes`,
    `Links.TraceId`,
    `Links.SpanId`,
    `Links.TraceState`,
    `Links.Attributes`,
    GenAIProvider,
    GenAIOperation,
    GenAISpanKind,
    GenAIRequestModel,
    GenAIResponseModel,
    GenAIInputTokens,
    GenAIOutputTokens,
    GenAICachedInputTokens,
    GenAIReasoningTokens,
    GenAITotalTokens,
    GenAITokensEstimated,
    GenAIInputCostUSD,
    GenAIOutputCostUSD,
    GenAITotalCostUSD,
    GenAICostSource,
    GenAICostPriceVersion,
    GenAIPromptName,
    GenAIPromptVersion,
    GenAIPromptTemplateHash,
    GenAIPromptSource,
    GenAISessionId,
    GenAIUserId
FROM ${db}.${table}
WHERE TraceId = {trace_id:String}
  AND Timestamp >= trace_lo
  AND Timestamp <= trace_hi
ORDER BY start_ns ASC, SpanId ASC
LIMIT 1 BY SpanId
LIMIT {max_spans:UInt32}
