-- MLflow runs with their params, tags and latest metrics (GET /api/v1/experiments/{id}: an
-- experiment's runs; GET /api/v1/runs/{id}: one run and its children). The MLflow
-- receiver's tables (migration 008), ReplacingMergeTree rows read with FINAL; a deleted tag
-- is a newer row with Deleted = 1, left out after FINAL picked it.
--
-- Filters ('' = any): `experiment_id`, `run_id`, `parent_run_id` (runs whose tag
-- mlflow.parentRunId names it: MLflow's nesting). `active_only` = 1 leaves deleted runs
-- out. A metric's latest value is the one at its largest (step, timestamp, value), as
-- MLflow's own stores pick it. Newest runs first.
WITH
    runs AS
    (
        SELECT RunId, ExperimentId, RunName, UserId, Status, StartTime, EndTime, LifecycleStage
        FROM ${db}.${traces}_runs FINAL
        WHERE Tenant = {tenant:String}
          AND ({experiment_id:String} = '' OR ExperimentId = {experiment_id:String})
          AND ({run_id:String} = '' OR RunId = {run_id:String})
          AND ({active_only:UInt8} = 0 OR LifecycleStage = 'active')
          AND ({parent_run_id:String} = '' OR RunId IN (
                SELECT RunId
                FROM ${db}.${traces}_run_tags FINAL
                WHERE Tenant = {tenant:String} AND Key = 'mlflow.parentRunId'
                  AND Value = {parent_run_id:String} AND NOT Deleted))
        ORDER BY StartTime DESC, RunId
        LIMIT {limit:UInt32}
    ),
    tags AS
    (
        SELECT RunId, groupArray(Key) AS tag_keys, groupArray(Value) AS tag_values
        FROM ${db}.${traces}_run_tags FINAL
        WHERE Tenant = {tenant:String} AND RunId IN (SELECT RunId FROM runs) AND NOT Deleted
        GROUP BY RunId
    ),
    params AS
    (
        SELECT RunId, groupArray(Key) AS param_keys, groupArray(Value) AS param_values
        FROM ${db}.${traces}_run_params FINAL
        WHERE Tenant = {tenant:String} AND RunId IN (SELECT RunId FROM runs)
        GROUP BY RunId
    ),
    metrics AS
    (
        SELECT RunId, groupArray(Key) AS metric_keys, groupArray(latest) AS metric_values
        FROM
        (
            SELECT RunId, Key, argMax(Value, (Step, Timestamp, Value)) AS latest
            FROM ${db}.${traces}_run_metrics
            WHERE Tenant = {tenant:String} AND RunId IN (SELECT RunId FROM runs)
            GROUP BY RunId, Key
        )
        GROUP BY RunId
    )
SELECT
    r.RunId AS run_id,
    r.ExperimentId AS experiment_id,
    r.RunName AS run_name,
    r.UserId AS user_id,
    r.Status AS status,
    r.StartTime AS start_ms,
    r.EndTime AS end_ms,
    r.LifecycleStage AS lifecycle_stage,
    t.tag_keys AS tag_keys,
    t.tag_values AS tag_values,
    p.param_keys AS param_keys,
    p.param_values AS param_values,
    m.metric_keys AS metric_keys,
    m.metric_values AS metric_values
FROM runs AS r
LEFT JOIN tags AS t ON t.RunId = r.RunId
LEFT JOIN params AS p ON p.RunId = r.RunId
LEFT JOIN metrics AS m ON m.RunId = r.RunId
ORDER BY r.StartTime DESC, r.RunId
