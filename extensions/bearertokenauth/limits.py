"""Per-tenant rate limits: one token bucket per tenant and measure (spans, bytes).

A bucket holds one second of its rate. A request is admitted while the bucket is not in
debt and then takes its whole cost, so a request larger than a second's worth still
passes once, and the tenant waits the debt off before the next. A refusal names the
limit and says when to retry; other tenants' buckets are untouched.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from tracehouse.core.errors import RetryableError
from tracehouse.extensions.bearertokenauth.keys import TenantLimits


@dataclass(slots=True)
class _Bucket:
    rate: float
    tokens: float
    at: float

    def refill(self, now: float) -> None:
        self.tokens = min(self.rate, self.tokens + (now - self.at) * self.rate)
        self.at = now


class TenantLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._limits: dict[str, TenantLimits] = {}

    def configure(self, limits: dict[str, TenantLimits]) -> None:
        """New limits (a reloaded key file); buckets of changed rates start full."""
        self._limits = dict(limits)
        self._buckets = {k: b for k, b in self._buckets.items()
                         if getattr(self._limits.get(k[0]), k[1], None) == b.rate}

    def admit(self, tenant: str, spans: int, nbytes: int) -> None:
        limits = self._limits.get(tenant)
        if limits is None:
            return
        now = self._clock()
        checks = [(measure, rate, cost) for measure, rate, cost in
                  (("spans_per_second", limits.spans_per_second, spans),
                   ("bytes_per_second", limits.bytes_per_second, nbytes)) if rate]
        buckets = [(measure, rate, cost, self._bucket(tenant, measure, rate, now)) for measure, rate, cost in checks]
        for measure, rate, _, bucket in buckets:
            if bucket.tokens <= 0:
                raise RetryableError(
                    f"tenant {tenant!r} is over its limit of {rate:g} {measure.replace('_per_second', '')}/s; "
                    "retry later", retry_after=max(0.1, -bucket.tokens / rate), overload=True)
        for _, _, cost, bucket in buckets:
            bucket.tokens -= cost

    def _bucket(self, tenant: str, measure: str, rate: float, now: float) -> _Bucket:
        bucket = self._buckets.get((tenant, measure))
        if bucket is None:
            bucket = self._buckets[(tenant, measure)] = _Bucket(rate, rate, now)
        bucket.refill(now)
        return bucket
