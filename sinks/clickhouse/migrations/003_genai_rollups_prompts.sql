-- GenAI rollups, the retry gate they rely on, and the prompt registry.
--
-- Why a gate: a client that retries after a lost acknowledgement sends the same spans
-- again, in a new insert block. ClickHouse's insert deduplication only drops exact block
-- replays, and a materialized view sums whatever block reaches it. So the exporter asks
-- `_span_keys` which (TraceId, SpanId) of a batch are already stored and does not insert
-- those again: the rollups below never see a span twice. Reads of the spans table still
-- collapse with `LIMIT 1 BY TraceId, SpanId` (ReplacingMergeTree converges on merge).

-- How the span's prompt link was made: the template's SHA-256 (hex) and the convention
-- that named the prompt (OpenInference, Langfuse, MLflow, POML, ...).
ALTER TABLE ${db}.${traces}
    ADD COLUMN IF NOT EXISTS `GenAIPromptTemplateHash` String CODEC(ZSTD(1)) AFTER `GenAIPromptVersion`;
ALTER TABLE ${db}.${traces}
    ADD COLUMN IF NOT EXISTS `GenAIPromptSource` LowCardinality(String) CODEC(ZSTD(1)) AFTER `GenAIPromptTemplateHash`;

-- Every stored span's key, sorted by trace id so the gate's lookup is a primary-key read.
CREATE TABLE IF NOT EXISTS ${db}.${traces}_span_keys
(
    `Timestamp` DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    `TraceId` String CODEC(ZSTD(1)),
    `SpanId` String CODEC(ZSTD(1))
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(Timestamp)
ORDER BY (TraceId, SpanId)
${ttl_timestamp}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.${traces}_span_keys_mv
TO ${db}.${traces}_span_keys
AS SELECT Timestamp, TraceId, SpanId
FROM ${db}.${traces};

-- One row per trace (after merges; always read with GROUP BY TraceId, since blocks of
-- one trace may sit in different parts or partitions). Root fields come from the span
-- without a parent: `max` over '' and the root's value picks the root's.
CREATE TABLE IF NOT EXISTS ${db}.${traces}_trace_rollup
(
    `TraceId` String CODEC(ZSTD(1)),
    `Start` SimpleAggregateFunction(min, DateTime64(9)) CODEC(ZSTD(1)),
    `End` SimpleAggregateFunction(max, DateTime64(9)) CODEC(ZSTD(1)),
    `RootSpanName` SimpleAggregateFunction(max, String) CODEC(ZSTD(1)),
    `RootServiceName` SimpleAggregateFunction(max, String) CODEC(ZSTD(1)),
    `ServiceNames` SimpleAggregateFunction(groupUniqArrayArray, Array(String)) CODEC(ZSTD(1)),
    `Providers` SimpleAggregateFunction(groupUniqArrayArray, Array(String)) CODEC(ZSTD(1)),
    `Models` SimpleAggregateFunction(groupUniqArrayArray, Array(String)) CODEC(ZSTD(1)),
    `Prompts` SimpleAggregateFunction(groupUniqArrayArray, Array(String)) CODEC(ZSTD(1)),
    `Spans` SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    `ErrorSpans` SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    `InputTokens` SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    `OutputTokens` SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    `TotalTokens` SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    `TotalCostUSD` SimpleAggregateFunction(sum, Decimal(38, 12)) CODEC(ZSTD(1)),
    `SessionId` SimpleAggregateFunction(max, String) CODEC(ZSTD(1)),
    `UserId` SimpleAggregateFunction(max, String) CODEC(ZSTD(1))
)
ENGINE = AggregatingMergeTree
PARTITION BY toStartOfWeek(Start)
ORDER BY (TraceId)
${ttl_start}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.${traces}_trace_rollup_mv
TO ${db}.${traces}_trace_rollup
AS SELECT
    TraceId,
    min(Timestamp) AS Start,
    max(Timestamp + toIntervalNanosecond(Duration)) AS End,
    maxIf(SpanName, ParentSpanId = '') AS RootSpanName,
    maxIf(ServiceName, ParentSpanId = '') AS RootServiceName,
    groupUniqArray(ServiceName) AS ServiceNames,
    groupUniqArrayIf(GenAIProvider, GenAIProvider != '') AS Providers,
    groupUniqArrayIf(if(GenAIRequestModel != '', GenAIRequestModel, GenAIResponseModel),
                     GenAIRequestModel != '' OR GenAIResponseModel != '') AS Models,
    groupUniqArrayIf(GenAIPromptName, GenAIPromptName != '') AS Prompts,
    count() AS Spans,
    countIf(StatusCode = 'Error') AS ErrorSpans,
    sum(ifNull(GenAIInputTokens, 0)) AS InputTokens,
    sum(ifNull(GenAIOutputTokens, 0)) AS OutputTokens,
    sum(ifNull(GenAITotalTokens, 0)) AS TotalTokens,
    toDecimal128(sum(ifNull(GenAITotalCostUSD, 0)), 12) AS TotalCostUSD,
    max(GenAISessionId) AS SessionId,
    max(GenAIUserId) AS UserId
FROM ${db}.${traces}
WHERE TraceId != ''
GROUP BY TraceId;

-- Usage by minute x service x provider x model x prompt version: what metric queries and
-- dashboards read. Rows: model calls (GenAI span kind llm/embedding/reranker, or a model
-- with no kind) and spans linked to a prompt (so a prompt's uses count even when the
-- link sits on a non-LLM span). Requests, Errors and latency count model calls only.
CREATE TABLE IF NOT EXISTS ${db}.${traces}_genai_usage_1m
(
    `Minute` DateTime CODEC(Delta(4), ZSTD(1)),
    `ServiceName` LowCardinality(String) CODEC(ZSTD(1)),
    `Provider` LowCardinality(String) CODEC(ZSTD(1)),
    `RequestModel` LowCardinality(String) CODEC(ZSTD(1)),
    `ResponseModel` LowCardinality(String) CODEC(ZSTD(1)),
    `PromptName` LowCardinality(String) CODEC(ZSTD(1)),
    `PromptVersion` LowCardinality(String) CODEC(ZSTD(1)),
    `Spans` SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    `Requests` SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    `Errors` SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    `InputTokens` SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    `OutputTokens` SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    `CachedInputTokens` SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    `ReasoningTokens` SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    `TotalTokens` SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    `EstimatedTokens` SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    `EstimatedRequests` SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    `UnpricedRequests` SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    `InputCostUSD` SimpleAggregateFunction(sum, Decimal(38, 12)) CODEC(ZSTD(1)),
    `OutputCostUSD` SimpleAggregateFunction(sum, Decimal(38, 12)) CODEC(ZSTD(1)),
    `TotalCostUSD` SimpleAggregateFunction(sum, Decimal(38, 12)) CODEC(ZSTD(1)),
    `DurationSumNs` SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    `DurationQuantiles` AggregateFunction(quantilesTDigest(0.5, 0.9, 0.95, 0.99), UInt64),
    `FirstSeen` SimpleAggregateFunction(min, DateTime64(9)) CODEC(ZSTD(1)),
    `LastSeen` SimpleAggregateFunction(max, DateTime64(9)) CODEC(ZSTD(1))
)
ENGINE = AggregatingMergeTree
PARTITION BY toDate(Minute)
ORDER BY (Minute, ServiceName, Provider, RequestModel, ResponseModel, PromptName, PromptVersion)
${ttl_minute}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.${traces}_genai_usage_1m_mv
TO ${db}.${traces}_genai_usage_1m
AS SELECT
    toStartOfMinute(Timestamp) AS Minute,
    ServiceName,
    GenAIProvider AS Provider,
    GenAIRequestModel AS RequestModel,
    GenAIResponseModel AS ResponseModel,
    GenAIPromptName AS PromptName,
    GenAIPromptVersion AS PromptVersion,
    count() AS Spans,
    countIf(IsCall) AS Requests,
    countIf(IsCall AND StatusCode = 'Error') AS Errors,
    sum(ifNull(GenAIInputTokens, 0)) AS InputTokens,
    sum(ifNull(GenAIOutputTokens, 0)) AS OutputTokens,
    sum(ifNull(GenAICachedInputTokens, 0)) AS CachedInputTokens,
    sum(ifNull(GenAIReasoningTokens, 0)) AS ReasoningTokens,
    sum(ifNull(GenAITotalTokens, 0)) AS TotalTokens,
    sumIf(ifNull(GenAITotalTokens, 0), GenAITokensEstimated) AS EstimatedTokens,
    countIf(IsCall AND GenAITokensEstimated) AS EstimatedRequests,
    countIf(IsCall AND GenAITotalCostUSD IS NULL) AS UnpricedRequests,
    toDecimal128(sum(ifNull(GenAIInputCostUSD, 0)), 12) AS InputCostUSD,
    toDecimal128(sum(ifNull(GenAIOutputCostUSD, 0)), 12) AS OutputCostUSD,
    toDecimal128(sum(ifNull(GenAITotalCostUSD, 0)), 12) AS TotalCostUSD,
    sumIf(Duration, IsCall) AS DurationSumNs,
    quantilesTDigestStateIf(0.5, 0.9, 0.95, 0.99)(Duration, IsCall) AS DurationQuantiles,
    min(Timestamp) AS FirstSeen,
    max(Timestamp) AS LastSeen
FROM
(
    SELECT *,
        GenAISpanKind IN ('llm', 'embedding', 'reranker')
            OR (GenAISpanKind = '' AND (GenAIRequestModel != '' OR GenAIResponseModel != '')) AS IsCall
    FROM ${db}.${traces}
)
WHERE IsCall OR GenAIPromptName != ''
GROUP BY Minute, ServiceName, Provider, RequestModel, ResponseModel, PromptName, PromptVersion;

-- The prompt registry: one row per (Name, Version). Writers claim a version with an
-- insert whose deduplication token is the (Name, Version): ClickHouse keeps the first such
-- block and silently drops the others, which makes the claim a compare-and-set. The window
-- must outlive the registry's growth: it counts claimed versions, not spans.
-- See sinks/clickhouse/prompts.py.
CREATE TABLE IF NOT EXISTS ${db}.${traces}_prompts
(
    `Name` String CODEC(ZSTD(1)),
    `Version` String CODEC(ZSTD(1)),
    `TemplateHash` String CODEC(ZSTD(1)),
    `Template` String CODEC(ZSTD(3)),
    `Source` LowCardinality(String) CODEC(ZSTD(1)),
    `RegisteredAt` DateTime64(9) DEFAULT now64(9) CODEC(ZSTD(1))
)
ENGINE = MergeTree
ORDER BY (Name, Version, TemplateHash)
SETTINGS non_replicated_deduplication_window = 100000;
