"""Jaeger's JSON (the envelope, `ui.Trace`, names, operations, errors) as pydantic models:
they document the Jaeger routes in the OpenAPI document (the routes build the JSON
themselves, query/jaeger/rows.py)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class JaegerErrorItem(BaseModel):
    code: int = Field(description="HTTP status code.")
    msg: str = Field(description="What went wrong; for a 400 it names the parameter.")
    traceID: str | None = Field(default=None, description="The trace a `traceID` lookup did not find.")


class JaegerErrorResponse(BaseModel):
    data: None = None
    total: int = 0
    limit: int = 0
    offset: int = 0
    errors: list[JaegerErrorItem]


class JaegerKeyValue(BaseModel):
    key: str
    type: str = Field(description="`string`, `bool`, `int64` or `float64`.")
    value: str | bool | int | float


class JaegerReference(BaseModel):
    refType: str = Field(description="`CHILD_OF` (the parent) or `FOLLOWS_FROM` (an OpenTelemetry link).")
    traceID: str
    spanID: str


class JaegerLog(BaseModel):
    timestamp: int = Field(description="Microseconds since the epoch.")
    fields: list[JaegerKeyValue] = Field(description="`event` = the event name, then its attributes.")


class JaegerSpan(BaseModel):
    traceID: str = Field(description="32 lowercase hex characters.")
    spanID: str = Field(description="16 lowercase hex characters.")
    flags: int
    operationName: str
    references: list[JaegerReference]
    startTime: int = Field(description="Microseconds since the epoch (nanoseconds truncated).")
    duration: int = Field(description="Microseconds (nanoseconds truncated).")
    tags: list[JaegerKeyValue]
    logs: list[JaegerLog]
    processID: str
    warnings: list[str] | None


class JaegerProcess(BaseModel):
    serviceName: str
    tags: list[JaegerKeyValue] = Field(description="The resource attributes.")


class JaegerTrace(BaseModel):
    traceID: str
    spans: list[JaegerSpan]
    processes: dict[str, JaegerProcess]
    warnings: list[str] | None


class _Envelope(BaseModel):
    total: int
    limit: int = 0
    offset: int = 0
    errors: list[JaegerErrorItem] | None = None


class JaegerTracesResponse(_Envelope):
    data: list[JaegerTrace]


class JaegerNamesResponse(_Envelope):
    data: list[str]


class JaegerOperation(BaseModel):
    name: str
    spanKind: str = Field(description="`server`, `client`, `internal`, `producer`, `consumer` or \"\".")


class JaegerOperationsResponse(_Envelope):
    data: list[JaegerOperation]


class JaegerDependencyLink(BaseModel):
    parent: str = Field(description="The calling service.")
    child: str = Field(description="The called service.")
    callCount: int = Field(description="Spans of `child` whose parent span is a span of `parent`.")


class JaegerDependenciesResponse(_Envelope):
    data: list[JaegerDependencyLink]


# The error answers every Jaeger route documents (plus its own 404 where it has one).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": JaegerErrorResponse, "description": "A parameter is invalid; the message names it."},
    503: {"model": JaegerErrorResponse, "description": "ClickHouse could not answer."},
}


# ------------------------------------------------------------------------------ API v3


class JaegerV3ErrorDetails(BaseModel):
    httpCode: int = Field(description="The HTTP status code.")
    message: str = Field(description="What went wrong; for a 400 `malformed parameter <name>: ...`.")


class JaegerV3ErrorResponse(BaseModel):
    """Jaeger's API v3 HTTP gateway error (api_v3.GRPCGatewayError)."""

    error: JaegerV3ErrorDetails


class JaegerV3ServicesResponse(BaseModel):
    services: list[str]


class JaegerV3Operation(BaseModel):
    name: str
    spanKind: str = Field(description="`server`, `client`, `internal`, `producer` or `consumer` (an unspecified "
                                      "kind shows as `internal`, as Jaeger's gateway shows it).")


class JaegerV3OperationsResponse(BaseModel):
    operations: list[JaegerV3Operation]


class JaegerV3TracesData(BaseModel):
    resourceSpans: list[dict[str, Any]] = Field(
        description="OTLP/JSON ResourceSpans, as the Collector's pdata JSON marshaler writes them: hex ids, "
                    "integer enums, 64-bit integers as strings; `resource`, `scope` and `status` always present.")


class JaegerV3TracesResponse(BaseModel):
    """api_v3.GRPCGatewayWrapper: the traces as one OTLP TracesData."""

    result: JaegerV3TracesData


V3_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": JaegerV3ErrorResponse, "description": "A parameter is invalid; the message names it."},
    503: {"model": JaegerV3ErrorResponse, "description": "ClickHouse could not answer."},
}
