from __future__ import annotations

from pydantic import model_validator

from tracehouse.core.component import ComponentConfig
from tracehouse.core.config import Duration


class MemoryLimiterConfig(ComponentConfig):
    # Admission limits on data accepted but not yet handed on (the memory that back-
    # pressure can actually control). A request over the limit is refused, retryably.
    max_in_flight_spans: int = 200_000
    max_in_flight_mib: float = 256.0
    # Safety net, as in the Collector: refuse while the process RSS is above
    # limit_mib - spike_limit_mib, polled every check_interval. 0 disables it.
    limit_mib: float = 0.0
    spike_limit_mib: float = 0.0
    check_interval: Duration = 1.0
    # The Retry-After hint sent with a refusal.
    retry_after: Duration = 1.0

    @model_validator(mode="after")
    def _check(self) -> MemoryLimiterConfig:
        if self.max_in_flight_spans < 1:
            raise ValueError("max_in_flight_spans must be at least 1")
        if self.max_in_flight_mib <= 0:
            raise ValueError("max_in_flight_mib must be positive")
        if self.limit_mib and self.spike_limit_mib >= self.limit_mib:
            raise ValueError("spike_limit_mib must be below limit_mib")
        if self.limit_mib and self.check_interval <= 0:
            raise ValueError("check_interval must be positive when limit_mib is set")
        return self
