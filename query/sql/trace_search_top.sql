-- Where the candidates of a page sorted by cost, tokens or duration end over a large range
-- (query/store.py, "search at scale"): the `row_key` (the sort key of one rollup row, as
-- trace_search.sql computes it for a trace) of the `candidates`-th row in the page's order,
-- among the rows in the range that pass the trace-level filters on their own, and after the
-- cursor. A trace in one row has its row's key; a trace in several has a row without its
-- root span (`FirstSpan.1 = 1`) and is a candidate whatever its rows' keys. So every trace
-- whose key reaches the cut is a candidate: grouping those (trace_search.sql's candidates
-- slot, `key_floor`/`key_ceiling`) gives the page whole. `taken` < `candidates`: fewer rows.
-- `row_key`, `direction` (DESC, ASC), `edge` (min, max) and `after` (<=, >=) are the
-- order's, filled by the store. `key_order` sorts the rows as the rollup's projection in
-- that key's order does (migration 013), so the engine reads the first rows of the
-- projection instead of sorting every row (cost: 60 -> 8 ms on 10M spans): the row key
-- itself, or for cost its Float64 over the rows that have one (`key_filter`), the same
-- order while the rows with a cost reach `candidates` (else `taken` says fewer, and every
-- trace is grouped, as a cut among the unpriced would have it).
SELECT count() AS taken, ${edge}(row_key) AS cutoff_key
FROM (
    SELECT ${row_key} AS row_key
    FROM ${db}.${table}_trace_rollup
    WHERE Tenant = {tenant:String}
      AND Start >= fromUnixTimestamp64Nano({start_ns:Int64}) - toIntervalNanosecond({window_ns:Int64})
      AND Start < fromUnixTimestamp64Nano({end_ns:Int64})
      AND LastSpanStart >= fromUnixTimestamp64Nano({start_ns:Int64})
      AND ${row_filters}${row_span_filters}
      AND ({has_cursor:UInt8} = 0 OR row_key ${after} {cursor_key:Int64})${key_filter}
    ORDER BY ${key_order}
    LIMIT {candidates:UInt32}
)
