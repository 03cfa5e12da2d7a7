-- Sessions (GET /api/v1/sessions): conversations, one row per session id, newest activity
-- first. Reads the per-trace rollup only (never the spans table): each trace is a turn.
--
-- The rollup holds partial aggregates until merges finish, so each trace's rows are merged
-- first (GROUP BY TraceId). Keeping partial rows with Start >= range start is exact for
-- traces that start in the range: every partial Start of a trace is at or after its true
-- start. A session is listed when one of its turns starts in the range; its figures cover
-- those turns. `total_sessions` (on every row) counts all sessions that match.
SELECT
    SessionId AS session_id,
    argMax(UserId, end_ns) AS user_id,
    count() AS turns,
    min(start_ns) AS first_ns,
    max(end_ns) AS last_ns,
    ifNull(sum(input_tokens), 0) AS input_tokens,
    ifNull(sum(output_tokens), 0) AS output_tokens,
    toFloat64(ifNull(sum(cost_usd), 0)) AS cost_usd,
    sum(error_spans) AS error_spans,
    count() OVER () AS total_sessions
FROM
(
    SELECT
        TraceId,
        toUnixTimestamp64Nano(min(Start)) AS start_ns,
        toUnixTimestamp64Nano(max(End)) AS end_ns,
        max(SessionId) AS SessionId,
        max(UserId) AS UserId,
        sum(InputTokens) AS input_tokens,
        sum(OutputTokens) AS output_tokens,
        sum(TotalCostUSD) AS cost_usd,
        sum(ErrorSpans) AS error_spans
    FROM ${db}.${table}_trace_rollup
    WHERE Start >= fromUnixTimestamp64Nano({start_ns:Int64})
      AND Tenant = {tenant:String}
    GROUP BY TraceId
)
WHERE SessionId != ''
  AND start_ns < {end_ns:Int64}
  AND ({user:String} = '' OR UserId = {user:String})
GROUP BY SessionId
ORDER BY last_ns DESC, session_id ASC
LIMIT {limit:UInt32}
