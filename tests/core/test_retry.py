"""The one backoff schedule: bounded for call_with_retry, endless for work never given up."""

from __future__ import annotations

import itertools
import random

import pytest

from tracehouse.core.errors import RetryableError
from tracehouse.core.retry import RetryConfig, backoff_delays, call_with_retry

STEADY = RetryConfig(initial_interval=1.0, multiplier=2.0, max_interval=5.0, max_elapsed_time=10.0,
                     randomization_factor=0.0)


def test_the_bounded_schedule_grows_to_max_interval_and_ends_once_max_elapsed_time_is_spent() -> None:
    assert list(backoff_delays(STEADY)) == [1.0, 2.0, 4.0, 5.0]


def test_forever_ignores_max_elapsed_time_and_stays_at_max_interval() -> None:
    assert list(itertools.islice(backoff_delays(STEADY, forever=True), 8)) == [1.0, 2.0, 4.0] + [5.0] * 5


def test_forever_never_spins() -> None:
    zero = RetryConfig(initial_interval=0.0, max_elapsed_time=0.0)
    assert list(backoff_delays(zero)) == []
    assert list(itertools.islice(backoff_delays(zero, forever=True), 3)) == [0.05] * 3


@pytest.mark.parametrize("forever", [False, True])
def test_one_jitter_rule_within_the_factor_and_never_over_max_interval(forever: bool) -> None:
    cfg = RetryConfig(initial_interval=1.0, multiplier=1.5, max_interval=3.0, randomization_factor=0.5)
    delays = list(itertools.islice(backoff_delays(cfg, forever=forever, rng=random.Random(7)), 20))
    interval = 1.0
    for delay in delays:
        assert interval * 0.5 <= delay <= min(3.0, interval * 1.5)
        interval = min(3.0, interval * 1.5)
    # The same seed, the same schedule, bounded or not.
    other = list(itertools.islice(backoff_delays(cfg, forever=not forever, rng=random.Random(7)), 20))
    assert other == delays


async def test_call_with_retry_retries_on_the_bounded_schedule_then_gives_up() -> None:
    cfg = RetryConfig(initial_interval=0.01, multiplier=1.0, max_interval=0.01, max_elapsed_time=0.03,
                      randomization_factor=0.0)
    calls: list[float] = []

    async def attempt() -> None:
        calls.append(0)
        raise RetryableError("down")

    with pytest.raises(RetryableError, match="down"):
        await call_with_retry(attempt, cfg, on_retry=lambda exc, delay: calls.append(delay))
    assert calls == [0, 0.01, 0, 0.01, 0, 0.01, 0]
