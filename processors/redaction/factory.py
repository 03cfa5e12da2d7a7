from __future__ import annotations

from tracehouse.core.component import Component, Kind, Settings, SimpleFactory, TracesConsumer
from tracehouse.processors.redaction.config import RedactionConfig
from tracehouse.processors.redaction.processor import RedactionProcessor


def _create(settings: Settings, config: RedactionConfig, next_consumer: TracesConsumer | None) -> Component:
    assert next_consumer is not None
    return RedactionProcessor(settings, config, next_consumer)


factory: SimpleFactory[RedactionConfig] = SimpleFactory("redaction", Kind.PROCESSOR, RedactionConfig, _create)
