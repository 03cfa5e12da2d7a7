from __future__ import annotations

from typing import Any

from tracehouse.core.component import ALL_SIGNALS, Component, Kind, Settings, SimpleFactory
from tracehouse.ingest.kafka.config import KafkaReceiverConfig


def _create(settings: Settings, config: KafkaReceiverConfig, next_consumer: Any) -> Component:
    # Imported here: validating a config must not load aiokafka.
    from tracehouse.ingest.kafka.receiver import KafkaReceiver

    assert next_consumer is not None
    return KafkaReceiver(settings, config, next_consumer)


factory: SimpleFactory[KafkaReceiverConfig] = SimpleFactory("kafka", Kind.RECEIVER, KafkaReceiverConfig, _create, ALL_SIGNALS)
