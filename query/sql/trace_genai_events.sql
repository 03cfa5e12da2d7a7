-- The GenAI events of one trace that arrived as log records (GET /api/v1/traces/{id}): the
-- official instrumentations record prompt and completion content as events
-- (`gen_ai.client.inference.operation.details`, or the deprecated per-message
-- `gen_ai.*.message` / `gen_ai.choice`) on the LLM call's span, sent as logs. A record is
-- named by its EventName, or by the `event.name` attribute SDKs used before OTLP had that
-- field. Read at query time, beside the spans, so a span gets its messages whichever signal
-- arrived first. The logs table is sorted by service and time, so the read is bounded by the
-- trace's time (its id lookup table, seconds) with an hour either side, then found by the
-- TraceId bloom filter. A record stored twice (a replay before the gate saw it) is read once.
WITH
    (SELECT (min(Start), max(End)) FROM ${db}.${table}_trace_id_ts
     WHERE TraceId = {trace_id:String}) AS trace_bounds
SELECT
    SpanId,
    toUnixTimestamp64Nano(Timestamp) AS time_ns,
    if(EventName != '', EventName, LogAttributes['event.name']) AS name,
    LogAttributes,
    Body
FROM ${db}.${logs}
WHERE Tenant = {tenant:String}
  AND TraceId = {trace_id:String}
  AND startsWith(name, 'gen_ai.')
  AND (toUInt32(trace_bounds.2) = 4294967295
       OR TimestampTime BETWEEN trace_bounds.1 - 3600 AND trace_bounds.2 + 3600)
ORDER BY Timestamp, SpanId
LIMIT 1 BY SpanId, Timestamp, name, LogAttributes, Body
LIMIT {limit:UInt32}
