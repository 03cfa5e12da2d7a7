-- Every span of some traces, in one read: one trace by id (GET /api/v1/traces/{trace_id},
-- GET /api/traces/{traceID}) or the traces a Jaeger-compatible search found (GET /api/traces).
--
-- The time range comes from the trace-id lookup table, as in the Collector's README:
-- min(Start) .. max(End) + 1 over the traces (the table holds whole seconds of span start
-- times), so the read touches only the partitions the traces live in. Its columns are
-- DateTime (the Collector's schema), which ends in 2106 and saturates there: a trace with a
-- span starting later has End = 2106-02-07 06:28:15, and is then read without time bounds.
-- Not even a lower one: past 2106 the spans table's partition key (toDate(Timestamp)) wraps
-- around, so ClickHouse would prune the very partition such a span sits in. DateTime64(9) values
-- are read as integer nanoseconds so none are lost. A span stored twice is returned
-- once (LIMIT 1 BY TraceId, SpanId, applied after ORDER BY). Rows come trace by trace in the
-- order of `trace_ids` (the search's newest-first order), each trace's spans by start time,
-- so a response cut at `max_spans` keeps the newest traces whole. `genai_columns` is every
-- stored GenAI column (sinks/clickhouse/genai.py, from the one list in core/genai.py).
-- An export reads the spans of many traces in pieces of `max_spans`, each continuing after
-- the last row of the one before: the keyset (position in `trace_ids`, start, span id), the
-- order of the rows. (0, 0, '') reads from the first row.
WITH
    (SELECT (min(Start), max(End)) FROM ${db}.${table}_trace_id_ts
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
  AND (toUInt32(trace_bounds.2) = 4294967295
       OR (Timestamp >= trace_bounds.1 AND Timestamp <= trace_bounds.2 + 1))
  AND (indexOf({trace_ids:Array(String)}, TraceId), start_ns, SpanId)
      > ({after_trace:UInt64}, {after_ns:Int64}, {after_span_id:String})
ORDER BY indexOf({trace_ids:Array(String)}, TraceId) ASC, start_ns ASC, SpanId ASC
LIMIT 1 BY TraceId, SpanId
LIMIT {max_spans:UInt32}
