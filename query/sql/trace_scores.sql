-- The scores of one trace (GET /api/v1/traces/{id}, GET /api/v1/scores?trace_id=): every
-- judgement on it or its spans (the API's, MLflow assessments, evaluation events; migration
-- 008's `_scores`), the newest version of each (FINAL), deleted ones left out, oldest first;
-- optionally only those of one span or one name.
SELECT
    ScoreId AS score_id,
    Name AS name,
    DataType AS data_type,
    NumericValue AS numeric_value,
    StringValue AS string_value,
    Comment AS comment,
    Source AS source,
    Author AS author,
    Kind AS kind,
    SpanId AS span_id,
    RunId AS run_id,
    Error AS error,
    Metadata AS metadata,
    toUnixTimestamp64Nano(Timestamp) AS timestamp_ns
FROM ${db}.${traces}_scores FINAL
WHERE Tenant = {tenant:String} AND TraceId = {trace_id:String} AND NOT Deleted
  AND ({span_id:String} = '' OR SpanId = {span_id:String})
  AND ({name:String} = '' OR Name = {name:String})
ORDER BY Timestamp, ScoreId
LIMIT {limit:UInt32}
