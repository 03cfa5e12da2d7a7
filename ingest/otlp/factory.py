from __future__ import annotations

from typing import Any

from tracehouse.core.component import ALL_SIGNALS, Component, Kind, Settings, SimpleFactory
from tracehouse.ingest.otlp.config import OtlpReceiverConfig


def _create(settings: Settings, config: OtlpReceiverConfig, next_consumer: Any) -> Component:
    from tracehouse.ingest.otlp.receiver import OtlpReceiver

    assert next_consumer is not None
    return OtlpReceiver(settings, config, next_consumer)


factory: SimpleFactory[OtlpReceiverConfig] = SimpleFactory("otlp", Kind.RECEIVER, OtlpReceiverConfig, _create, ALL_SIGNALS)
