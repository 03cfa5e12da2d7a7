-- The trace-level filters of a trace search (status, session, user, the duration, token and
-- cost bounds) tested on one per-trace rollup row: exact for a trace in one row, a row's own
-- values for a trace in several. Fills the `row_filters` slot of trace_search_totals.sql and
-- trace_search_top.sql (a condition on the row).
(
    ({status:String} = ''
         OR ({status:String} = 'error' AND ErrorSpans > 0)
         OR ({status:String} = 'ok' AND ErrorSpans = 0)
         OR ({status:String} = 'unset' AND StatusSetSpans = 0))
    AND ({session:String} = '' OR SessionId = {session:String})
    AND ({user:String} = '' OR UserId = {user:String})
    AND toUnixTimestamp64Nano(End) - toUnixTimestamp64Nano(Start) BETWEEN {min_duration_ns:Int64} AND {max_duration_ns:Int64}
    AND ifNull(TotalTokens, ifNull(InputTokens, 0) + ifNull(OutputTokens, 0)) BETWEEN {min_tokens:UInt64} AND {max_tokens:UInt64}
    AND ({min_cost_usd:Float64} = 0 OR ifNull(toFloat64(TotalCostUSD), 0) >= {min_cost_usd:Float64})
    AND ifNull(toFloat64(TotalCostUSD), 0) <= {max_cost_usd:Float64}
)
