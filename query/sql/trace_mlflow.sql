-- A trace's MLflow trace info (GET /api/v1/traces/{id}), when an MLflow client logged it:
-- its experiment, MLflow request id, tags and metadata (migration 008's `_trace_info`).
SELECT ExperimentId AS experiment_id, RequestId AS request_id, Tags AS tags, Metadata AS metadata
FROM ${db}.${traces}_trace_info FINAL
WHERE Tenant = {tenant:String} AND TraceId = {trace_id:String}
