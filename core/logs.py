"""structlog set-up: readable on a terminal, JSON lines in containers."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Literal

import structlog

Encoding = Literal["auto", "console", "json"]

# Libraries whose connection errors repeat many times a second while a peer is down
# (aiokafka logs "Unable connect to node" every ~100 ms per broker during an outage).
RATE_LIMITED_LOGGERS = ("aiokafka", "kafka")


class RepeatFilter(logging.Filter):
    """Passes a (logger, message template) once per `interval_s`, then how many were held back.

    The outage stays visible in the log without one line per reconnect attempt."""

    def __init__(self, interval_s: float = 30.0, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self._interval = interval_s
        self._clock = clock
        self._last: dict[tuple[str, object], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.msg)
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last[0] < self._interval:
            self._last[key] = (last[0], last[1] + 1)
            return False
        if last is not None and last[1]:
            record.msg = f"{record.msg} (repeated {last[1]} more times in the last {now - last[0]:.0f}s)"
        if len(self._last) > 1024:
            self._last.clear()
        self._last[key] = (now, 0)
        return True


def configure_logging(level: str = "info", encoding: Encoding = "auto") -> None:
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
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Libraries that use stdlib logging (uvicorn, clickhouse-connect) go to the same stream.
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    for name in RATE_LIMITED_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RepeatFilter) for f in logger.filters):
            logger.addFilter(RepeatFilter())
