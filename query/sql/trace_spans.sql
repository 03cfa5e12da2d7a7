-- Every span of some traces, in one read: one trace by id (GET /api/v1/traces/{trace_id},
-- GET /api/traces/{traceID}) or the traces a Jaeger-compatible search found (GET /api/traces).
--
-- The time range comes from the trace-id lookup table, as in the Collector's README:
-- min(Start) .. max(End) + 1 over the traces (the table holds whole seconds of span start
-- times), so the read touches only the partitions the traces live in. DateTime64(9) values
-- are read as integer nanoseconds so none are lost. A span stored twice is returned
-- once (LIMIT 1 BY TraceId, SpanId, applied after ORDER BY). Rows come trace by trace in the
-- order of `trace_ids` (the search's newest-first order), each trace's spans by start time,
-- so a response cut at `max_spans` keeps the newest traces whole. `genai_columns` is every
-- stored GenAI column (sinks/clickhouse/genai.py, from the one list in core/genai.py).
WITH
    (SELECT (min(Start), max(End) + 1) FROM ${db}.${table}_trace_id_ts
     WHERE TraceId IN {trace_ids:Array(String)}) AS trace_bounds
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
    ${genai_columns}
FROM ${db}.${table}
WHERE TraceId IN {trace_ids:Array(String)}
  AND Tenant = {tenant:String}
  AND Timestamp >= trace_bounds.1
  AND Timestamp <= trace_bounds.2
ORDER BY indexOf({trace_ids:Array(String)}, TraceId) ASC, start_ns ASC, SpanId ASC
LIMIT 1 BY TraceId, SpanId
LIMIT {max_spans:UInt32}
