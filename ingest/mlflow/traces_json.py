"""MLflow's `traces.json` artifact (what a client uploads when the server does not say it
stores spans itself) -> an OTLP request, so the spans take the same pipeline as /v1/traces.

Its spans are OTLP-like JSON: ids base64 (MLflow 3) or `0x`-hex (MLflow 2), attribute
values JSON-encoded strings (kept as such: the same encoding MLflow's spans have when they
go through the stock OTel exporter, which genai_normalize reads).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from tracehouse.ingest.mlflow.errors import invalid

_STATUS = {"STATUS_CODE_OK": Status.STATUS_CODE_OK, "OK": Status.STATUS_CODE_OK,
           "STATUS_CODE_ERROR": Status.STATUS_CODE_ERROR, "ERROR": Status.STATUS_CODE_ERROR}


def _id(value: Any, size: int, what: str) -> bytes:
    if value in (None, ""):
        return b""
    text = str(value)
    try:
        raw = bytes.fromhex(text[2:]) if text.startswith("0x") else base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        raise invalid(f"traces.json: {what} {text!r} is neither base64 nor 0x-hex") from None
    if len(raw) != size:
        raise invalid(f"traces.json: {what} {text!r} is {len(raw)} bytes, expected {size}")
    return raw


def _attributes(target: Any, attrs: Any) -> None:
    if not isinstance(attrs, Mapping):
        return
    for key, value in attrs.items():
        target.append(KeyValue(key=str(key)))
        target[-1].value.string_value = value if isinstance(value, str) else json.dumps(value)


def spans_request(body: bytes, resource: Mapping[str, str]) -> ExportTraceServiceRequest:
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise invalid(f"traces.json is not JSON: {exc}") from None
    spans = doc.get("spans") if isinstance(doc, Mapping) else None
    if not isinstance(spans, list):
        raise invalid("traces.json must be an object with a `spans` list")
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    for key, value in resource.items():
        rs.resource.attributes.append(KeyValue(key=key))
        rs.resource.attributes[-1].value.string_value = value
    scope = rs.scope_spans.add()
    scope.scope.name = "mlflow.traces_json"
    for i, s in enumerate(spans):
        if not isinstance(s, Mapping):
            raise invalid(f"traces.json: span {i} is not an object")
        span = scope.spans.add()
        span.trace_id = _id(s.get("trace_id"), 16, "trace_id")
        span.span_id = _id(s.get("span_id"), 8, "span_id")
        span.parent_span_id = _id(s.get("parent_span_id"), 8, "parent_span_id")
        span.name = str(s.get("name") or "")
        span.kind = Span.SPAN_KIND_INTERNAL
        try:
            span.start_time_unix_nano = int(s.get("start_time_unix_nano") or 0)
            span.end_time_unix_nano = int(s.get("end_time_unix_nano") or 0)
        except (TypeError, ValueError):
            raise invalid(f"traces.json: span {i} has a non-integer time") from None
        status = s.get("status") or {}
        span.status.code = _STATUS.get(str(status.get("code", "")), Status.STATUS_CODE_UNSET)
        span.status.message = str(status.get("message") or "")
        _attributes(span.attributes, s.get("attributes"))
        for e in s.get("events") or ():
            event = span.events.add()
            event.name = str(e.get("name") or "")
            event.time_unix_nano = int(e.get("time_unix_nano") or 0)
            _attributes(event.attributes, e.get("attributes"))
    return request
