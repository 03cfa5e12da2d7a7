"""The exporter helper's keys, as the Collector's exporterhelper names them."""

from __future__ import annotations

from pydantic import Field, model_validator

from tracehouse.core.component import ComponentConfig
from tracehouse.core.config import PositiveDuration
from tracehouse.core.retry import RetryConfig


class SendingQueueConfig(ComponentConfig):
    enabled: bool = True
    # Capacity in spans: spans being sent (memory) or waiting on disk (storage).
    queue_size: int = Field(default=100_000, gt=0)
    # "" keeps the queue in memory: the client is answered once the destination
    # acknowledged. A directory makes it a write-ahead queue: the client is answered once
    # the batch is fsynced there, and the queue is drained to the destination after.
    storage: str = ""
    max_storage_mib: int = Field(default=1024, gt=0)

    @model_validator(mode="after")
    def _storage_needs_queue(self) -> SendingQueueConfig:
        if self.storage and not self.enabled:
            raise ValueError("storage needs the sending queue: set enabled: true or remove storage")
        return self


class ExporterHelperConfig(ComponentConfig):
    """Base of every exporter config: queue -> retry -> timeout -> send."""

    # Per attempt (bounded further by the client's deadline).
    timeout: PositiveDuration = 5.0
    retry_on_failure: RetryConfig = RetryConfig()
    sending_queue: SendingQueueConfig = SendingQueueConfig()
