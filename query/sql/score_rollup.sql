-- Scores aggregated by time, score name and the GenAI labels of what they judge (GET
-- /api/v1/metrics/genai?scores=true): count, mean/min/max of the values that are numbers
-- (numeric scores, and booleans as 1/0), the distribution of labels (categorical values,
-- booleans' true/false, and the labels evaluation events give numeric scores), failed
-- evaluations.
--
-- Why a query and no materialized view: a score is replaced (same id) or deleted at any
-- time, and it may arrive before or after the spans it judges. A view sums what is inserted,
-- once: it could not take a replaced score's old value back out, nor learn a span's model
-- after the score was summed. So this reads the live scores (FINAL, deleted ones left out) of
-- the range and joins the labels of their traces' spans from `_span_keys` (migration 011:
-- a primary-key read per scored trace, never the spans table). Every figure is therefore
-- exact whatever the order, repeats, updates and deletions were (BENCHMARKS.md: its cost).
--
-- What a score is about: the span it judges when that span has a model or a prompt; else
-- (a whole-trace score, or one on an agent or tool span) every GenAI span of its trace, so a
-- trace that used two prompt versions counts its score under both; else nothing (labels
-- ''). A score counts once per group it falls in (DISTINCT below), and once in its name's
-- totals however many groups it is in. Times are the scores' own (when the judgement was
-- made); `start_s`, `end_s` are multiples of `step_s`.
WITH
scored AS (
    SELECT
        TraceId, SpanId, ScoreId, Name, DataType, NumericValue, StringValue,
        Error != '' AS failed,
        DataType != 'categorical' AND isFinite(ifNull(NumericValue, nan)) AS has_number,
        intDiv(toUnixTimestamp(Timestamp), {step_s:UInt32}) * {step_s:UInt32} AS bucket_s
    FROM ${db}.${traces}_scores FINAL
    WHERE Tenant = {tenant:String}
      AND NOT Deleted
      AND Timestamp >= toDateTime64({start_s:UInt32}, 3)
      AND Timestamp < toDateTime64({end_s:UInt32}, 3)
      AND ({score_name:String} = '' OR Name = {score_name:String})
),
labels AS (
    SELECT
        TraceId,
        groupUniqArray((SpanId, toString(ServiceName), toString(Provider), toString(RequestModel),
                        toString(ResponseModel), toString(PromptName), toString(PromptVersion))) AS spans
    FROM ${db}.${traces}_span_keys
    WHERE Tenant = {tenant:String}
      AND TraceId IN (SELECT TraceId FROM scored)
      AND (RequestModel != '' OR ResponseModel != '' OR PromptName != '')
    GROUP BY TraceId
),
labelled AS (
    SELECT
        s.*,
        arrayFilter(x -> x.1 = s.SpanId, l.spans) AS own,
        arrayJoin(if(s.SpanId != '' AND notEmpty(own), own,
                     if(notEmpty(l.spans), l.spans, [('', '', '', '', '', '', '')]))) AS label
    FROM scored AS s
    LEFT JOIN labels AS l ON l.TraceId = s.TraceId
),
grouped AS (
    SELECT DISTINCT
        TraceId, ScoreId, Name, DataType, NumericValue, StringValue, failed, has_number, bucket_s,
        if({by_service:UInt8}, label.2, '') AS g_service,
        if({by_provider:UInt8}, label.3, '') AS g_provider,
        if({by_model:UInt8}, if(label.4 != '', label.4, label.5), '') AS g_model,
        if({by_response_model:UInt8}, label.5, '') AS g_response_model,
        if({by_prompt:UInt8}, label.6, '') AS g_prompt,
        if({by_prompt_version:UInt8}, label.7, '') AS g_prompt_version
    FROM labelled
    WHERE ({service:String} = '' OR label.2 = {service:String})
      AND ({provider:String} = '' OR label.3 IN ({provider:String}, {provider_normalized:String}))
      AND ({model:String} = '' OR label.4 IN ({model:String}, {model_bare:String})
           OR label.5 IN ({model:String}, {model_bare:String}))
      AND ({prompt:String} = '' OR label.6 = {prompt:String})
      AND ({prompt_version:String} = '' OR label.7 = {prompt_version:String})
)
SELECT * FROM (
    SELECT
        if(grouping(bucket_s) = 1, 'series', 'point') AS level,
        Name AS name, bucket_s, g_service, g_provider, g_model, g_response_model, g_prompt, g_prompt_version,
        count() AS scores, countIf(has_number) AS numeric_count,
        avgIf(assumeNotNull(NumericValue), has_number) AS mean,
        minIf(assumeNotNull(NumericValue), has_number) AS min,
        maxIf(assumeNotNull(NumericValue), has_number) AS max,
        sumMap(if(StringValue != '', [StringValue], []), if(StringValue != '', [toUInt64(1)], [])) AS categories,
        countIf(failed) AS errors
    FROM grouped
    GROUP BY GROUPING SETS (
        (Name, g_service, g_provider, g_model, g_response_model, g_prompt, g_prompt_version, bucket_s),
        (Name, g_service, g_provider, g_model, g_response_model, g_prompt, g_prompt_version)
    )
    UNION ALL
    -- Each score once per name, however many groups it falls in.
    SELECT
        'name' AS level, Name AS name, 0 AS bucket_s, '' AS g_service, '' AS g_provider, '' AS g_model,
        '' AS g_response_model, '' AS g_prompt, '' AS g_prompt_version,
        count() AS scores, countIf(has_number) AS numeric_count,
        avgIf(assumeNotNull(NumericValue), has_number) AS mean,
        minIf(assumeNotNull(NumericValue), has_number) AS min,
        maxIf(assumeNotNull(NumericValue), has_number) AS max,
        sumMap(if(StringValue != '', [StringValue], []), if(StringValue != '', [toUInt64(1)], [])) AS categories,
        countIf(failed) AS errors
    FROM (SELECT DISTINCT TraceId, ScoreId, Name, DataType, NumericValue, StringValue, failed, has_number FROM grouped)
    GROUP BY Name
)
-- Name totals first, then each series' totals before its points, so a response cut at
-- `max_rows` (the API then refuses it) has them.
ORDER BY level = 'name' DESC, name, g_service, g_provider, g_model, g_response_model, g_prompt, g_prompt_version,
         level = 'series' DESC, bucket_s
LIMIT {max_rows:UInt32}
