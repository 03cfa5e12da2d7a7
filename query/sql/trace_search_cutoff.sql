-- Where the candidates of a newest- or oldest-first page of a large search end
-- (query/store.py, "search at scale"): the start of the `candidates`-th rollup row in the
-- page's order, among the rows starting before the range's end and inside [floor_ns,
-- ceiling_ns] (the cursor's side) that reach the range (a span starting in it). Each such
-- row is of a trace in the range, starting at or before (newest first: at or after) the
-- row's start, so the traces starting up to that cut include the page's; grouping them
-- (trace_search.sql's candidates slot) gives it whole. The rows of the window before the
-- range that end before it (hours of them, oldest first over "the last 24 h") are not
-- counted: a cut among them would leave the page empty, round after round. `taken` <
-- `candidates` means the range held fewer rows: all of them are candidates. Reads the
-- rows' starts only. `direction` (DESC, ASC) and `edge` (min, max) are the order's, filled
-- by the store.
SELECT count() AS taken, toUnixTimestamp64Nano(${edge}(Start)) AS cutoff_ns
FROM (
    SELECT Start
    FROM ${db}.${table}_trace_rollup
    WHERE Tenant = {tenant:String}
      AND Start >= fromUnixTimestamp64Nano(greatest({start_ns:Int64} - {window_ns:Int64}, {floor_ns:Int64}))
      AND Start <= fromUnixTimestamp64Nano(least({end_ns:Int64} - 1, {ceiling_ns:Int64}))
      AND LastSpanStart >= fromUnixTimestamp64Nano({start_ns:Int64})
    ORDER BY Start ${direction}
    LIMIT {candidates:UInt32}
)
