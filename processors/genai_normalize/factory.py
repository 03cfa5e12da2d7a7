from __future__ import annotations

from tracehouse.core.component import Component, Kind, Settings, SimpleFactory, TracesConsumer
from tracehouse.processors.genai_normalize.config import GenAINormalizeConfig
from tracehouse.processors.genai_normalize.processor import NormalizeProcessor


def _create(settings: Settings, config: GenAINormalizeConfig, next_consumer: TracesConsumer | None) -> Component:
    assert next_consumer is not None
    return NormalizeProcessor(settings, config, next_consumer)


factory: SimpleFactory[GenAINormalizeConfig] = SimpleFactory("genai_normalize", Kind.PROCESSOR, GenAINormalizeConfig,
                                                              _create, runs_in_workers=True)
