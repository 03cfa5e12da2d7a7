from __future__ import annotations

from tracehouse.core.component import ALL_SIGNALS, Component, Consumer, Kind, Settings, SimpleFactory
from tracehouse.processors.batch.config import BatchConfig
from tracehouse.processors.batch.processor import BatchProcessor


def _create(settings: Settings, config: BatchConfig, next_consumer: Consumer | None) -> Component:
    assert next_consumer is not None
    return BatchProcessor(settings, config, next_consumer)


factory: SimpleFactory[BatchConfig] = SimpleFactory("batch", Kind.PROCESSOR, BatchConfig, _create, ALL_SIGNALS)
