-- The prompt registry, one row per prompt name (GET /api/v1/prompts).
--
-- Names come from the registry table `${traces}_prompts` and from the usage rollup
-- `${traces}_genai_usage_1m` (a prompt spans named but that has no registry row yet is
-- still listed). Both sources are stacked with UNION ALL and grouped per (name, version):
-- no join, so a side that is missing simply contributes nothing.
--
-- The registry entry of a (Name, Version) is its earliest claim, argMin by
-- (RegisteredAt, TemplateHash). Versions order numerically when every non-empty version
-- of the name is a number, else by registration time (first use when unregistered); the
-- empty version (a prompt named without one) sorts first. query/rows.py sorts the
-- versions of GET /api/v1/prompts/{name} by the same rule.
WITH versions AS
(
    SELECT
        Name,
        Version,
        countIf(from_registry) > 0 AS registered,
        argMinIf(Source, (RegisteredAt, TemplateHash), from_registry) AS source,
        minIfOrNull(RegisteredAt, from_registry) AS registered_at,
        minIfOrNull(FirstSeen, NOT from_registry) AS first_seen,
        maxIfOrNull(LastSeen, NOT from_registry) AS last_seen,
        sum(Spans) AS spans,
        sum(Requests) AS requests,
        sum(TotalTokens) AS total_tokens,
        sum(TotalCostUSD) AS cost_usd
    FROM
    (
        SELECT
            Name, Version, 1 AS from_registry, toString(Source) AS Source, TemplateHash, RegisteredAt,
            toDateTime64(0, 9) AS FirstSeen, toDateTime64(0, 9) AS LastSeen,
            toUInt64(0) AS Spans, toUInt64(0) AS Requests, toUInt64(0) AS TotalTokens,
            toDecimal128(0, 12) AS TotalCostUSD
        FROM ${db}.${traces}_prompts
        WHERE Name != '' AND Tenant = {tenant:String} AND ({q:String} = '' OR positionCaseInsensitiveUTF8(Name, {q:String}) > 0)
        UNION ALL
        SELECT
            toString(PromptName), toString(PromptVersion), 0, '', '', toDateTime64(0, 9),
            FirstSeen, LastSeen, Spans, Requests, TotalTokens, TotalCostUSD
        FROM ${db}.${traces}_genai_usage_1m
        WHERE PromptName != '' AND Tenant = {tenant:String} AND ({q:String} = '' OR positionCaseInsensitiveUTF8(PromptName, {q:String}) > 0)
    )
    GROUP BY Name, Version
)
SELECT
    Name AS name,
    count() AS version_count,
    if(countIf(Version != '' AND NOT match(Version, '^[0-9]{1,18}$$')) = 0,
       argMax(Version, (Version != '', toUInt64OrZero(Version), Version)),
       argMax(Version, (Version != '', toUnixTimestamp64Nano(coalesce(registered_at, first_seen)), Version))
    ) AS latest_version,
    if(countIf(registered) > 0, argMaxIf(source, (ifNull(registered_at, toDateTime64(0, 9)), Version), registered),
       NULL) AS source,
    toUnixTimestamp64Nano(min(registered_at)) AS registered_at_ns,
    toUnixTimestamp64Nano(min(first_seen)) AS first_seen_ns,
    toUnixTimestamp64Nano(max(last_seen)) AS last_seen_ns,
    sum(spans) AS spans,
    sum(requests) AS requests,
    sum(total_tokens) AS total_tokens,
    sum(cost_usd) AS cost_usd,
    count() OVER () AS total_names
FROM versions
GROUP BY Name
ORDER BY Name
LIMIT {limit:UInt32} OFFSET {offset:UInt64}
