-- Trace search (GET /api/v1/traces): one page of trace summaries, and over a small range
-- the totals of the whole filtered set. Reads the per-trace rollup (one row per trace once
-- merged, kept by a materialized view; migrations 003 and 005), so a day of a million spans
-- is a GROUP BY over its traces, never over its spans. The labels of the page's rows (root
-- name, services, models) come after, from trace_labels.sql, for those rows only.
--
-- 1. The rollup's partial rows of a trace (one per insert block that held its spans) all
--    start within the trace: rows starting in [start - window, end + window) hold every
--    trace with a span in [start, end) whole, for traces up to `window` long (the API's
--    `max_trace_duration`); a longer trace over the range's edge is summed from the part
--    inside the window. Merged per trace, a trace is in the range when it has a span
--    starting in it (first start < end, last start >= start). Grouped by the trace id's
--    128 bits (`trace_key`): hashing a fixed-width integer takes half the time of the
--    32-character string, the GROUP BY's cost over millions of rows (BENCHMARKS.md).
-- 2. Span-level filters (service, span name, span kind, provider, model, prompt and its
--    version, attributes; all on the same span, as in Jaeger) select trace ids from the
--    spans table: the store puts `AND TraceId IN (<trace_search_spans.sql>)` in the
--    span_traces slot when the search has any (and nothing when it has none).
--    Score filters select trace ids from the scores table (trace_search_scores.sql).
--    `row_traces` holds, for a session, user or error filter, the traces with a rollup row
--    that could pass it (a trace's session is some row's): fewer rows to group.
-- 3. Over a large range (query/store.py, "search at scale") a newest- or oldest-first page
--    groups only candidates (the `candidates` slot): the traces starting in [floor_ns,
--    ceiling_ns], whole (rows from floor_ns to the window after ceiling_ns), less those
--    with a row in the window before floor_ns (started earlier: what is here is a part of
--    them); the span filters read only spans from floor_ns on, and a trace must start in
--    the interval. The store cuts the interval at the start of the page's n-th rollup row
--    (trace_search_cutoff.sql), so every trace that can be on the page starts in it; the
--    rollup's projection by start (migration 012) reads those rows from a few granules.
--    Grouping few traces from a few granules, it also gives their labels (the `labels`
--    slot: the columns of trace_labels.sql); elsewhere trace_labels.sql looks them up.
--    (The value sorts' candidates below too: their projections hold the labels.)
--    Sorted by cost, tokens or duration, the candidates are the traces with a row whose
--    own key reaches a cut (trace_search_top.sql) and every trace in several rows, and the
--    trace must reach it too (`key_floor`, `key_ceiling`): the `rollup_rows` slot reads
--    those rows from the rollup's projection in that key's order (migration 013) instead
--    of the whole rollup, and the span filters test only the spans of those rows' traces.
-- 4. Trace-level filters (status, session, user, the duration, token and cost bounds) on
--    the merged rollup row; `totals` (window sums, computed before the page is cut; empty
--    when the store estimates them, trace_search_totals.sql); then keyset pagination on
--    (sort key, trace id): the order_by and after_cursor slots are the direction's
--    (descending: largest first, ties by trace id ascending; ascending: the exact
--    reverse). Costs sort in integer nano-dollars; a trace without any cost takes
--    `unpriced_key` (-1 descending, the largest Int64 ascending), so it comes last both ways.
SELECT
    *${totals}
FROM (
    SELECT
        -- 32 hex digits as OTLP's trace ids are stored; any other id by a 128-bit hash.
        if(length(TraceId) = 32, reinterpretAsUInt128(unhex(TraceId)),
           reinterpretAsUInt128(sipHash128(TraceId))) AS trace_key,
        any(TraceId) AS trace_id,
        toUnixTimestamp64Nano(min(Start)) AS start_ns,
        toUnixTimestamp64Nano(max(End)) - start_ns AS duration_ns,
        sum(Spans) AS span_count,
        sum(ErrorSpans) AS error_count,
        sum(InputTokens) AS input_tokens,
        sum(OutputTokens) AS output_tokens,
        sum(TotalTokens) AS total_tokens,
        ifNull(total_tokens, ifNull(input_tokens, 0) + ifNull(output_tokens, 0)) AS tokens,
        sum(TotalCostUSD) AS cost_exact,
        toFloat64(cost_exact) AS total_cost_usd,
        multiIf({sort:String} = 'cost', ifNull(toInt64(round(total_cost_usd * 1e9)), {unpriced_key:Int64}),
                {sort:String} = 'tokens', toInt64(tokens),
                {sort:String} = 'duration', toInt64(duration_ns),
                toInt64(start_ns)) AS sort_key${labels}
    FROM ${rollup_rows}
    WHERE Tenant = {tenant:String}
      AND Start >= fromUnixTimestamp64Nano({start_ns:Int64}) - toIntervalNanosecond({window_ns:Int64})
      AND Start < fromUnixTimestamp64Nano({end_ns:Int64}) + toIntervalNanosecond({window_ns:Int64})
      ${span_traces}
      AND ${score_traces}
      ${row_traces}
      ${candidates}
    GROUP BY trace_key
    HAVING min(Start) < fromUnixTimestamp64Nano({end_ns:Int64})
       AND start_ns BETWEEN {floor_ns:Int64} AND {ceiling_ns:Int64}
       AND sort_key BETWEEN {key_floor:Int64} AND {key_ceiling:Int64}
       AND max(LastSpanStart) >= fromUnixTimestamp64Nano({start_ns:Int64})
       AND ({status:String} = ''
            OR ({status:String} = 'error' AND error_count > 0)
            OR ({status:String} = 'ok' AND error_count = 0)
            OR ({status:String} = 'unset' AND sum(StatusSetSpans) = 0))
       AND ({session:String} = '' OR max(SessionId) = {session:String})
       AND ({user:String} = '' OR max(UserId) = {user:String})
       AND duration_ns BETWEEN {min_duration_ns:Int64} AND {max_duration_ns:Int64}
       AND tokens BETWEEN {min_tokens:UInt64} AND {max_tokens:UInt64}
       AND ({min_cost_usd:Float64} = 0 OR ifNull(total_cost_usd, 0) >= {min_cost_usd:Float64})
       AND ifNull(total_cost_usd, 0) <= {max_cost_usd:Float64}
)
QUALIFY {has_cursor:UInt8} = 0 OR ${after_cursor}
ORDER BY ${order_by}
LIMIT {limit:UInt32}
