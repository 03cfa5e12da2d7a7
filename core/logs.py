"""structlog set-up: readable on a terminal, JSON lines in containers."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Hashable
from typing import Any, Literal

import structlog

Encoding = Literal["auto", "console", "json"]

# Libraries whose connection errors repeat many times a second while a peer is down
# (aiokafka logs "Unable connect to node" every ~100 ms per broker during an outage).
RATE_LIMITED_LOGGERS = ("aiokafka", "kafka")


class LogThrottle:
    """At most one log line per key and `interval_s`; counts the lines it held back.

    The one rate limit behind every repeating log line: structlog call sites use it
    directly or through `RateLimited`, stdlib loggers through `RepeatFilter`."""

    def __init__(self, interval_s: float, *, clock: Callable[[], float] = time.monotonic, max_keys: int = 1024):
        self._interval = interval_s
        self._clock = clock
        self._max_keys = max_keys
        self._last: dict[Hashable, tuple[float, int]] = {}  # key -> (when it last passed, held back since)

    def allow(self, key: Hashable = None) -> int | None:
        """None to stay quiet; else the line passes, and this is how many were held back since
        the last one of its key."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last[0] < self._interval:
            self._last[key] = (last[0], last[1] + 1)
            return None
        if len(self._last) > self._max_keys:  # keys from messages are unbounded in principle
            self._last.clear()
        self._last[key] = (now, 0)
        return last[1] if last is not None else 0

    def since_last(self, key: Hashable = None) -> float | None:
        """Seconds since a line of this key last passed; None if none has."""
        last = self._last.get(key)
        return None if last is None else self._clock() - last[0]


class RateLimited:
    """A structlog call let through at most once per `interval_s`, with
    `suppressed_since_last=N` when lines were held back: `limited(log.warning, "event", k=v)`."""

    def __init__(self, interval_s: float = 60.0, *, clock: Callable[[], float] = time.monotonic):
        self._throttle = LogThrottle(interval_s, clock=clock)

    def __call__(self, emit: Callable[..., Any], event: str, **fields: Any) -> None:
        held = self._throttle.allow()
        if held is None:
            return
        if held:
            fields["suppressed_since_last"] = held
        emit(event, **fields)


class RepeatFilter(logging.Filter):
    """Passes a (logger, message template) once per `interval_s`, then how many were held back.

    The outage stays visible in the log without one line per reconnect attempt."""

    def __init__(self, interval_s: float = 30.0, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self._throttle = LogThrottle(interval_s, clock=clock)

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.msg)
        since = self._throttle.since_last(key)
        held = self._throttle.allow(key)
        if held is None:
            return False
        if held:
            record.msg = f"{record.msg} (repeated {held} more times in the last {since or 0.0:.0f}s)"
        return True


_HANDLER_MARK = "_tracehouse_handler"


def configure_logging(level: str = "info", encoding: Encoding = "auto") -> Literal["console", "json"]:
    """structlog and the stdlib loggers of libraries (uvicorn, clickhouse-connect, aiokafka,
    asyncio) both through one renderer: in JSON mode every record is exactly one line of JSON,
    an exception's traceback included (as the `exception` string), so a log shipper never
    sees a traceback's lines as records of their own. Returns the encoding chosen."""
    if encoding == "auto":
        encoding = "console" if sys.stderr.isatty() else "json"
    if os.environ.get("TRACEHOUSE_LOG_FORMAT") in ("console", "json"):
        encoding = os.environ["TRACEHOUSE_LOG_FORMAT"]  # type: ignore[assignment]
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        if encoding == "console"
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            # The traceback becomes one string field; the renderer escapes its newlines.
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Libraries that use stdlib logging go to the same stream, rendered the same way.
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
        ],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(max(numeric, logging.WARNING))
    for name in RATE_LIMITED_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RepeatFilter) for f in logger.filters):
            logger.addFilter(RepeatFilter())
    return encoding
