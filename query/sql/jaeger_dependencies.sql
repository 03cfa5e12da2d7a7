-- Service dependencies for the Jaeger-compatible API (GET /api/dependencies): one edge per
-- (parent service, child service) with the number of calls, where a call is a span whose
-- parent span belongs to another service and which started in [start, end].
--
-- Each span counts once however often it is stored (LIMIT 1 BY TraceId, SpanId). Parents are
-- looked up in the children's traces only, from `window_ns` before the range to as long after
-- it (a parent starts before its child; clock skew may put it a little after), so the read
-- stays within the range's partitions. A parent not stored (not sent yet, or outside that
-- window) makes no edge. Spans of one service calling each other make no edge either.
WITH children AS (
    SELECT TraceId, SpanId, ParentSpanId, ServiceName
    FROM ${db}.${table}
    WHERE Tenant = {tenant:String}
      AND Timestamp >= fromUnixTimestamp64Nano({start_ns:Int64})
      AND Timestamp <= fromUnixTimestamp64Nano({end_ns:Int64})
      AND ParentSpanId != ''
    LIMIT 1 BY TraceId, SpanId
),
parents AS (
    SELECT TraceId, SpanId, ServiceName
    FROM ${db}.${table}
    WHERE Tenant = {tenant:String}
      AND TraceId IN (SELECT TraceId FROM children)
      AND Timestamp >= fromUnixTimestamp64Nano(greatest(0, {start_ns:Int64} - {window_ns:Int64}))
      AND Timestamp <= fromUnixTimestamp64Nano(least({end_ns:Int64} + {window_ns:Int64}, 9223372036854775807))
    LIMIT 1 BY TraceId, SpanId
)
SELECT p.ServiceName AS parent, c.ServiceName AS child, count() AS call_count
FROM children AS c
INNER JOIN parents AS p ON c.TraceId = p.TraceId AND c.ParentSpanId = p.SpanId
WHERE p.ServiceName != c.ServiceName
  AND ({service:String} = '' OR p.ServiceName = {service:String} OR c.ServiceName = {service:String})
GROUP BY parent, child
ORDER BY parent ASC, child ASC
LIMIT {max_rows:UInt32}
