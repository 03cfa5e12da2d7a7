"""Parsing Jaeger's query parameters: trace ids (up to 32 hex digits), microseconds since the
epoch, Go durations, the Jaeger UI's `lookback`, `limit` and tags (a JSON object, logfmt, or
repeated `tag=key:value`). A bad value raises `JaegerError(400, ...)` whose message names it."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from tracehouse.query.jaeger.errors import JaegerError

US = 1_000  # nanoseconds per microsecond
NS = 1_000_000_000  # nanoseconds per second
HOUR_NS = 3600 * NS
MAX_NS = 2**63 - 1

# Jaeger's query service defaults for a search without `limit` or `start`
# (defaultQueryLimit, defaultTraceQueryLookbackDuration in its query parser); API v3's
# `query.searchDepth` defaults to the same 100.
DEFAULT_LIMIT = 100
DEFAULT_LOOKBACK_NS = 2 * 24 * HOUR_NS
# /api/dependencies without `lookback` (defaultDependencyLookbackDuration)
DEPENDENCIES_LOOKBACK_NS = 24 * HOUR_NS
MS = 1_000_000  # nanoseconds per millisecond
MAX_LIMIT = 1500    # the Jaeger UI's largest choice; larger limits are capped to it
MAX_TAGS = 32


_TRACE_ID_RE = re.compile(r"^[0-9a-fA-F]{1,32}$")
_MICROS_RE = re.compile(r"^\d{1,19}$")
_LIMIT_RE = re.compile(r"^\d+$")
_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNITS_NS = {"ns": 1, "us": US, "µs": US, "μs": US, "ms": 1_000_000, "s": NS, "m": 60 * NS,
                "h": HOUR_NS}
_DAYS_RE = re.compile(r"^(\d+(?:\.\d+)?)(d|w)$")


def parse_trace_id(text: str, parameter: str = "traceID") -> str:
    """Up to 32 hex digits, any case (Jaeger's 64-bit ids are left-padded) -> 32 lowercase."""
    value = text.strip()
    if not _TRACE_ID_RE.match(value):
        raise JaegerError(400, f"{parameter}: expected a trace id of 1 to 32 hex digits, got {text!r}")
    trace_id = value.lower().rjust(32, "0")
    if trace_id == "0" * 32:
        raise JaegerError(400, f"{parameter}: the all-zero trace id is invalid")
    return trace_id


def parse_go_duration(text: str, parameter: str) -> int:
    """A Go duration (`500us`, `100ms`, `1.5s`, `2m`, `1h30m`; `0`) -> whole nanoseconds."""
    value = text.strip()
    if value == "0":
        return 0
    total = Decimal(0)
    pos = 0
    while pos < len(value):
        m = _GO_DURATION_PART.match(value, pos)
        if not m:
            break
        try:
            total += Decimal(m[1]) * _GO_UNITS_NS[m[2]]
        except ArithmeticError:  # InvalidOperation, or Overflow past Decimal's exponent range
            break
        pos = m.end()
    if pos == 0 or pos != len(value):
        raise JaegerError(400, f"{parameter}: expected a duration such as 500us, 100ms, 1.5s, 2m or 1h, "
                               f"got {text!r}")
    if total > MAX_NS:  # compared before int(): a 400-digit Decimal makes a 400-digit int
        raise JaegerError(400, f"{parameter}: {text!r} is too large")
    return int(total)


def parse_lookback(text: str) -> int | None:
    """The Jaeger UI's `lookback` (`1h`, `2d`, `1w`, any Go duration) -> ns; `custom` or empty
    -> None (start/end decide)."""
    value = text.strip()
    if value in ("", "custom"):
        return None
    m = _DAYS_RE.match(value)
    if m:
        try:
            days_ns = Decimal(m[1]) * (24 if m[2] == "d" else 168) * HOUR_NS
        except ArithmeticError:
            days_ns = Decimal(MAX_NS + 1)
        ns = int(min(days_ns, Decimal(MAX_NS + 1)))
    else:
        ns = parse_go_duration(value, "lookback")
    if ns <= 0 or ns > MAX_NS:
        raise JaegerError(400, f"lookback: must be a positive duration such as 1h or 2d, got {text!r}")
    return ns


def parse_micros(text: str, parameter: str) -> int:
    """Microseconds since the epoch (what the Jaeger UI and Grafana send) -> ns."""
    value = text.strip()
    if not _MICROS_RE.match(value) or int(value) * US > MAX_NS:
        raise JaegerError(400, f"{parameter}: expected microseconds since the epoch (e.g. "
                               f"{time.time_ns() // US}), got {text!r}")
    return int(value) * US


def parse_millis(text: str, parameter: str) -> int:
    """Milliseconds (`endTs` since the epoch, `lookback` a duration: /api/dependencies) -> ns."""
    value = text.strip()
    if not _MICROS_RE.match(value) or int(value) * MS > MAX_NS:
        raise JaegerError(400, f"{parameter}: expected a whole number of milliseconds (e.g. "
                               f"{time.time_ns() // MS}), got {text!r}")
    return int(value) * MS


def parse_limit(text: str) -> int:
    """Jaeger's `limit`: 0 or empty = the default, above MAX_LIMIT = MAX_LIMIT."""
    value = text.strip()
    if not value:
        return DEFAULT_LIMIT
    if not _LIMIT_RE.match(value):
        raise JaegerError(400, f"limit: expected a whole number of traces (0 = default {DEFAULT_LIMIT}), "
                               f"got {text!r}")
    digits = value.lstrip("0")
    if len(digits) > len(str(MAX_LIMIT)):  # int() refuses over 4300 digits (a 500); any such is > MAX_LIMIT
        return MAX_LIMIT
    n = int(digits or "0")
    return DEFAULT_LIMIT if n == 0 else min(n, MAX_LIMIT)


def _json_tag_value(key: str, value: Any) -> str:
    """A JSON value -> the string the span's tag would show (attributes are stored as strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    raise JaegerError(400, f"tags: the value of {key!r} must be a string, number or boolean")


_LOGFMT_PAIR = re.compile(r'\s*([^\s="]+)=("(?:[^"\\]|\\.)*"|[^\s"]*)')


def parse_logfmt(text: str) -> list[tuple[str, str]]:
    """`k=v k2="v 2"` -> pairs (double-quoted values take JSON-style escapes)."""
    pairs = []
    pos = 0
    while pos < len(text):
        if not text[pos:].strip():
            break
        m = _LOGFMT_PAIR.match(text, pos)
        if not m or (m.end() < len(text) and not text[m.end()].isspace()):
            raise JaegerError(400, "tags: expected a JSON object ({\"key\": \"value\"}) or logfmt "
                                   f"(key=value key2=\"value 2\"), got {text!r}")
        key, raw = m[1], m[2]
        if raw.startswith('"'):
            try:
                raw = json.loads(raw)
            except ValueError:
                raise JaegerError(400, f"tags: bad quoted value for {key!r} in {text!r}") from None
        pairs.append((key, raw))
        pos = m.end()
    return pairs


def parse_tags(tags: str | None, tag: Sequence[str]) -> list[tuple[str, str]]:
    """`tags` (a JSON object, as the Jaeger UI and Grafana send, or logfmt) and Jaeger's
    repeatable `tag=key:value` -> (key, value) pairs, all of which must hold on one span."""
    pairs: list[tuple[str, str]] = []
    text = (tags or "").strip()
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except ValueError as exc:
            raise JaegerError(400, f"tags: not a JSON object ({exc}): {text!r}") from None
        if not isinstance(obj, dict):
            raise JaegerError(400, f"tags: expected a JSON object of key -> value, got {text!r}")
        pairs += [(str(k), _json_tag_value(str(k), v)) for k, v in obj.items()]
    elif text:
        pairs += parse_logfmt(text)
    for item in tag:
        key, sep, value = item.partition(":")
        if not sep or not key.strip():
            raise JaegerError(400, f"tag: expected key:value, got {item!r}")
        pairs.append((key.strip(), value))
    if any(not k for k, _ in pairs):
        raise JaegerError(400, "tags: a tag key is empty")
    if len(pairs) > MAX_TAGS:
        raise JaegerError(400, f"tags: at most {MAX_TAGS} tags")
    return pairs
