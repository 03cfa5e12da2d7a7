"""ClickHouse errors: which are about the data (never retried), and what of them a client may see.

An insert fails for one of two reasons: the server or the link is in trouble (retry
later), or some value can never be stored (retrying the same rows is pointless, and
the batch they sit in must be split so the other clients' spans still go in). The
second kind is recognized by ClickHouse's error code, never by message text where a
code is known: clickhouse-connect carries it as `Error.code` (HTTP), chDB only in the
message ("Code: 53. DB::Exception: ..."). A value the client library cannot even
serialize (a number out of its column's range) is its `DataError`, raised before
anything is sent.

Messages for clients (OTLP refusals, query API errors) keep ClickHouse's code and
reason but never where the server is: clickhouse-connect names the server's URL in
transport errors ("HTTPConnectionPool(host='10.0.0.5', port=8123)") and ClickHouse
names peers in some messages. The full text goes to the service's log only.
"""

from __future__ import annotations

import re

from clickhouse_connect.driver.exceptions import DataError
from clickhouse_connect.driver.exceptions import Error as DriverError

# ClickHouse error codes that mean "this data will never insert" (after Vector's
# ClickhouseRetryLogic, plus out-of-range numbers): retrying the same rows cannot help.
DATA_ERROR_CODES = frozenset({
    6,    # CANNOT_PARSE_TEXT
    27,   # CANNOT_PARSE_INPUT_ASSERTION_FAILED
    38,   # CANNOT_PARSE_DATE
    41,   # CANNOT_PARSE_DATETIME
    53,   # TYPE_MISMATCH
    69,   # ARGUMENT_OUT_OF_BOUND
    70,   # CANNOT_CONVERT_TYPE
    72,   # CANNOT_PARSE_NUMBER
    117,  # INCORRECT_DATA
    130,  # CANNOT_READ_ARRAY_FROM_TEXT
    131,  # TOO_LARGE_STRING_SIZE
    190,  # SIZES_OF_ARRAYS_DONT_MATCH
    321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
    407,  # DECIMAL_OVERFLOW
})

_CODE_RE = re.compile(r"\bCode:\s*(\d+)")
_REASON_RE = re.compile(r"Code:\s*(\d+)\.\s*(?:DB::Exception:\s*)?(.*)")
_VERSION_RE = re.compile(r"\.?\s*\(version [^)]*\).*$")
# Where a server is: URLs, host=/port= pairs, ip:port and [ipv6]:port, hostname:port.
_WHERE_RES = (
    re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"]+", re.I),
    re.compile(r"\b(?:host|port)\s*=\s*'?[^\s,')]*'?", re.I),
    re.compile(r"\[[0-9a-f:.]+\](?::\d+)?", re.I),
    re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b"),
    re.compile(r"\b[a-z0-9][a-z0-9.-]*\.[a-z0-9-]+:\d{2,5}\b", re.I),
    re.compile(r"\blocalhost(?::\d+)?\b", re.I),
)


def error_code(exc: BaseException) -> int | None:
    """ClickHouse's error code of `exc`, if it carries one."""
    code = getattr(exc, "code", None) if isinstance(exc, DriverError) else None
    if isinstance(code, int):
        return code
    m = _CODE_RE.search(str(exc))
    return int(m[1]) if m else None


def is_data_error(exc: BaseException) -> bool:
    """True when the rows themselves can never be inserted."""
    if isinstance(exc, DataError):
        return True
    code = error_code(exc)
    return code is not None and code in DATA_ERROR_CODES


def hide_location(text: str) -> str:
    """`text` without URLs, addresses and host:port pairs."""
    for pattern in _WHERE_RES:
        text = pattern.sub("<server>", text)
    return text


def public_reason(exc: BaseException, *, limit: int = 300) -> str:
    """One line a client may see: ClickHouse's code and reason, nothing of where it runs."""
    text = str(exc).strip()
    m = _REASON_RE.search(text)
    if m:
        reason = _VERSION_RE.sub("", m[2].split("\n", 1)[0])
        message = f"ClickHouse error {m[1]}: {hide_location(reason)}"
    elif isinstance(exc, DataError):
        message = hide_location(text.splitlines()[0]) if text else "a value cannot be stored"
    else:
        message = f"ClickHouse is unavailable ({type(exc).__name__})"
    return message if len(message) <= limit else message[:limit - 3] + "..."
