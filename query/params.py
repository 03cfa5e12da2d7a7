"""Parsing the query API's parameters: times, search cursors, trace ids, metric steps and
`group_by` (the trace search's own parameters are in query/search.py). A bad value raises
`ApiError(400, ..., parameter)` naming it."""

from __future__ import annotations

import base64
import binascii
import calendar
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from tracehouse.query.errors import ApiError
from tracehouse.query.store import GROUP_DIMENSIONS, MAX_DATETIME_S, ORDERS, SORTS

NS = 1_000_000_000  # nanoseconds per second
# DateTime64(9) ends at 2262-04-11; nanoseconds since the epoch must fit an Int64.
MAX_NS = 2**63 - 1
MINUTE = 60  # seconds: the usage rollup's resolution
# GenAI metrics: the default number of points, the most a response may have.
DEFAULT_POINTS = 120
MAX_POINTS = 10_000


# ------------------------------------------------------------------------------ time


_RFC3339_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$")
_NUMBER_RE = re.compile(r"^\d+(?:\.\d+)?$")


def parse_time_ns(text: str, parameter: str = "time") -> int:
    """RFC 3339 (nanoseconds kept) or unix seconds (a decimal number) -> ns since the epoch."""
    value = text.strip()
    if _NUMBER_RE.match(value):
        try:
            seconds_dec = Decimal(value) * NS
            # Compared before int(): a 400-digit Decimal makes a 400-digit int.
            ns = int(seconds_dec) if seconds_dec <= MAX_NS else MAX_NS + 1
        except ArithmeticError:  # InvalidOperation, or Overflow past Decimal's exponent range
            ns = -1
    else:
        m = _RFC3339_RE.match(value)
        if not m:
            raise ApiError(400, f"{parameter}: expected an RFC 3339 timestamp (2026-01-02T15:04:05Z) "
                                f"or unix seconds, got {text!r}", parameter)
        year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
        try:
            datetime(year, month, day, hour, minute, second)
        except ValueError as exc:
            raise ApiError(400, f"{parameter}: invalid date or time in {text!r}: {exc}", parameter) from None
        seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
        zone = m[8]
        if zone not in ("Z", "z"):
            sign = 1 if zone[0] == "+" else -1
            seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
        fraction = (m[7] or "")[:9].ljust(9, "0")
        ns = seconds * NS + int(fraction)
    if not 0 <= ns <= MAX_NS:
        raise ApiError(400, f"{parameter}: {text!r} is outside 1970-01-01 .. 2262-04-11", parameter)
    return ns


# ------------------------------------------------------------------------------ traces


_TRACE_ID_RE = re.compile(r"^[0-9a-fA-F]{32}$")


def parse_range(start: str | None, end: str | None, lookback_ns: int,
                fallback: tuple[int | None, int | None] = (None, None)) -> tuple[int, int]:
    """[start, end) in ns from the `start`/`end` parameters. A missing one comes from
    `fallback` (the range a cursor carries), else `end` is now and `start` is `end` minus
    the lookback. 400 when start is not before end."""
    end_ns = parse_time_ns(end, "end") if end else fallback[1] if fallback[1] is not None else time.time_ns()
    if start:
        start_ns = parse_time_ns(start, "start")
    elif fallback[0] is not None:
        start_ns = fallback[0]
    else:
        start_ns = max(0, end_ns - lookback_ns)
    if start_ns >= end_ns:
        raise ApiError(400, "start: must be before end", "start")
    return start_ns, end_ns


def parse_trace_id(text: str) -> str:
    """32 hex characters, any case, not all zero -> 32 lowercase."""
    if not _TRACE_ID_RE.match(text):
        raise ApiError(400, f"trace_id: expected 32 hex characters, got {text!r}", "trace_id")
    trace_id = text.lower()
    if trace_id == "0" * 32:
        raise ApiError(400, "trace_id: the all-zero trace id is invalid", "trace_id")
    return trace_id


@dataclass(frozen=True, slots=True)
class Cursor:
    """A decoded search cursor: the order it continues, the last row's (sort key, trace id)
    and the searched range."""

    sort: str
    order: str
    key: int
    trace_id: str
    start_ns: int
    end_ns: int


def encode_cursor(cursor: Cursor) -> str:
    """Opaque keyset position: the sort and its direction, the last row's (sort key, trace id)
    and the searched range, so later pages keep the same order and range even when `end`
    defaulted to "now"."""
    payload = {"v": 3, "o": cursor.sort, "d": cursor.order, "k": cursor.key, "id": cursor.trace_id,
               "s": cursor.start_ns, "e": cursor.end_ns}
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> Cursor:
    """Version 1 cursors are newest-first, version 2 ones largest-first by their sort."""
    bad = ApiError(400, "cursor: not a cursor this API returned (pass `next_cursor` unchanged)", "cursor")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError):
        raise bad from None
    if not isinstance(data, dict) or data.get("v") not in (1, 2, 3):
        raise bad
    version = data["v"]
    sort = data.get("o", "time") if version >= 2 else "time"
    order = data.get("d") if version >= 3 else "desc"
    key, trace_id, s, e = data.get("k" if version >= 2 else "t"), data.get("id"), data.get("s"), data.get("e")
    if sort not in SORTS or order not in ORDERS:
        raise bad
    if not all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= MAX_NS for x in (s, e)):
        raise bad
    if not isinstance(key, int) or isinstance(key, bool) or not -1 <= key <= MAX_NS:
        raise bad
    if not isinstance(trace_id, str) or not _TRACE_ID_RE.match(trace_id):
        raise bad
    assert isinstance(s, int) and isinstance(e, int) and isinstance(sort, str) and isinstance(order, str)
    return Cursor(sort, order, key, trace_id.lower(), s, e)


# ------------------------------------------------------------------------------ GenAI metrics


_STEP_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d)?$")
_STEP_UNITS = {None: 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_step(text: str) -> int:
    """`60s`, `5m`, `1h`, `1d`, `1.5h` or plain seconds -> whole seconds, a multiple of 60."""
    m = _STEP_RE.match(text.strip())
    if not m:
        raise ApiError(400, f"step: expected a duration such as 60s, 5m or 1h (or seconds), got {text!r}", "step")
    try:
        seconds = Decimal(m[1]) * _STEP_UNITS[m[2]]
    except ArithmeticError:  # Overflow past Decimal's exponent range
        seconds = Decimal(MAX_DATETIME_S + 1)
    # The size first: `%` on a number wider than Decimal's precision raises (a 500).
    if seconds > MAX_DATETIME_S:
        raise ApiError(400, f"step: {text!r} is too large", "step")
    if seconds <= 0 or seconds != seconds.to_integral_value() or seconds % MINUTE:
        raise ApiError(400, f"step: must be a positive whole number of minutes (the rollup's resolution), "
                            f"got {text!r}", "step")
    return int(seconds)


def default_step(range_ns: int) -> int:
    """The smallest whole number of minutes giving at most DEFAULT_POINTS buckets."""
    minutes = -(-range_ns // (DEFAULT_POINTS * MINUTE * NS))
    return max(1, minutes) * MINUTE


def parse_group_by(values: Sequence[str]) -> list[str]:
    """Comma-separated or repeated dimensions -> the distinct ones, in the order given."""
    out: list[str] = []
    for value in values:
        for item in value.split(","):
            name = item.strip()
            if not name:
                continue
            if name not in GROUP_DIMENSIONS:
                raise ApiError(400, f"group_by: unknown dimension {name!r}; use {', '.join(GROUP_DIMENSIONS)}",
                               "group_by")
            if name not in out:
                out.append(name)
    return out
