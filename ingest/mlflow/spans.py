"""Stored spans -> the OTLP JSON spans MLflow's GetTrace answers with, so `mlflow.get_trace()`
and `mlflow.search_traces()` read back the spans they logged.

The spans table keeps attribute values as strings (the Collector's schema): typed OTLP values
as JSON text, MLflow's `traces.json` values JSON-encoded. Both decode with `json.loads` to
what the client sent; a value that is not JSON is the plain string it was. MLflow re-encodes
whatever value it gets, so typed values must go back typed.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

_STATUS = {"Ok": "STATUS_CODE_OK", "Error": "STATUS_CODE_ERROR"}


def any_value(value: Any) -> dict[str, Any]:
    """A Python value as OTLP AnyValue JSON (protobuf's JSON mapping)."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, Mapping):
        return {"kvlistValue": {"values": [{"key": str(k), "value": any_value(v)} for k, v in value.items()]}}
    if isinstance(value, list):
        return {"arrayValue": {"values": [any_value(v) for v in value]}}
    return {}  # null: an empty AnyValue


def decoded(text: str) -> Any:
    if not text or text[0] not in '{["-0123456789tfn':
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _attributes(attrs: Mapping[str, str]) -> list[dict[str, Any]]:
    return [{"key": k, "value": any_value(decoded(v))} for k, v in attrs.items()]


def _b64(hex_id: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_id)).decode() if hex_id else ""


def _ns(ts: Any) -> int:
    return int(ts.timestamp()) * 1_000_000_000 + ts.microsecond * 1000 if isinstance(ts, datetime) else int(ts)


def span_json(row: Mapping[str, Any]) -> dict[str, Any]:
    start = int(row["StartNs"])
    span: dict[str, Any] = {
        "traceId": _b64(row["TraceId"]), "spanId": _b64(row["SpanId"]), "name": row["SpanName"],
        "startTimeUnixNano": str(start), "endTimeUnixNano": str(start + int(row["Duration"])),
        "attributes": _attributes(row["SpanAttributes"]),
        "status": {"code": _STATUS.get(row["StatusCode"], "STATUS_CODE_UNSET"), "message": row["StatusMessage"]},
        "events": [{"timeUnixNano": str(int(ns)), "name": name, "attributes": _attributes(attrs)}
                   for ns, name, attrs in zip(row["EventNs"], row["EventNames"], row["EventAttributes"], strict=False)],
    }
    if row["ParentSpanId"]:
        span["parentSpanId"] = _b64(row["ParentSpanId"])
    return span
