-- MLflow traces (their `_trace_info` rows, migration 008) of an experiment or of the run that
-- produced them (metadata mlflow.sourceRun), newest first, with the tokens, cost and span
-- count tracehouse summed for them in the per-trace rollup (`<traces>_trace_rollup`, keyed
-- by trace id). A trace whose spans have not arrived has no rollup row: span_count 0 and
-- null tokens and cost. Filters: '' = any.
WITH info AS
(
    SELECT
        TraceId, RequestId, ExperimentId, RequestTime, ExecutionDuration, State,
        Tags['mlflow.traceName'] AS trace_name,
        Metadata['mlflow.sourceRun'] AS source_run_id
    FROM ${db}.${traces}_trace_info FINAL
    WHERE Tenant = {tenant:String}
      AND ({experiment_id:String} = '' OR ExperimentId = {experiment_id:String})
      AND ({run_id:String} = '' OR Metadata['mlflow.sourceRun'] = {run_id:String})
    ORDER BY RequestTime DESC, TraceId
    LIMIT {limit:UInt32}
)
SELECT
    i.TraceId AS trace_id,
    i.RequestId AS request_id,
    i.ExperimentId AS experiment_id,
    i.trace_name AS name,
    i.State AS state,
    i.RequestTime AS request_ms,
    i.ExecutionDuration AS duration_ms,
    i.source_run_id AS source_run_id,
    r.span_count AS span_count,
    r.input_tokens AS input_tokens,
    r.output_tokens AS output_tokens,
    r.total_tokens AS total_tokens,
    r.total_cost_usd AS total_cost_usd
FROM info AS i
LEFT JOIN
(
    SELECT
        TraceId,
        sum(Spans) AS span_count,
        sum(InputTokens) AS input_tokens,
        sum(OutputTokens) AS output_tokens,
        sum(TotalTokens) AS total_tokens,
        toFloat64(sum(TotalCostUSD)) AS total_cost_usd
    FROM ${db}.${traces}_trace_rollup
    WHERE TraceId IN (SELECT TraceId FROM info) AND Tenant = {tenant:String}
    GROUP BY TraceId
) AS r ON r.TraceId = i.TraceId
ORDER BY i.RequestTime DESC, i.TraceId
