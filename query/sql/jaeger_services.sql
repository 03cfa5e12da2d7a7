-- Service names for the Jaeger-compatible API (GET /api/services).
--
-- Jaeger's API sends no time range here, so the caller passes a window start (the last
-- 7 days by default). ServiceName leads the primary key and is LowCardinality: a DISTINCT
-- over the window's partitions reads one small dictionary-encoded column.
SELECT DISTINCT ServiceName AS service
FROM ${db}.${table}
WHERE Timestamp >= fromUnixTimestamp64Nano({since_ns:Int64})
  AND Tenant = {tenant:String}
  AND ServiceName != ''
ORDER BY service ASC
LIMIT {max_rows:UInt32}
