"""Running one query on the embedded engine, read-only and capped.

Each query gets its own chDB connection to the process's one engine (the exporter's and
the query API's data directory): settings are per connection, so a query's settings, its
database and readonly=1 never leak to another. The caps are set after the client's
settings and readonly=1 last, so nothing in the request can raise them or write. A held
anchor connection keeps the engine up between queries (chDB stops it when its last
connection closes).
"""

from __future__ import annotations

import contextlib

import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import chdb

from tracehouse.sinks.clickhouse.client import chdb_path

# Set by the engine after the client's settings, whatever the client asked.
_ENFORCED = frozenset({"readonly", "max_execution_time", "max_memory_usage", "max_result_bytes", "result_overflow_mode"})
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CODE = re.compile(r"Code: (\d+)\.")
_NAME = re.compile(r"\(([A-Z][A-Z0-9_]+)\)\s*$")


class EngineError(Exception):
    """ClickHouse's own exception, as text `Code: N. DB::Exception: ...`."""

    def __init__(self, message: str):
        text = message[message.find("Code: "):] if "Code: " in message else message
        super().__init__(text.strip())
        found = _CODE.search(text)
        self.code = int(found.group(1)) if found else 1002  # UNKNOWN_EXCEPTION
        name = _NAME.search(text)
        self.name = name.group(1) if name else ""


@dataclass(frozen=True, slots=True)
class Caps:
    max_execution_time_s: float
    max_memory_usage: int
    max_result_bytes: int


@dataclass(frozen=True, slots=True)
class Query:
    sql: str
    database: str
    default_format: str
    params: Mapping[str, str] = field(default_factory=dict)
    settings: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Result:
    body: bytes
    rows_read: int
    bytes_read: int
    elapsed_ns: int


@dataclass(frozen=True, slots=True)
class ServerInfo:
    version: str
    timezone: str


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _capped(settings: Mapping[str, str], name: str, cap: float) -> str:
    """A client may lower a cap, never raise or remove it (0 means none to ClickHouse)."""
    asked = settings.get(name)
    try:
        wanted = float(asked) if asked is not None else 0.0
    except ValueError:
        raise EngineError(f"Code: 27. DB::Exception: Cannot parse {asked!r} as the value of {name}. "
                          f"(CANNOT_PARSE_INPUT_ASSERTION_FAILED)") from None
    value = min(wanted, cap) if wanted > 0 else cap
    # Plain decimal text: ClickHouse does not read `1e+07` as a number of seconds.
    return f"{value:.3f}".rstrip("0").rstrip(".") if isinstance(cap, float) else str(int(value))


class Engine:
    def __init__(self, endpoint: str, caps: Caps):
        path = chdb_path(endpoint)
        with contextlib.suppress(OSError):  # opening it says what is wrong, query by query
            path.mkdir(parents=True, exist_ok=True)
        # The spelling clickhouse-connect uses: chDB compares engine paths literally.
        self._path = os.path.realpath(path)
        self._caps = caps
        self._anchor: Any = None

    def open(self) -> ServerInfo:
        self._anchor = chdb.connect(self._path)
        row = self._anchor.query("SELECT version(), timezone()", "TabSeparated").bytes().decode().split("\t")
        return ServerInfo(version=row[0].strip(), timezone=row[1].strip())

    def close(self) -> None:
        anchor, self._anchor = self._anchor, None
        if anchor is not None:
            anchor.close()

    def run(self, query: Query) -> Result:
        """Blocking: run in a worker thread."""
        if self._anchor is None:  # not opened at start: keep the engine up once it can be
            with contextlib.suppress(Exception):
                self.open()
        conn = chdb.connect(self._path)
        try:
            for name, value in query.settings.items():
                if not _SETTING_NAME.match(name):
                    raise EngineError(f"Code: 115. DB::Exception: Unknown setting {name!r}. (UNKNOWN_SETTING)")
                if name not in _ENFORCED:
                    self._set(conn, name, value)
            caps = self._caps
            self._set(conn, "max_execution_time", _capped(query.settings, "max_execution_time", caps.max_execution_time_s))
            self._set(conn, "max_memory_usage", _capped(query.settings, "max_memory_usage", caps.max_memory_usage))
            self._set(conn, "max_result_bytes", _capped(query.settings, "max_result_bytes", caps.max_result_bytes))
            self._set(conn, "result_overflow_mode", "throw")
            self._set(conn, "readonly", "1")  # last: nothing after it can change a setting
            self._exec(conn, f"USE `{query.database}`")
            started = time.monotonic_ns()
            result = self._exec(conn, query.sql, query.default_format, dict(query.params))
            elapsed = time.monotonic_ns() - started
            return Result(body=result.bytes() or b"", rows_read=int(result.rows_read()),
                          bytes_read=int(result.bytes_read()), elapsed_ns=elapsed)
        finally:
            conn.close()

    def _set(self, conn: Any, name: str, value: str) -> None:
        self._exec(conn, f"SET {name} = {_quote(value)}")

    @staticmethod
    def _exec(conn: Any, sql: str, fmt: str = "TabSeparated", params: dict[str, str] | None = None) -> Any:
        try:
            return conn.query(sql, fmt, params=params or {})
        except Exception as exc:  # chDB raises its engine's exceptions as ChdbError/RuntimeError
            raise EngineError(str(exc)) from None
