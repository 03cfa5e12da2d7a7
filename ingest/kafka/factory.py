from __future__ import annotations

from tracehouse.core.component import Component, Kind, Settings, SimpleFactory, TracesConsumer
from tracehouse.ingest.kafka.config import KafkaReceiverConfig


def _create(settings: Settings, config: KafkaReceiverConfig, next_consumer: TracesConsumer | None) -> Component:
    # Imported here: validating a config must not load aiokafka.
    from tracehouse.ingest.kafka.receiver import KafkaReceiver

    assert next_consumer is not None
    return KafkaReceiver(settings, config, next_consumer)


factory: SimpleFactory[KafkaReceiverConfig] = SimpleFactory("kafka", Kind.RECEIVER, KafkaReceiverConfig, _create)
