-- What a trace list row shows beside its figures (GET /api/v1/traces, after trace_search.sql
-- chose the page): the root span's name and service (the earliest span's when no root
-- arrived), every service, every request and response model. Looked up by trace id, the
-- rollup's sorting key, for the page's traces only, over the same rows the search summed.
SELECT
    TraceId AS trace_id,
    min(FirstSpan) AS first_span,
    first_span.3 AS root_span_name,
    first_span.4 AS root_service_name,
    arraySort(groupUniqArrayArray(ServiceNames)) AS service_names,
    arraySort(groupUniqArrayArray(ModelNames)) AS models
FROM ${db}.${table}_trace_rollup
WHERE TraceId IN {trace_ids:Array(String)}
  AND Tenant = {tenant:String}
  AND Start >= fromUnixTimestamp64Nano({start_ns:Int64}) - toIntervalNanosecond({window_ns:Int64})
  AND Start < fromUnixTimestamp64Nano({end_ns:Int64}) + toIntervalNanosecond({window_ns:Int64})
GROUP BY TraceId
