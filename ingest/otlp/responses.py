"""OTLP export responses and `google.rpc.Status` error bodies, in protobuf or JSON.

The gRPC and HTTP receivers answer with these; the messages are tiny, so they go through
`json_format` (canonical proto3 JSON) rather than the OTLP/JSON encoder.
"""

from __future__ import annotations

import json as _json
import math

from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tracehouse.core.component import Signal

__all__ = ["encode_export_response", "encode_status"]


def _dump_message(message: Message) -> bytes:
    # json_format gives the canonical proto3 JSON (camelCase, int64 as strings, Any with
    # "@type"); the messages here are tiny, so its speed does not matter.
    return _json.dumps(json_format.MessageToDict(message), separators=(",", ":")).encode("utf-8")


# Per signal: the response message and its partial_success count field.
_RESPONSES: dict[Signal, tuple[type[Message], str]] = {
    Signal.TRACES: (ExportTraceServiceResponse, "rejected_spans"),
    Signal.LOGS: (ExportLogsServiceResponse, "rejected_log_records"),
    Signal.METRICS: (ExportMetricsServiceResponse, "rejected_data_points"),
}


def encode_export_response(rejected: int, error_message: str, *, json: bool,
                           signal: Signal = Signal.TRACES) -> bytes:
    """An `Export{Trace,Logs,Metrics}ServiceResponse` body. `partial_success` stays unset on
    full success (nothing rejected, no message), as the OTLP spec requires; a message with
    nothing rejected is the spec's "warning" form."""
    if rejected < 0:
        raise ValueError("the rejected count must be >= 0")
    response_type, count_field = _RESPONSES[signal]
    response = response_type()
    if rejected or error_message:
        partial = response.partial_success
        setattr(partial, count_field, rejected)
        partial.error_message = error_message
    return _dump_message(response) if json else response.SerializeToString()


def encode_status(code: int, message: str, *, json: bool, retry_after_s: float | None = None) -> bytes:
    """A `google.rpc.Status` body for an HTTP error response (`code` is a `google.rpc.Code`).

    With `retry_after_s`, a `google.rpc.RetryInfo` detail carries the delay (negative values
    are clamped to 0), for 429/503 answers alongside the `Retry-After` header.
    """
    status = status_pb2.Status(code=code, message=message)
    if retry_after_s is not None:
        if not math.isfinite(retry_after_s):
            raise ValueError(f"retry_after_s must be finite, got {retry_after_s}")
        info = error_details_pb2.RetryInfo()
        info.retry_delay.FromNanoseconds(round(max(0.0, retry_after_s) * 1e9))
        status.details.add().Pack(info)
    return _dump_message(status) if json else status.SerializeToString()
