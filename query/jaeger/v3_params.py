"""Parsing Jaeger's API v3 HTTP gateway parameters (its apiv3/query_parser.go and
http_gateway.go): the camelCase names proto3 JSON gives them (`query.serviceName`,
`startTime`...) and the snake_case ones it still takes (`query.service_name`, `start_time`...;
the camelCase one wins when both are given), RFC 3339 times, Go durations, Go booleans, a
JSON-encoded attribute map and trace ids in hex or base64. A bad value raises
`JaegerError(400, "malformed parameter <name>: ...")`, the gateway's wording."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from tracehouse.query.errors import ApiError
from tracehouse.query.jaeger.errors import JaegerError
from tracehouse.query.jaeger.params import DEFAULT_LIMIT, MAX_LIMIT, MAX_TAGS, parse_go_duration
from tracehouse.query.params import parse_time_ns

_HEX_ID = re.compile(r"^[0-9a-fA-F]{1,32}$")
_SEARCH_DEPTH = re.compile(r"^[+-]?\d{1,10}$")
# strconv.ParseBool
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
SPAN_KINDS = ("server", "client", "internal", "producer", "consumer")


def malformed(parameter: str, reason: str) -> JaegerError:
    return JaegerError(400, f"malformed parameter {parameter}: {reason}")


def pick(values: Mapping[str, str | None], canonical: str, deprecated: str) -> tuple[str, str]:
    """(value, the name it came by): the canonical name's non-empty value, else the
    deprecated alias's, as the gateway's getQueryParam."""
    value = values.get(canonical) or ""
    if value:
        return value, canonical
    return values.get(deprecated) or "", deprecated


def parse_bool(text: str, parameter: str) -> bool:
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise malformed(parameter, f"expected true or false, got {text!r}")


def parse_rfc3339(text: str, parameter: str) -> int:
    """RFC 3339 with up to nanoseconds (Go's time.RFC3339Nano) -> ns since the epoch."""
    if text.strip().replace(".", "", 1).isdigit():  # parse_time_ns also takes unix seconds; Jaeger does not
        raise malformed(parameter, f"expected an RFC 3339 time such as 2026-01-02T15:04:05.123456789Z, got {text!r}")
    try:
        return parse_time_ns(text, parameter)
    except ApiError as exc:
        raise malformed(parameter, exc.message.removeprefix(f"{parameter}: ")) from None


def parse_duration(text: str, parameter: str) -> int:
    """A Go duration (`500us`, `1.5s`, `2m`) -> ns."""
    try:
        return parse_go_duration(text, parameter)
    except JaegerError as exc:
        raise malformed(parameter, exc.msg.removeprefix(f"{parameter}: ")) from None


def parse_trace_id(text: str, parameter: str = "trace_id") -> str:
    """Hex (1 to 32 digits, left-padded as Jaeger's 64-bit ids) or base64 of the 16 (or 8)
    id bytes, standard or URL-safe, padded or not (the gateway's TraceIDFromString)
    -> 32 lowercase hex."""
    value = text.strip()
    trace_id = ""
    if _HEX_ID.match(value):
        trace_id = value.lower().rjust(32, "0")
    elif 0 < len(value) <= 24:
        padded = value + "=" * (-len(value) % 4)
        for altchars in (None, b"-_"):
            try:
                raw = base64.b64decode(padded, altchars=altchars, validate=True)
            except (binascii.Error, ValueError):
                continue
            if len(raw) in (8, 16):
                trace_id = raw.hex().rjust(32, "0")
                break
    if not trace_id:
        raise malformed(parameter, f"expected a trace id of 1 to 32 hex digits or the base64 of its bytes, "
                                   f"got {text!r}")
    if trace_id == "0" * 32:
        raise malformed(parameter, "the all-zero trace id is invalid")
    return trace_id


def parse_attributes(text: str, parameter: str = "query.attributes") -> list[tuple[str, str]]:
    """A JSON object of string values (`{"http.status_code":"200"}`) -> (key, value) pairs."""
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise malformed(parameter, f"not JSON ({exc})") from None
    if not isinstance(obj, dict) or not all(isinstance(v, str) for v in obj.values()):
        raise malformed(parameter, 'expected a JSON object of string values, such as {"http.status_code":"200"}')
    if any(not k for k in obj):
        raise malformed(parameter, "an attribute key is empty")
    if len(obj) > MAX_TAGS:
        raise malformed(parameter, f"at most {MAX_TAGS} attributes")
    return list(obj.items())


def parse_search_depth(text: str, parameter: str) -> int:
    """Traces to return: missing or not positive = 100 (as the gateway's gRPC twin), above
    MAX_LIMIT capped to it."""
    if not text:
        return DEFAULT_LIMIT
    if not _SEARCH_DEPTH.match(text):
        raise malformed(parameter, f"expected a whole number of traces, got {text!r}")
    n = int(text)
    return DEFAULT_LIMIT if n <= 0 else min(n, MAX_LIMIT)


@dataclass(frozen=True, slots=True)
class FindTracesParams:
    """A validated `GET /api/v3/traces` (FindTraces); `end_ns` inclusive; durations 0/None =
    no bound."""

    service: str
    operation: str
    tags: list[tuple[str, str]]
    start_ns: int
    end_ns: int
    min_duration_ns: int
    max_duration_ns: int | None
    limit: int
    raw_traces: bool


# the message of Jaeger's querysvc.ErrServiceNameRequired: tracehouse's search needs a service
SERVICE_REQUIRED = ("this storage backend requires a service name to search; searching all services is "
                    "not supported")


def parse_find_traces(q: Mapping[str, str | None]) -> FindTracesParams:
    """The FindTraces parameters, checked in the order the gateway checks them."""
    attributes = parse_attributes(q["query.attributes"] or "") if q.get("query.attributes") else []
    if q.get("query.filter"):
        raise malformed("query.filter", "structured filters are not supported; use query.serviceName, "
                                        "query.operationName and query.attributes")
    min_text, min_name = pick(q, "query.startTimeMin", "query.start_time_min")
    max_text, max_name = pick(q, "query.startTimeMax", "query.start_time_max")
    if not min_text or not max_text:
        raise JaegerError(400, "query.startTimeMin and query.startTimeMax are required")
    start_ns, end_ns = parse_rfc3339(min_text, min_name), parse_rfc3339(max_text, max_name)
    if start_ns >= end_ns:
        raise JaegerError(400, "query.startTimeMin must be before query.startTimeMax")
    depth_text, depth_name = pick(q, "query.searchDepth", "query.search_depth")
    if not depth_text:
        depth_text, depth_name = q.get("query.num_traces") or "", "query.num_traces"
    limit = parse_search_depth(depth_text, depth_name)
    dmin_text, dmin_name = pick(q, "query.durationMin", "query.duration_min")
    dmax_text, dmax_name = pick(q, "query.durationMax", "query.duration_max")
    min_duration = parse_duration(dmin_text, dmin_name) if dmin_text else 0
    max_duration = parse_duration(dmax_text, dmax_name) if dmax_text else 0
    if max_duration and max_duration < min_duration:
        raise malformed(dmax_name, f"must not be less than {dmin_name}")
    raw_text, raw_name = pick(q, "query.rawTraces", "query.raw_traces")
    raw = parse_bool(raw_text, raw_name) if raw_text else False
    service, _ = pick(q, "query.serviceName", "query.service_name")
    if not service.strip():
        raise JaegerError(400, SERVICE_REQUIRED)
    operation, _ = pick(q, "query.operationName", "query.operation_name")
    return FindTracesParams(service=service, operation=operation, tags=attributes, start_ns=start_ns,
                            end_ns=end_ns, min_duration_ns=min_duration,
                            max_duration_ns=max_duration or None, limit=limit, raw_traces=raw)
