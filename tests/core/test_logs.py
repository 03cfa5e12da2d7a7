"""Library log lines that repeat during an outage are rate-limited, not lost."""

from __future__ import annotations

import logging

from tracehouse.core.logs import RepeatFilter


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
