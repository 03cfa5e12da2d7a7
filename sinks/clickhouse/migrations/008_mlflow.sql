-- What MLflow clients keep in a tracking server besides spans (ingest/mlflow): experiments,
-- runs with their params, tags and metric history, trace info and tags, registered models
-- and their versions (prompts are also written to `_prompts`), artifacts, logged models,
-- and scores (MLflow assessments; the one score model of the API).
--
-- Mutable entities are ReplacingMergeTree rows versioned by `UpdatedAt`: an update writes
-- the whole row again and reads take the newest (FINAL). Every table is keyed by Tenant
-- first: an MLflow experiment is scoped to the tenant whose key wrote it.
CREATE TABLE IF NOT EXISTS ${db}.${traces}_experiments
(
    `Tenant` LowCardinality(String),
    `ExperimentId` String,
    `Name` String,
    `ArtifactLocation` String,
    `LifecycleStage` LowCardinality(String),
    `CreationTime` Int64,
    `LastUpdateTime` Int64,
    `Tags` Map(String, String),
    `UpdatedAt` DateTime64(9) DEFAULT now64(9)
)
ENGINE = ReplacingMergeTree(UpdatedAt)
ORDER BY (Tenant, ExperimentId);

CREATE TABLE IF NOT EXISTS ${db}.${traces}_runs
(
    `Tenant` LowCardinality(String),
    `RunId` String,
    `ExperimentId` String,
    `RunName` String,
    `UserId` String,
    `Status` LowCardinality(String),
    `StartTime` Int64,
    `EndTime` Nullable(Int64),
    `LifecycleStage` LowCardinality(String),
    `ArtifactUri` String,
    `ModelOutputs` Array(Tuple(model_id String, step Int64)),
    `UpdatedAt` DateTime64(9) DEFAULT now64(9)
)
ENGINE = ReplacingMergeTree(UpdatedAt)
ORDER BY (Tenant, RunId);

-- Params are immutable in MLflow; a retried log-batch writes the same row again.
CREATE TABLE IF NOT EXISTS ${db}.${traces}_run_params
(
    `Tenant` LowCardinality(String),
    `RunId` String,
    `Key` String,
    `Value` String,
    `UpdatedAt` DateTime64(9) DEFAULT now64(9)
)
ENGINE = ReplacingMergeTree(UpdatedAt)
ORDER BY (Tenant, RunId, Key);

CREATE TABLE IF NOT EXISTS ${db}.${traces}_run_tags
(
    `Tenant` LowCardinality(String),
    `RunId` String,
    `Key` String,
    `Value` String,
    `Deleted` UInt8,
    `UpdatedAt` DateTime64(9) DEFAULT now64(9)
)
ENGINE = ReplacingMergeTree(UpdatedAt)
ORDER BY (Tenant, RunId, Key);

-- A metric's history: one row per (key, step, timestamp, value), as MLflow's own primary
-- key, so a retried log-metric is stored once.
CREATE TABLE IF NOT EXISTS ${db}.${traces}_run_metrics
(
    `Tenant` LowCardinality(String),
    `RunId` String,
    `Key` String,
    `Step` Int64,
    `Timestamp` Int64,
    `Value` Float64
)
ENGINE = ReplacingMergeTree
ORDER BY (Tenant, RunId, Key, Step, Timestamp, Value);

-- MLflow's TraceInfo: experiment, state, metadata (incl. mlflow.sourceRun, token usage)
-- and tags (mlflow.traceName, mlflow.linkedPrompts, user tags). The spans live in the
-- spans table like every other trace's; TraceId is the OTel id (hex), RequestId MLflow's.
CREATE TABLE IF NOT EXISTS ${db}.${traces}_trace_info
(
    `Tenant` LowCardinality(String),
    `TraceId` String,
    `RequestId` String,
    `ExperimentId` String,
    `RequestTime` Int64,
    `ExecutionDuration` Int64,
    `State` LowCardinality(String),
    `RequestPreview` String,
    `ResponsePreview` String,
    `Metadata` Map(String, String),
    `Tags` Map(String, String),
    `UpdatedAt` DateTime64(9) DEFAULT now64(9)
)
ENGINE = ReplacingMergeTree(UpdatedAt)
ORDER BY (Tenant, TraceId);

CREATE TABLE IF NOT EXISTS ${db}.${traces}_registered_models
(
    `Tenant` LowCardinality(String),
    `Name` String,
    `Description` String,
    `Tags` Map(String, String),
    `CreationTime` Int64,
    `LastUpdatedTime` Int64,
    `Deleted` UInt8,
    `UpdatedAt` DateTime64(9) DEFAULT now64(9)
)
ENGINE = ReplacingMergeTree(UpdatedAt)
ORDER BY (Tenant, Name);

CREATE TABLE IF NOT EXISTS ${db}.${traces}_model_versions
(
    `Tenant` LowCardinality(String),
    `Name` String,
    `Version` UInt64,
    `Description` String,
    `Source` String,
    `RunId` String,
    `Status` LowCardinality(String),
    `Tags` Map(String, String),
    `CreationTime` Int64,
    `LastUpdatedTime` Int64,
    `Deleted` UInt8,
    `UpdatedAt` DateTime64(9) DEFAULT now64(9)
)
ENGINE = ReplacingMergeTree(UpdatedAt)
ORDER BY (Tenant, Name, Version);

CREATE TABLE IF NOT EXISTS ${db}.${traces}_logged_models
(
    `Tenant` LowCardinality(String),
    `ModelId` String,
    `ExperimentId` String,
    `Name` String,
    `SourceRunId` String,
    `ModelType` String,
    `Status` LowCardinality(String),
    `ArtifactLocation` String,
    `Params` Map(String, String),
    `Tags` Map(String, String),
    `CreationTime` Int64,
    `LastUpdatedTime` Int64,
    `UpdatedAt` DateTime64(9) DEFAULT now64(9)
)
ENGINE = ReplacingMergeTree(UpdatedAt)
ORDER BY (Tenant, ModelId);

-- Artifacts a client uploads through the tracking server (log_text, log_dict, model files),
-- stored whole; the receiver caps their size.
CREATE TABLE IF NOT EXISTS ${db}.${traces}_artifacts
(
    `Tenant` LowCardinality(String),
    `Path` String,
    `Content` String CODEC(ZSTD(3)),
    `UpdatedAt` DateTime64(9) DEFAULT now64(9)
)
ENGINE = ReplacingMergeTree(UpdatedAt)
ORDER BY (Tenant, Path);

-- Scores: every judgement on a trace or span (MLflow assessments, feedback, evaluations).
-- ScoreId is the idempotency id: a resent score replaces itself.
CREATE TABLE IF NOT EXISTS ${db}.${traces}_scores
(
    `Tenant` LowCardinality(String),
    `ScoreId` String,
    `TraceId` String,
    `SpanId` String,
    `Name` String,
    `DataType` LowCardinality(String),
    `NumericValue` Nullable(Float64),
    `StringValue` String,
    `Comment` String,
    `Source` LowCardinality(String),
    `Author` String,
    `Kind` LowCardinality(String),
    `Error` String,
    `Metadata` Map(String, String),
    `RunId` String,
    `Timestamp` DateTime64(3),
    `Deleted` UInt8,
    `UpdatedAt` DateTime64(9) DEFAULT now64(9)
)
ENGINE = ReplacingMergeTree(UpdatedAt)
ORDER BY (Tenant, TraceId, ScoreId);
