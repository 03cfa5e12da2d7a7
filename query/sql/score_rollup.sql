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
-- read by trace id, its sorting key; never the spans table). Every figure is therefore exact
-- whatever the order, repeats, updates and deletions were (BENCHMARKS.md: its cost).
--
-- What a score is about: the span it judges when that span has a model or a prompt; else
-- (a whole-trace score, or one on an agent or tool span) every GenAI span of its trace, so a
-- trace that used two prompt versions counts its score under both; else nothing (labels
-- ''). Each score gets the distinct groups its labels fall in (after the filters, with the
-- dimensions not asked for blanked), one row per group: a score counts once per group, and
-- its first group's row (n = 1) counts it once in its name's totals. Times are the scores'
-- own (when the judgement was made); `start_s`, `end_s` are multiples of `step_s`.
WITH
scored AS (
    SELECT
        TraceId, SpanId, Name, NumericValue, StringValue,
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
      -- The range's scored traces, read without FINAL (a superset is harmless, and cheaper).
      AND TraceId IN (SELECT TraceId FROM ${db}.${traces}_scores
                      WHERE Tenant = {tenant:String}
                        AND Timestamp >= toDateTime64({start_s:UInt32}, 3)
                        AND Timestamp < toDateTime64({end_s:UInt32}, 3))
      AND (RequestModel != '' OR ResponseModel != '' OR PromptName != '')
    GROUP BY TraceId
),
grouped AS (
    SELECT
        s.Name AS name, s.NumericValue AS value, s.StringValue AS label, s.failed AS failed,
        s.has_number AS has_number, s.bucket_s AS bucket_s,
        arrayFilter(x -> x.1 = s.SpanId, l.spans) AS own,
        arrayDistinct(arrayMap(
            x -> (if({by_service:UInt8}, x.2, ''), if({by_provider:UInt8}, x.3, ''),
                  if({by_model:UInt8}, if(x.4 != '', x.4, x.5), ''), if({by_response_model:UInt8}, x.5, ''),
                  if({by_prompt:UInt8}, x.6, ''), if({by_prompt_version:UInt8}, x.7, '')),
            arrayFilter(
                x -> ({service:String} = '' OR x.2 = {service:String})
                     AND ({provider:String} = '' OR x.3 IN ({provider:String}, {provider_normalized:String}))
                     AND ({model:String} = '' OR x.4 IN ({model:String}, {model_bare:String})
                          OR x.5 IN ({model:String}, {model_bare:String}))
                     AND ({prompt:String} = '' OR x.6 = {prompt:String})
                     AND ({prompt_version:String} = '' OR x.7 = {prompt_version:String}),
                if(s.SpanId != '' AND notEmpty(own), own,
                   if(notEmpty(l.spans), l.spans, [('', '', '', '', '', '', '')]))))) AS groups
    FROM scored AS s
    LEFT JOIN labels AS l ON l.TraceId = s.TraceId
)
SELECT
    multiIf(grouping(g) = 1, 'name', grouping(bucket_s) = 1, 'series', 'point') AS level,
    name, bucket_s,
    g.1 AS g_service, g.2 AS g_provider, g.3 AS g_model, g.4 AS g_response_model, g.5 AS g_prompt,
    g.6 AS g_prompt_version,
    if(level = 'name', countIf(n = 1), count()) AS scores,
    if(level = 'name', countIf(has_number AND n = 1), countIf(has_number)) AS numeric_count,
    if(level = 'name', avgIf(assumeNotNull(value), has_number AND n = 1),
       avgIf(assumeNotNull(value), has_number)) AS mean,
    minIf(assumeNotNull(value), has_number) AS min,
    maxIf(assumeNotNull(value), has_number) AS max,
    if(level = 'name', sumMap(if(label != '' AND n = 1, [label], []), if(label != '' AND n = 1, [toUInt64(1)], [])),
       sumMap(if(label != '', [label], []), if(label != '', [toUInt64(1)], []))) AS categories,
    if(level = 'name', countIf(failed AND n = 1), countIf(failed)) AS errors
FROM grouped
ARRAY JOIN groups AS g, arrayEnumerate(groups) AS n
GROUP BY GROUPING SETS ((name, g, bucket_s), (name, g), (name))
-- Name totals first, then each series' totals before its points, so a response cut at
-- `max_rows` (the API then refuses it) has them.
ORDER BY level = 'name' DESC, name, g, level = 'series' DESC, bucket_s
LIMIT {max_rows:UInt32}
