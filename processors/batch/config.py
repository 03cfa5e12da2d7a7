from __future__ import annotations

from pydantic import model_validator

from tracehouse.core.component import ComponentConfig
from tracehouse.core.config import Duration


class BatchConfig(ComponentConfig):
    # Send once this many spans are waiting (ClickHouse wants >= 1000 rows per insert).
    send_batch_size: int = 8192
    # Upper bound on spans per batch; 0 = no bound. A single request larger than this
    # is still sent, alone.
    send_batch_max_size: int = 0
    # Send a request at once when no export is in flight, and what waited as soon as the
    # export in flight ends: batches grow only while an export is in flight.
    group_commit: bool = True
    # Without group_commit: send whatever is waiting after this long, however little.
    timeout: Duration = 0.2
    # Batches exported concurrently.
    max_concurrent_exports: int = 4

    @model_validator(mode="after")
    def _check(self) -> BatchConfig:
        if self.send_batch_size < 1:
            raise ValueError("send_batch_size must be at least 1")
        if self.send_batch_max_size and self.send_batch_max_size < self.send_batch_size:
            raise ValueError("send_batch_max_size must be 0 or at least send_batch_size")
        if self.max_concurrent_exports < 1:
            raise ValueError("max_concurrent_exports must be at least 1")
        return self
