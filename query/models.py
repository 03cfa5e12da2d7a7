"""Response models of the query API; they are what `/openapi.json` documents.

Nanosecond timestamps travel as decimal strings (`*_unix_nano`): JavaScript numbers
cannot hold integers above 2^53, and a DateTime64(9) since the epoch is near 2^61.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    code: int = Field(description="HTTP status code, repeated in the body.")
    message: str = Field(description="What went wrong, for humans.")
    parameter: str | None = Field(default=None, description="The request parameter at fault, for a 400.")


class ErrorResponse(BaseModel):
    error: ErrorDetail


# ------------------------------------------------------------------------------ search


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


class TraceSearchResponse(BaseModel):
    traces: list[TraceSummary]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page.")
    start: str = Field(description="Start of the searched range (inclusive), RFC 3339.")
    end: str = Field(description="End of the searched range (exclusive), RFC 3339.")
    limit: int


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


class SpanLink(BaseModel):
    trace_id: str
    span_id: str
    trace_state: str
    attributes: dict[str, str]


class GenAIFields(BaseModel):
    """The typed GenAI columns as stored: empty strings and nulls mean "not known"."""

    provider: str
    operation: str
    span_kind: str
    request_model: str
    response_model: str
    input_tokens: int | None
    output_tokens: int | None
    cached_input_tokens: int | None
    reasoning_tokens: int | None
    total_tokens: int | None
    tokens_estimated: bool
    input_cost_usd: float | None
    output_cost_usd: float | None
    total_cost_usd: float | None
    cost_source: str
    price_version: str = Field(description="price table of a computed cost, e.g. genai-prices==0.2.3")
    prompt_name: str
    prompt_version: str
    session_id: str
    user_id: str


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
    genai: GenAIFields


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


class TraceDetailResponse(BaseModel):
    trace_id: str
    spans: list[SpanDetail] = Field(description="Every span once, ordered by start time.")
    totals: TraceTotals
    truncated: bool = Field(
        default=False, description="True when the trace has more spans than one response returns.")


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
