-- MLflow experiments of a tenant (GET /api/v1/experiments, GET /api/v1/experiments/{id}),
-- newest first, each with its number of active runs and of traces. The tables are the
-- MLflow receiver's (migration 008): ReplacingMergeTree rows read with FINAL, the newest
-- version of each row; every read names the tenant. `experiment_id` = '' reads them all;
-- `active_only` = 1 leaves deleted experiments out.
WITH
    run_counts AS
    (
        SELECT ExperimentId, count() AS run_count
        FROM ${db}.${traces}_runs FINAL
        WHERE Tenant = {tenant:String} AND LifecycleStage = 'active'
          AND ({experiment_id:String} = '' OR ExperimentId = {experiment_id:String})
        GROUP BY ExperimentId
    ),
    trace_counts AS
    (
        SELECT ExperimentId, count() AS trace_count
        FROM ${db}.${traces}_trace_info FINAL
        WHERE Tenant = {tenant:String}
          AND ({experiment_id:String} = '' OR ExperimentId = {experiment_id:String})
        GROUP BY ExperimentId
    )
SELECT
    e.ExperimentId AS experiment_id,
    e.Name AS name,
    e.LifecycleStage AS lifecycle_stage,
    e.CreationTime AS creation_ms,
    e.LastUpdateTime AS last_update_ms,
    e.Tags AS tags,
    r.run_count AS run_count,
    t.trace_count AS trace_count
FROM ${db}.${traces}_experiments AS e FINAL
LEFT JOIN run_counts AS r ON r.ExperimentId = e.ExperimentId
LEFT JOIN trace_counts AS t ON t.ExperimentId = e.ExperimentId
WHERE e.Tenant = {tenant:String}
  AND ({experiment_id:String} = '' OR e.ExperimentId = {experiment_id:String})
  AND ({active_only:UInt8} = 0 OR e.LifecycleStage = 'active')
ORDER BY e.CreationTime DESC, e.ExperimentId DESC
LIMIT {limit:UInt32}
