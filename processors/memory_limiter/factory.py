from __future__ import annotations

from tracehouse.core.component import ALL_SIGNALS, Component, Consumer, Kind, Settings, SimpleFactory
from tracehouse.processors.memory_limiter.config import MemoryLimiterConfig
from tracehouse.processors.memory_limiter.processor import MemoryLimiterProcessor


def _create(settings: Settings, config: MemoryLimiterConfig, next_consumer: Consumer | None) -> Component:
    assert next_consumer is not None
    return MemoryLimiterProcessor(settings, config, next_consumer)


factory: SimpleFactory[MemoryLimiterConfig] = SimpleFactory("memory_limiter", Kind.PROCESSOR, MemoryLimiterConfig, _create, ALL_SIGNALS)
