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
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

__all__ = ["encode_export_response", "encode_status"]


def _dump_message(message: Message) -> bytes:
    # json_format gives the canonical proto3 JSON (camelCase, int64 as strings, Any with
    # "@type"); the messages here are tiny, so its speed does not matter.
    return _json.dumps(json_format.MessageToDict(message), separators=(",", ":")).encode("utf-8")


def encode_export_response(rejected_spans: int, error_message: str, *, json: bool) -> bytes:
    """An `ExportTraceServiceResponse` body. `partial_success` stays unset on full success
    (nothing rejected, no message), as the OTLP spec requires; a message with
    `rejected_spans == 0` is the spec's "warning" form."""
    if rejected_spans < 0:
        raise ValueError("rejected_spans must be >= 0")
    response = ExportTraceServiceResponse()
    if rejected_spans or error_message:
        response.partial_success.rejected_spans = rejected_spans
        response.partial_success.error_message = error_message
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
