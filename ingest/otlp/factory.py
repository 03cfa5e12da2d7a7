from __future__ import annotations

from tracehouse.core.component import Component, Kind, Settings, SimpleFactory, TracesConsumer
from tracehouse.ingest.otlp.config import OtlpReceiverConfig


def _create(settings: Settings, config: OtlpReceiverConfig, next_consumer: TracesConsumer | None) -> Component:
    from tracehouse.ingest.otlp.receiver import OtlpReceiver

    assert next_consumer is not None
    return OtlpReceiver(settings, config, next_consumer)


factory: SimpleFactory[OtlpReceiverConfig] = SimpleFactory("otlp", Kind.RECEIVER, OtlpReceiverConfig, _create)
