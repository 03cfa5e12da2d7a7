from __future__ import annotations

from tracehouse.core.component import Component, Kind, Settings, SimpleFactory, TracesConsumer
from tracehouse.processors.genai_tokens.config import GenAITokensConfig
from tracehouse.processors.genai_tokens.processor import TokensProcessor


def _create(settings: Settings, config: GenAITokensConfig, next_consumer: TracesConsumer | None) -> Component:
    assert next_consumer is not None
    return TokensProcessor(settings, config, next_consumer)


factory: SimpleFactory[GenAITokensConfig] = SimpleFactory("genai_tokens", Kind.PROCESSOR, GenAITokensConfig, _create,
                                                        runs_in_workers=True)
