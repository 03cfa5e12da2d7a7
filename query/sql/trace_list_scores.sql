-- The scores of a page of the trace list (GET /api/v1/traces), per trace and score name:
-- count, mean of the values that are numbers, and the labels' distribution. Live scores only
-- (FINAL, not deleted); a primary-key read per trace of the page.
SELECT
    TraceId AS trace_id,
    Name AS name,
    count() AS scores,
    countIf(has_number) AS numeric_count,
    avgIf(assumeNotNull(NumericValue), has_number) AS mean,
    minIf(assumeNotNull(NumericValue), has_number) AS min,
    maxIf(assumeNotNull(NumericValue), has_number) AS max,
    sumMap(if(StringValue != '', [StringValue], []), if(StringValue != '', [toUInt64(1)], [])) AS categories,
    countIf(Error != '') AS errors
FROM
(
    SELECT *, DataType != 'categorical' AND isFinite(ifNull(NumericValue, nan)) AS has_number
    FROM ${db}.${traces}_scores FINAL
    WHERE Tenant = {tenant:String} AND has({trace_ids:Array(String)}, TraceId) AND NOT Deleted
)
GROUP BY TraceId, Name
ORDER BY TraceId, Name
