-- The spans table: the OpenTelemetry Collector clickhouseexporter's `otel_traces` columns,
-- names and types unchanged (Grafana's ClickHouse datasource trace mode and existing SQL
-- work as they are), plus typed GenAI columns that enrichment processors fill.
--
-- Engine: ReplacingMergeTree with (TraceId, SpanId) closing the sorting key, so a span
-- that a client sent twice (retry after a lost acknowledgement) converges to one row on
-- merge. Reads still collapse with `LIMIT 1 BY TraceId, SpanId`, because merges are
-- eventual. The primary key is the Collector's.
CREATE TABLE IF NOT EXISTS ${db}.${traces}
(
    `Timestamp` DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    `TraceId` String CODEC(ZSTD(1)),
    `SpanId` String CODEC(ZSTD(1)),
    `ParentSpanId` String CODEC(ZSTD(1)),
    `TraceState` String CODEC(ZSTD(1)),
    `SpanName` LowCardinality(String) CODEC(ZSTD(1)),
    `SpanKind` LowCardinality(String) CODEC(ZSTD(1)),
    `ServiceName` LowCardinality(String) CODEC(ZSTD(1)),
    `ResourceAttributes` Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    `ScopeName` String CODEC(ZSTD(1)),
    `ScopeVersion` String CODEC(ZSTD(1)),
    `SpanAttributes` Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    `Duration` UInt64 CODEC(T64, ZSTD(1)),
    `StatusCode` LowCardinality(String) CODEC(ZSTD(1)),
    `StatusMessage` String CODEC(ZSTD(1)),
    `Events.Timestamp` Array(DateTime64(9)) CODEC(ZSTD(1)),
    `Events.Name` Array(LowCardinality(String)) CODEC(ZSTD(1)),
    `Events.Attributes` Array(Map(LowCardinality(String), String)) CODEC(ZSTD(1)),
    `Links.TraceId` Array(String) CODEC(ZSTD(1)),
    `Links.SpanId` Array(String) CODEC(ZSTD(1)),
    `Links.TraceState` Array(String) CODEC(ZSTD(1)),
    `Links.Attributes` Array(Map(LowCardinality(String), String)) CODEC(ZSTD(1)),

    -- GenAI: one canonical view, whatever convention the span spoke. Empty string /
    -- NULL mean "not known", never zero: absent token counts are unknown, not 0.
    `GenAIProvider` LowCardinality(String) CODEC(ZSTD(1)),
    `GenAIOperation` LowCardinality(String) CODEC(ZSTD(1)),
    `GenAISpanKind` LowCardinality(String) CODEC(ZSTD(1)),
    `GenAIRequestModel` LowCardinality(String) CODEC(ZSTD(1)),
    `GenAIResponseModel` LowCardinality(String) CODEC(ZSTD(1)),
    `GenAIInputTokens` Nullable(UInt64) CODEC(ZSTD(1)),
    `GenAIOutputTokens` Nullable(UInt64) CODEC(ZSTD(1)),
    `GenAICachedInputTokens` Nullable(UInt64) CODEC(ZSTD(1)),
    `GenAIReasoningTokens` Nullable(UInt64) CODEC(ZSTD(1)),
    `GenAITotalTokens` Nullable(UInt64) CODEC(ZSTD(1)),
    `GenAITokensEstimated` Bool DEFAULT false CODEC(ZSTD(1)),
    `GenAIInputCostUSD` Nullable(Decimal(18, 12)) CODEC(ZSTD(1)),
    `GenAIOutputCostUSD` Nullable(Decimal(18, 12)) CODEC(ZSTD(1)),
    `GenAITotalCostUSD` Nullable(Decimal(18, 12)) CODEC(ZSTD(1)),
    `GenAICostSource` LowCardinality(String) CODEC(ZSTD(1)),
    `GenAIPromptName` LowCardinality(String) CODEC(ZSTD(1)),
    `GenAIPromptVersion` LowCardinality(String) CODEC(ZSTD(1)),
    `GenAISessionId` String CODEC(ZSTD(1)),
    `GenAIUserId` String CODEC(ZSTD(1)),

    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1,
    INDEX idx_lower_span_name lower(SpanName) TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 8,
    INDEX idx_session GenAISessionId TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_user GenAIUserId TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(Timestamp)
PRIMARY KEY (ServiceName, SpanName, toDateTime(Timestamp))
ORDER BY (ServiceName, SpanName, toDateTime(Timestamp), Timestamp, TraceId, SpanId)
${ttl_timestamp}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, non_replicated_deduplication_window = ${dedup_window};

-- Trace id -> time bounds, so a lookup by trace id reads one or two partitions. Same
-- name and shape as the Collector's, which Grafana's datasource detects and uses.
CREATE TABLE IF NOT EXISTS ${db}.${traces}_trace_id_ts
(
    `TraceId` String CODEC(ZSTD(1)),
    `Start` SimpleAggregateFunction(min, DateTime) CODEC(ZSTD(1)),
    `End` SimpleAggregateFunction(max, DateTime) CODEC(ZSTD(1))
)
ENGINE = AggregatingMergeTree
PARTITION BY toStartOfWeek(Start)
ORDER BY (TraceId)
${ttl_start}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.${traces}_trace_id_ts_mv
TO ${db}.${traces}_trace_id_ts
AS SELECT
    TraceId,
    min(Timestamp) AS Start,
    max(Timestamp) AS End
FROM ${db}.${traces}
WHERE TraceId != ''
GROUP BY TraceId;
