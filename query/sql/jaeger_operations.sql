-- Operations (span names) of one service, with their span kinds, for the Jaeger-compatible
-- API (GET /api/services/{service}/operations and GET /api/operations).
--
-- (ServiceName, SpanName) is the primary key's prefix: the read is a range of the index.
-- Jaeger's API sends no time range, so the caller passes a window start (7 days by default).
SELECT DISTINCT SpanName AS name, SpanKind AS kind
FROM ${db}.${table}
WHERE ServiceName = {service:String}
  AND Tenant = {tenant:String}
  AND Timestamp >= fromUnixTimestamp64Nano({since_ns:Int64})
ORDER BY name ASC, kind ASC
LIMIT {max_rows:UInt32}
