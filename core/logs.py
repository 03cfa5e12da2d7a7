"""structlog set-up: readable on a terminal, JSON lines in containers."""

from __future__ import annotations

import logging
import os
import sys
from typing import Literal

import structlog

Encoding = Literal["auto", "console", "json"]


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
