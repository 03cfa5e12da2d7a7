-- The traces with a span in the range that passes every span-level filter of a trace search
-- (trace_search.sql keeps those trace ids). The span_filters slot holds one condition per
-- filter the search has, built by the store (query/store.py SPAN_FILTERS and
-- AttributeFilter) from fixed fragments whose values stay bound parameters; a filter not
-- asked for is not there at all. Why not `({x} = '' OR ...)` as elsewhere: ClickHouse
-- combines skip indexes over OR (a span attribute OR a resource attribute) only for a WHERE
-- of at most 32 condition elements, and every folded-away filter still counts.
--
-- The primary key starts with the service and span name; the attribute conditions are
-- spelled so the bloom filters on the attribute maps' keys and values skip the granules
-- that cannot match.
SELECT TraceId
FROM ${db}.${table}
WHERE Tenant = {tenant:String}
  AND Timestamp >= fromUnixTimestamp64Nano(greatest({start_ns:Int64}, {floor_ns:Int64}))
  AND Timestamp < fromUnixTimestamp64Nano({end_ns:Int64})${span_filters}
