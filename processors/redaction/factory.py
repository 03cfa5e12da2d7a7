from __future__ import annotations

from tracehouse.core.component import Component, Consumer, Kind, Settings, Signal, SimpleFactory
from tracehouse.processors.redaction.config import RedactionConfig
from tracehouse.processors.redaction.processor import RedactionProcessor


def _create(settings: Settings, config: RedactionConfig, next_consumer: Consumer | None) -> Component:
    assert next_consumer is not None
    return RedactionProcessor(settings, config, next_consumer)


# Traces and logs (the GenAI events sent as log records carry the messages); not metrics,
# whose attributes rarely carry content.
factory: SimpleFactory[RedactionConfig] = SimpleFactory("redaction", Kind.PROCESSOR, RedactionConfig, _create,
                                                        frozenset({Signal.TRACES, Signal.LOGS}), runs_in_workers=True)
