from __future__ import annotations

from tracehouse.core.component import Component, Kind, Settings, SimpleFactory, TracesConsumer
from tracehouse.processors.genai_cost.config import GenAICostConfig
from tracehouse.processors.genai_cost.processor import CostProcessor


def _create(settings: Settings, config: GenAICostConfig, next_consumer: TracesConsumer | None) -> Component:
    assert next_consumer is not None
    return CostProcessor(settings, config, next_consumer)


factory: SimpleFactory[GenAICostConfig] = SimpleFactory("genai_cost", Kind.PROCESSOR, GenAICostConfig, _create,
                                                        runs_in_workers=True)
