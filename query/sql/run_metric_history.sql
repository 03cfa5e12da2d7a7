-- Every logged value of every metric of one run (GET /api/v1/runs/{id}): by key, then step,
-- timestamp and value. Each row of the table is a distinct (key, step, timestamp, value),
-- MLflow's own primary key; DISTINCT drops a retried log-metric not yet merged away.
SELECT DISTINCT Key AS key, Step AS step, Timestamp AS timestamp_ms, Value AS value
FROM ${db}.${traces}_run_metrics
WHERE Tenant = {tenant:String} AND RunId = {run_id:String}
ORDER BY key, step, timestamp_ms, value
LIMIT {limit:UInt32}
