from __future__ import annotations

from typing import Any

from tracehouse.core.component import ALL_SIGNALS, Component, Kind, Settings, SimpleFactory
from tracehouse.sinks.kafka.config import KafkaExporterConfig


def _create(settings: Settings, config: KafkaExporterConfig, next_consumer: Any) -> Component:
    # Imported here so validating a config never loads aiokafka.
    from tracehouse.sinks.kafka.exporter import KafkaExporter

    return KafkaExporter(settings, config, next_consumer)


factory: SimpleFactory[KafkaExporterConfig] = SimpleFactory("kafka", Kind.EXPORTER, KafkaExporterConfig, _create,
                                                     ALL_SIGNALS)
