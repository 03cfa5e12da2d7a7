"""Exporter-side retry with exponential backoff and jitter (the Collector's retry_on_failure).

Receivers never retry: only exporters do, and only within the caller's deadline, so a
client is answered before its own timeout and can retry elsewhere.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

from tracehouse.core.component import ComponentConfig
from tracehouse.core.config import Duration
from tracehouse.core.errors import PermanentError, RetryableError

T = TypeVar("T")


class RetryConfig(ComponentConfig):
    enabled: bool = True
    initial_interval: Duration = 1.0
    randomization_factor: float = 0.5
    multiplier: float = 1.5
    max_interval: Duration = 30.0
    max_elapsed_time: Duration = 120.0


# A retry loop that never ends never sleeps less than this, however the config is set.
_FOREVER_MIN_DELAY_S = 0.05


def backoff_delays(cfg: RetryConfig, *, forever: bool = False, rng: random.Random | None = None) -> Iterator[float]:
    """The sleep before each retry: the interval grows by `multiplier` up to max_interval,
    each delay jittered by +-randomization_factor and capped at max_interval.

    Bounded (the default), it ends once max_elapsed_time is spent. `forever` ignores
    max_elapsed_time and never ends (work already acknowledged, a batch never given up);
    its delays stay at max_interval once they get there, and never fall below 50 ms.

    `cfg.enabled` is the caller's business. Lazy: an export that succeeds at once
    computes none of it."""
    rng = rng or random.Random()
    interval, total, attempts = cfg.initial_interval, 0.0, 0
    while forever or (total < cfg.max_elapsed_time and attempts < 1000):
        jitter = interval * cfg.randomization_factor
        delay = min(cfg.max_interval, max(0.0, interval + rng.uniform(-jitter, jitter)))
        if forever:
            delay = max(_FOREVER_MIN_DELAY_S, delay)
        yield delay
        total += delay
        attempts += 1
        interval = min(cfg.max_interval, interval * cfg.multiplier)


async def call_with_retry(
    attempt: Callable[[], Awaitable[T]],
    cfg: RetryConfig,
    *,
    deadline: float | None = None,
    on_retry: Callable[[Exception, float], None] | None = None,
) -> T:
    """Run `attempt` until it succeeds, fails permanently, or time runs out.

    Anything but a PermanentError is retried. When retries are exhausted the last error
    is raised as a RetryableError, so the client is told to come back later.
    """
    delays = backoff_delays(cfg) if cfg.enabled else iter(())
    while True:
        try:
            return await attempt()
        except PermanentError:
            raise
        except Exception as exc:
            delay = next(delays, None)
            if delay is None:
                raise _exhausted(exc) from exc
            if isinstance(exc, RetryableError) and exc.retry_after:
                delay = max(delay, exc.retry_after)
            if deadline is not None and time.monotonic() + delay >= deadline:
                raise _exhausted(exc) from exc
            if on_retry:
                on_retry(exc, delay)
            await asyncio.sleep(delay)


def _exhausted(exc: Exception) -> RetryableError:
    if isinstance(exc, RetryableError):
        return exc
    return RetryableError(f"export failed, retries exhausted: {exc}", retry_after=5.0)
