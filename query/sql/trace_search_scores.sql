-- The traces passing every score filter of a trace search (`score=name>=x`, query/scores.py):
-- the trace has a live score passing each one. A score row sets the bit of every filter it
-- passes; the trace needs them all. Fills the `score_traces` slot of trace_search.sql and
-- trace_search_totals.sql (a condition on TraceId; true when the search has no score filter).
(empty({score_names:Array(String)}) OR TraceId IN (
      SELECT TraceId
      FROM ${db}.${table}_scores FINAL
      WHERE Tenant = {tenant:String} AND NOT Deleted AND has({score_names:Array(String)}, Name)
      GROUP BY TraceId
      HAVING groupBitOr(arraySum(arrayMap(i -> bitShiftLeft(toUInt64(
          Name = {score_names:Array(String)}[i] AND ifNull(multiIf(
              {score_ops:Array(String)}[i] = '>', NumericValue > {score_numbers:Array(Nullable(Float64))}[i],
              {score_ops:Array(String)}[i] = '>=', NumericValue >= {score_numbers:Array(Nullable(Float64))}[i],
              {score_ops:Array(String)}[i] = '<', NumericValue < {score_numbers:Array(Nullable(Float64))}[i],
              {score_ops:Array(String)}[i] = '<=', NumericValue <= {score_numbers:Array(Nullable(Float64))}[i],
              {score_ops:Array(String)}[i] = '=',
                  (DataType != 'categorical' AND NumericValue = {score_numbers:Array(Nullable(Float64))}[i])
                  OR StringValue = {score_texts:Array(String)}[i],
              NOT ((DataType != 'categorical' AND ifNull(NumericValue = {score_numbers:Array(Nullable(Float64))}[i], 0))
                   OR StringValue = {score_texts:Array(String)}[i])), 0)), toUInt8(i - 1)),
          arrayEnumerate({score_names:Array(String)}))))
          = bitShiftLeft(toUInt64(1), length({score_names:Array(String)})) - 1))
