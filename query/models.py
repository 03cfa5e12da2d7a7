"""Response models of the query API; they are what `/openapi.json` documents.

Nanosecond timestamps travel as decimal strings (`*_unix_nano`): JavaScript numbers
cannot hold integers above 2^53, and a DateTime64(9) since the epoch is near 2^61.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field, create_model

from tracehouse.core.genai import STORED_FIELDS


class ErrorDetail(BaseModel):
    code: int = Field(description="HTTP status code, repeated in the body.")
    message: str = Field(description="What went wrong, for humans.")
    parameter: str | None = Field(default=None, description="The request parameter at fault, for a 400.")


class ErrorResponse(BaseModel):
    error: ErrorDetail


# ------------------------------------------------------------------------------ search


class ScoreStats(BaseModel):
    """Scores aggregated: numeric scores and booleans (as 1/0) give the mean, min and max;
    categories, booleans (`true`/`false`) and the labels evaluations give numeric scores give
    the distribution."""

    scores: int = Field(description="Live scores counted (each once).")
    numeric_count: int = Field(description="Of those, the ones with a number: numeric scores and booleans (1/0).")
    mean: float | None = Field(description="Mean of those numbers (for booleans: the share of true); null "
                                            "without any.")
    min: float | None
    max: float | None
    categories: dict[str, int] = Field(description="Label -> scores with it, most frequent first (at most "
                                                   "100; `other_categories` counts the rest).")
    other_categories: int = Field(description="Scores whose label is not among the 100 shown.")
    errors: int = Field(description="Scores recording a failed evaluation (`error`).")


class _ScoreName(BaseModel):
    name: str = Field(description="The score name.")


class NamedScoreStats(ScoreStats, _ScoreName):  # `name` first in the JSON
    pass


class TraceSummary(BaseModel):
    trace_id: str = Field(description="32 lowercase hex characters.")
    root_span_name: str = Field(description="Name of the root span (earliest span when the root is missing).")
    root_service_name: str = Field(
        description="Service of the root span (earliest span when the root is missing).")
    service_names: list[str] = Field(description="Every service with a span in the trace, sorted.")
    start_time: str = Field(description="Start of the earliest span, RFC 3339 with nanoseconds, UTC.")
    start_time_unix_nano: str = Field(
        description="Same instant in nanoseconds since the epoch, as a decimal string.")
    duration_ns: int = Field(description="From the earliest span start to the latest span end.")
    span_count: int = Field(description="Distinct spans (a span stored twice counts once).")
    error_count: int = Field(description="Spans with status code Error.")
    status: str = Field(description="`error` when any span has status code Error, else `ok`.")
    input_tokens: int | None = Field(
        description="Sum of the spans' GenAI input tokens; null when no span reported any.")
    output_tokens: int | None = Field(
        description="Sum of GenAI output tokens; null when no span reported any.")
    total_tokens: int | None = Field(description="Sum of GenAI total tokens; null when no span reported any.")
    total_cost_usd: float | None = Field(
        description="Sum of GenAI total cost in USD; null when no span had one.")
    models: list[str] = Field(description="Distinct non-empty GenAI request and response models, sorted.")
    scores: list[NamedScoreStats] = Field(default_factory=list, description=(
        "The trace's scores (on it and its spans) per name, sorted by name: count, mean and labels."))


class TraceDeletedResponse(BaseModel):
    trace_id: str
    deleted_spans: int = Field(description="Spans the trace had; they and their rollup contributions are gone.")


class TraceSearchTotals(BaseModel):
    traces: int = Field(description="Traces matching the filters, on every page together.")
    input_tokens: int
    output_tokens: int
    cost_usd: float
    estimated: bool = Field(
        default=False, description="Whether the totals are estimated: a range of more traces than the query "
        "service's `exact_totals_max_traces` (100,000) counts them from the per-trace rollup's rows, within "
        "~1% (the page itself is always exact).")


class TraceSearchResponse(BaseModel):
    traces: list[TraceSummary]
    totals: TraceSearchTotals | None = Field(
        default=None, description="Of the whole filtered set, whatever the page; null on an empty later page.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page.")
    start: str = Field(description="Start of the searched range (inclusive), RFC 3339.")
    end: str = Field(description="End of the searched range (exclusive), RFC 3339.")
    limit: int
    sort: str = Field(description="The sort key of the page: `time`, `cost`, `tokens` or `duration`.")
    order: str = Field(description="`desc` (largest or newest first) or `asc`.")


# ------------------------------------------------------------------------------ trace detail


class SpanStatus(BaseModel):
    code: str = Field(description="`Unset`, `Ok` or `Error`.")
    message: str


class SpanScope(BaseModel):
    name: str
    version: str


class SpanEvent(BaseModel):
    time_unix_nano: str = Field(description="Nanoseconds since the epoch, as a decimal string.")
    name: str
    attributes: dict[str, str]


class GenAILogEvent(BaseModel):
    """A `gen_ai.*` event of the span that arrived as a log record (OTLP logs)."""

    time_unix_nano: str = Field(description="Nanoseconds since the epoch, as a decimal string.")
    name: str = Field(description="The record's event name (or its `event.name` attribute).")
    attributes: dict[str, str]
    body: str = Field(description="The record's body as text (a map as JSON); empty without one.")


class SpanLink(BaseModel):
    trace_id: str
    span_id: str
    trace_state: str
    attributes: dict[str, str]


def _genai_fields_model() -> type[BaseModel]:
    """The stored GenAI fields (core/genai.py, the one list), as the API shows them: token
    counts and costs nullable (unknown), costs as JSON numbers."""
    api_type: dict[type, Any] = {str: str, bool: bool, int: int | None, Decimal: float | None}
    fields: dict[str, Any] = {
        f.name: (api_type[f.kind], Field(description=f.description) if f.description else ...)
        for f in STORED_FIELDS
    }
    model: type[BaseModel] = create_model(
        "GenAIFields", __doc__='The typed GenAI columns as stored: empty strings and nulls mean "not known".',
        __module__=__name__, **fields)
    return model


GenAIFields = _genai_fields_model()


class ToolCall(BaseModel):
    name: str
    arguments: str = Field(description="As the client sent them (usually JSON text).")


class ChatMessageModel(BaseModel):
    role: str = Field(description="`system`, `user`, `assistant`, `tool`, ... as the convention named it.")
    content: str = Field(description="Text content; parts of other kinds (images, audio) are left out.")
    tool_calls: list[ToolCall]


class SpanDetail(BaseModel):
    trace_id: str
    span_id: str
    parent_span_id: str = Field(description="Empty for a root span.")
    trace_state: str
    name: str
    kind: str = Field(description="`Unspecified`, `Internal`, `Server`, `Client`, `Producer` or `Consumer`.")
    service_name: str
    start_time: str = Field(description="RFC 3339 with nanoseconds, UTC.")
    start_time_unix_nano: str
    end_time_unix_nano: str
    duration_ns: int
    status: SpanStatus
    resource_attributes: dict[str, str]
    scope: SpanScope
    attributes: dict[str, str] = Field(
        description="Span attributes, values as strings (the Collector's encoding).")
    events: list[SpanEvent]
    links: list[SpanLink]
    genai: GenAIFields  # type: ignore[valid-type]
    log_events: list[GenAILogEvent] = Field(
        default_factory=list, description="The span's GenAI events sent as log records (the official "
        "instrumentations' content events, evaluations), oldest first; read with one trace, empty in exports.")
    input_messages: list[ChatMessageModel] | None = Field(
        default=None, description="The prompt as chat messages, from whichever convention the span used, else "
                                  "from its GenAI events (span events or log records); null without one.")
    output_messages: list[ChatMessageModel] | None = Field(
        default=None, description="The completion as chat messages; null without one.")


class TraceTotals(BaseModel):
    span_count: int
    error_count: int
    start_time_unix_nano: str
    duration_ns: int
    input_tokens: int | None
    output_tokens: int | None
    total_tokens: int | None
    total_cost_usd: float | None
    services: list[str]


class Score(BaseModel):
    """One judgement on a trace or one of its spans: written through `POST /api/v1/scores`, an
    MLflow assessment (feedback or expectation), or a `gen_ai.evaluation.result` event."""

    score_id: str = Field(description="The score's id: the caller's, MLflow's assessment id, or one derived "
                                      "from the judgement (`s-…` API, `ev-…` evaluation event).")
    name: str
    data_type: str = Field(description="`numeric`, `boolean` or `categorical`.")
    value: bool | float | str | None = Field(
        description="A number (numeric; null when not finite), a boolean, or text (categorical; a list or "
                    "object value is its JSON text).")
    label: str = Field(default="", description="A numeric score's label, when its evaluation gave one "
                                               "(`gen_ai.evaluation.score.label`); else empty.")
    comment: str = Field(description="The rationale given with it; empty when none.")
    source: str = Field(description="`human`, `llm_judge` or `code`; empty when not said.")
    author: str = Field(description="Who or what judged (the source id).")
    timestamp: str = Field(description="When it was made, RFC 3339 UTC.")
    span_id: str = Field(description="The span judged; empty for the whole trace.")
    kind: str = Field(description="`feedback` or `expectation`.")
    run_id: str = Field(description="The MLflow run it was logged under; empty when none.")
    error: str = Field(default="", description="Why the evaluation failed (`error.type` of an evaluation event, "
                                               "MLflow's assessment error); empty when it did not.")
    metadata: dict[str, str] = Field(default_factory=dict, description=(
        "Anything else the producer attached (e.g. `gen_ai.response.id` of an evaluation event)."))


class ScoresResponse(BaseModel):
    trace_id: str
    scores: list[Score] = Field(description="Oldest first.")


class ScoresWrittenResponse(BaseModel):
    score_ids: list[str] = Field(description="The id of each score, in the order sent. Sending a score again "
                                             "(same id) replaces it: it is stored and counted once.")


class ScoreDeletedResponse(BaseModel):
    score_id: str
    deleted: bool = True


class MlflowTraceInfo(BaseModel):
    """What an MLflow client logged about the trace besides its spans."""

    experiment_id: str
    request_id: str = Field(description="MLflow's trace id (`tr-<trace id>`).")
    tags: dict[str, str]
    metadata: dict[str, str] = Field(description="Trace metadata, e.g. `mlflow.sourceRun` (the run that produced "
                                                 "it) and `mlflow.trace.tokenUsage`.")


class TraceDetailResponse(BaseModel):
    trace_id: str
    spans: list[SpanDetail] = Field(description="Every span once, ordered by start time.")
    totals: TraceTotals
    truncated: bool = Field(
        default=False, description="True when the trace has more spans than one response returns.")
    scores: list[Score] = Field(default_factory=list, description="Scores of the trace and its spans, oldest first.")
    mlflow: MlflowTraceInfo | None = Field(
        default=None, description="The trace's MLflow trace info; null when no MLflow client logged the trace.")


# ------------------------------------------------------------------------------ health


class HealthResponse(BaseModel):
    status: str = Field(description="`ok`, or `unhealthy` when a component failed fatally.")


class ComponentStatusModel(BaseModel):
    status: str
    error: str | None = None


class ReadyResponse(BaseModel):
    status: str = Field(description="`ready` or `not_ready`.")
    components: dict[str, ComponentStatusModel] = Field(
        description="Status of every component, keyed `kind/id` (e.g. `exporter/clickhouse`).")


# ------------------------------------------------------------------------------ GenAI metrics


class LatencyMs(BaseModel):
    """Model-call latency in milliseconds. Percentiles are t-digest estimates merged from
    the per-minute rollup (centroids are 32-bit floats: ~7 significant digits); `avg` is
    exact (sum of durations / requests)."""

    p50: float
    p90: float
    p95: float
    p99: float
    avg: float


class GenAIUsage(BaseModel):
    spans: int = Field(description="Spans counted: model calls, spans linked to a prompt, and spans whose usage "
                                   "aggregates the calls below them (`usage_scope` aggregate).")
    requests: int = Field(description="Model calls (GenAI span kind llm, embedding or reranker, or a span "
                                      "with a model and no kind); an aggregate's usage is never a request.")
    errors: int = Field(description="Model calls with status Error.")
    input_tokens: int = Field(description="Input tokens (cached included); unknown counts add nothing.")
    output_tokens: int = Field(description="Output tokens (reasoning included).")
    cached_input_tokens: int
    reasoning_tokens: int
    total_tokens: int
    estimated_tokens: int = Field(description="Part of `total_tokens` that tracehouse estimated (the client "
                                              "reported no usage).")
    estimated_requests: int = Field(description="Model calls whose tokens were estimated.")
    unpriced_requests: int = Field(description="Model calls with no cost (unknown model or no usage); a call "
                                               "whose usage an ancestor's aggregate holds is not counted.")
    cost_usd: float = Field(description="Total cost in USD: the exact Decimal(38, 12) sum, as the nearest "
                                        "double.")
    input_cost_usd: float
    output_cost_usd: float
    latency_ms: LatencyMs | None = Field(description="Null when there were no model calls.")


class _BucketTime(BaseModel):
    time: str = Field(description="Start of the bucket, RFC 3339 UTC; the bucket is [time, time + step).")


class GenAIPoint(GenAIUsage, _BucketTime):  # `time` first in the JSON
    pass


class GenAISeries(BaseModel):
    group: dict[str, str] = Field(
        description="The series' value of each `group_by` dimension (\"\" = none recorded); {} without group_by.")
    points: list[GenAIPoint] = Field(description="Buckets with data only (no zero-filling), oldest first.")
    totals: GenAIUsage = Field(description="The series over the whole range (latency merged over all of it).")


class ScorePoint(ScoreStats, _BucketTime):
    pass


class ScoreSeries(BaseModel):
    name: str = Field(description="The score name: scores of different names are never aggregated together.")
    group: dict[str, str] = Field(description="The labels of what the scores judge, per `group_by` dimension "
                                              "(\"\" = none); {} without group_by.")
    points: list[ScorePoint] = Field(description="Buckets with scores only, oldest first (by the scores' time).")
    totals: ScoreStats = Field(description="The series over the whole range.")


class ScoreMetrics(BaseModel):
    series: list[ScoreSeries] = Field(description="One per score name and group, ordered by name and group values.")
    totals: list[NamedScoreStats] = Field(description="Per score name over the range and filters, each score once "
                                                      "(a score can fall in several groups).")


class GenAIMetricsResponse(BaseModel):
    start: str = Field(description="Start of the covered range (inclusive): `start` rounded down to a "
                                   "multiple of the step since the epoch.")
    end: str = Field(description="End of the covered range (exclusive): `end` rounded up to a multiple of "
                                 "the step.")
    step_seconds: int
    group_by: list[str]
    series: list[GenAISeries] = Field(description="One per distinct group with data, ordered by group values.")
    totals: GenAIUsage = Field(description="Every series together.")
    scores: ScoreMetrics | None = Field(default=None, description="With `scores=true`: the scores of the range "
                                                                  "by name and the same groups.")


# ------------------------------------------------------------------------------ prompts


class SessionSummary(BaseModel):
    session_id: str
    user_id: str = Field(description="The user of the latest turn; empty when none was reported.")
    turns: int = Field(description="Traces of the session starting in the range.")
    first_time: str = Field(description="Start of the first of those turns, RFC 3339.")
    last_time: str = Field(description="End of the last of those turns, RFC 3339.")
    input_tokens: int
    output_tokens: int
    cost_usd: float
    error_spans: int


class SessionListResponse(BaseModel):
    sessions: list[SessionSummary] = Field(description="Latest activity first.")
    total: int = Field(description="Sessions matching, beyond `limit` too.")
    start: str
    end: str


class PromptUsageTotals(BaseModel):
    spans: int = Field(description="Spans linked to the prompt (its uses).")
    requests: int = Field(description="Model calls among them.")
    total_tokens: int
    cost_usd: float


class PromptSummary(BaseModel):
    name: str
    version_count: int = Field(description="Versions registered or seen in use.")
    latest_version: str = Field(description="Last version in version order (see GET /api/v1/prompts/{name}).")
    source: str | None = Field(description="Convention that named the prompt (e.g. `langfuse`, `poml`), from "
                                           "the most recently registered version; null when none is registered.")
    registered_at: str | None = Field(description="Earliest registration of any version; null if unregistered.")
    first_seen: str | None = Field(description="First span linked to the prompt; null if never used.")
    last_seen: str | None = Field(description="Last span linked to the prompt; null if never used.")
    usage: PromptUsageTotals = Field(description="All-time usage of every version.")


class PromptListResponse(BaseModel):
    prompts: list[PromptSummary] = Field(description="Ordered by name.")
    total: int = Field(description="Prompt names matching `q`, over all pages.")
    limit: int
    offset: int


class PromptVersionUsage(BaseModel):
    spans: int
    requests: int
    errors: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: float
    latency_ms: LatencyMs | None = Field(description="Null when the version made no model call.")


class PromptVersionDetail(BaseModel):
    version: str = Field(description="\"\" for a prompt named without a version.")
    template: str | None = Field(description="The registered template; null when the version has no registry "
                                             "entry (seen in use only) or \"\" when registered without one.")
    template_hash: str | None = Field(description="SHA-256 (hex) of the template, as registered.")
    source: str | None
    registered_at: str | None = Field(description="When the version's registry entry was claimed.")
    first_seen: str | None = Field(description="First use (all time); null if never used.")
    last_seen: str | None = Field(description="Last use (all time); null if never used.")
    usage: PromptVersionUsage = Field(description="Usage within [start, end) (all time by default).")


class PromptDetailResponse(BaseModel):
    name: str
    latest_version: str
    versions: list[PromptVersionDetail] = Field(
        description="Oldest first: numerically when every non-empty version is a number, else by "
                    "registration (first use when unregistered); the empty version first.")
    start: str | None = Field(description="Start of the usage window (minute), null = unbounded.")
    end: str | None = Field(description="End of the usage window (minute, exclusive), null = unbounded.")


# ------------------------------------------------------------------------------ experiments and runs (MLflow)


class ExperimentSummary(BaseModel):
    experiment_id: str
    name: str
    lifecycle_stage: str = Field(description="`active` or `deleted`.")
    creation_time: str = Field(description="RFC 3339 UTC.")
    last_update_time: str = Field(description="RFC 3339 UTC.")
    tags: dict[str, str]
    run_count: int = Field(description="Active runs of the experiment (nested ones included).")
    trace_count: int = Field(description="MLflow traces logged to the experiment.")


class ExperimentListResponse(BaseModel):
    experiments: list[ExperimentSummary] = Field(description="Active experiments, newest first.")


class RunSummary(BaseModel):
    run_id: str
    run_name: str
    experiment_id: str
    status: str = Field(description="MLflow's run status: `RUNNING`, `FINISHED`, `FAILED`, `KILLED`, `SCHEDULED`.")
    lifecycle_stage: str = Field(description="`active` or `deleted`.")
    start_time: str = Field(description="RFC 3339 UTC.")
    end_time: str | None = Field(description="Null while the run has not ended.")
    duration_ms: int | None = Field(description="end - start; null while the run has not ended.")
    parent_run_id: str | None = Field(description="The run it is nested under (tag `mlflow.parentRunId`); "
                                                  "null for a top-level run.")
    user_id: str
    latest_metrics: dict[str, float | None] = Field(
        description="Each metric's value at its largest (step, timestamp), as MLflow shows it; null when not finite "
                    "(NaN, ±Infinity).")
    params: dict[str, str]
    tags: dict[str, str]


class MetricPoint(BaseModel):
    step: int
    timestamp: str = Field(description="When the value was logged, RFC 3339 UTC.")
    value: float | None = Field(description="Null when not finite (NaN, ±Infinity).")


class MlflowTraceSummary(BaseModel):
    trace_id: str = Field(description="The OTel trace id (32 hex): `GET /api/v1/traces/{trace_id}` shows its spans.")
    request_id: str = Field(description="MLflow's trace id (`tr-<trace id>`).")
    experiment_id: str
    name: str = Field(description="The trace's name (tag `mlflow.traceName`); empty when none.")
    state: str = Field(description="MLflow's trace state: `OK`, `ERROR` or `IN_PROGRESS`.")
    start_time: str = Field(description="The request time MLflow logged, RFC 3339 UTC.")
    duration_ms: int = Field(description="The execution duration MLflow logged.")
    source_run_id: str | None = Field(description="The run that produced it (metadata `mlflow.sourceRun`).")
    span_count: int = Field(description="Spans stored for the trace (0 until they arrive).")
    input_tokens: int | None = Field(description="From the stored spans, as in the trace list; null when none reported.")
    output_tokens: int | None
    total_tokens: int | None
    total_cost_usd: float | None


class ExperimentDetailResponse(ExperimentSummary):
    runs: list[RunSummary] = Field(description="Every active run, top-level and nested (see `parent_run_id`), "
                                               "newest first.")
    traces: list[MlflowTraceSummary] = Field(description="The experiment's most recent traces, newest first.")


class RunDetail(RunSummary):
    experiment_name: str
    metrics: dict[str, list[MetricPoint]] = Field(
        description="Every logged value of each metric, by step then timestamp.")
    children: list[RunSummary] = Field(description="Runs nested directly under this one, newest first.")
    traces: list[MlflowTraceSummary] = Field(
        description="Traces the run produced (metadata `mlflow.sourceRun`), newest first.")


class RunDetailResponse(BaseModel):
    run: RunDetail
