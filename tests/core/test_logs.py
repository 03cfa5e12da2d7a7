"""Log lines that repeat during an outage are rate-limited, not lost: one throttle behind
the structlog call sites and the stdlib filter for library loggers."""

from __future__ import annotations

import logging

from tracehouse.core.logs import LogThrottle, RateLimited, RepeatFilter


def test_a_repeating_library_error_passes_once_per_interval_then_says_how_many_were_held_back() -> None:
    now = [0.0]
    repeat = RepeatFilter(interval_s=30, clock=lambda: now[0])

    def record(msg: str, *args: object) -> logging.LogRecord:
        return logging.LogRecord("aiokafka", logging.ERROR, __file__, 1, msg, args, None)

    first = record("Unable connect to node with id %s: %s", 1, "refused")
    assert repeat.filter(first)
    held = [repeat.filter(record("Unable connect to node with id %s: %s", 1, "refused")) for _ in range(50)]
    now[0] = 10
    held.append(repeat.filter(record("Unable connect to node with id %s: %s", 1, "refused")))
    assert not any(held)
    assert repeat.filter(record("another message"))  # other messages are not held back

    now[0] = 31
    later = record("Unable connect to node with id %s: %s", 1, "refused")
    assert repeat.filter(later)
    assert later.getMessage() == "Unable connect to node with id 1: refused (repeated 51 more times in the last 31s)"


def test_one_throttle_per_key_passes_once_per_interval_and_counts_what_it_held_back() -> None:
    now = [0.0]
    throttle = LogThrottle(30, clock=lambda: now[0])
    assert throttle.since_last("connect") is None
    assert throttle.allow("connect") == 0  # the first line passes, nothing held back
    assert [throttle.allow("connect") for _ in range(3)] == [None] * 3
    assert throttle.allow("retry") == 0  # keys are throttled apart
    now[0] = 29.9
    assert throttle.allow("connect") is None
    now[0] = 30
    assert throttle.since_last("connect") == 30
    assert throttle.allow("connect") == 4
    assert throttle.allow("connect") is None
    now[0] = 60
    assert throttle.allow("connect") == 1
    now[0] = 90
    assert throttle.allow("connect") == 0  # a quiet interval: nothing was held back


def test_the_throttle_forgets_its_keys_rather_than_grow_without_bound() -> None:
    throttle = LogThrottle(30, clock=lambda: 0.0, max_keys=2)
    for key in ("a", "b", "c"):
        assert throttle.allow(key) == 0
    assert throttle.allow("d") == 0  # over max_keys: forgotten, then "d" remembered
    assert throttle.allow("a") == 0  # a's window was forgotten with it
    assert throttle.allow("d") is None


def test_a_rate_limited_structlog_call_says_how_many_were_suppressed_only_when_some_were() -> None:
    now = [0.0]
    limited = RateLimited(10, clock=lambda: now[0])
    lines: list[tuple[str, dict[str, object]]] = []

    def emit(event: str, **fields: object) -> None:
        lines.append((event, fields))

    limited(emit, "offset commit failed; retrying", partition=0)
    limited(emit, "pipeline refused a batch; retrying the same batch", token="t")  # one window for all its events
    limited(emit, "offset commit failed; retrying", partition=1)
    now[0] = 10
    limited(emit, "offset commit failed; retrying", partition=2)
    now[0] = 25
    limited(emit, "offset commit failed; retrying", partition=3)
    assert lines == [
        ("offset commit failed; retrying", {"partition": 0}),
        ("offset commit failed; retrying", {"partition": 2, "suppressed_since_last": 2}),
        ("offset commit failed; retrying", {"partition": 3}),
    ]


_JSON_LOGGING_SCRIPT = r"""
import asyncio, logging, structlog
from tracehouse.core.logs import configure_logging

configure_logging("info", "json")
log = structlog.get_logger("tracehouse.test")
try:
    raise ValueError("first line\nsecond line")
except ValueError:
    log.exception("structlog call with a traceback", field="x\ny")
try:
    raise RuntimeError("from a library")
except RuntimeError:
    # What clickhouse-connect does on a value it cannot serialize, uvicorn on an app error.
    logging.getLogger("clickhouse_connect.driver.transform").exception("Error serializing column `Timestamp`")
logging.getLogger("uvicorn.error").warning("a message\nover two lines")

async def main():
    async def boom():
        raise KeyError("never retrieved")
    task = asyncio.get_running_loop().create_task(boom())
    await asyncio.sleep(0.01)
    del task  # asyncio logs "Task exception was never retrieved" with its traceback

asyncio.run(main())
import gc; gc.collect()
"""


def test_json_logs_are_one_line_of_json_per_record_tracebacks_included() -> None:
    import json
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TRACEHOUSE_LOG_FORMAT"}
    done = subprocess.run([sys.executable, "-c", _JSON_LOGGING_SCRIPT], capture_output=True, text=True, env=env,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    records = [json.loads(line) for line in lines]  # every line is a whole JSON document
    assert len(records) == 4, done.stderr
    own, library, multiline, never_retrieved = records
    assert own["event"] == "structlog call with a traceback" and own["field"] == "x\ny"
    assert "ValueError: first line\nsecond line" in own["exception"]
    assert library["event"] == "Error serializing column `Timestamp`"
    assert library["logger"] == "clickhouse_connect.driver.transform" and library["level"] == "error"
    assert "Traceback (most recent call last)" in library["exception"] and "RuntimeError" in library["exception"]
    assert multiline["event"] == "a message\nover two lines" and multiline["level"] == "warning"
    assert "never retrieved" in never_retrieved["event"] + never_retrieved.get("exception", "")
