-- Where the candidates of a newest- or oldest-first page of a large search end
-- (query/store.py, "search at scale"): the start of the `candidates`-th rollup row in the
-- page's order, among the rows starting before the range's end and inside [floor_ns,
-- ceiling_ns] (the cursor's side). Every trace starting at or before (newest first: at or
-- after) that row's start has its first row among these, so grouping the traces with a row
-- there, and keeping those that start there, gives the page whole. `taken` < `candidates`
-- means the range held fewer rows: all of them are candidates. Reads the rows' starts only.
-- `direction` (DESC, ASC) and `edge` (min, max) are the order's, filled by the store.
SELECT count() AS taken, toUnixTimestamp64Nano(${edge}(Start)) AS cutoff_ns
FROM (
    SELECT Start
    FROM ${db}.${table}_trace_rollup
    WHERE Tenant = {tenant:String}
      AND Start >= fromUnixTimestamp64Nano(greatest({start_ns:Int64} - {window_ns:Int64}, {floor_ns:Int64}))
      AND Start <= fromUnixTimestamp64Nano(least({end_ns:Int64} - 1, {ceiling_ns:Int64}))
    ORDER BY Start ${direction}
    LIMIT {candidates:UInt32}
)
