from __future__ import annotations

from typing import Any

from tracehouse.core.component import Component, Kind, Settings, SimpleFactory
from tracehouse.ingest.mlflow.config import MlflowReceiverConfig


def _create(settings: Settings, config: MlflowReceiverConfig, next_consumer: Any) -> Component:
    from tracehouse.ingest.mlflow.receiver import MlflowReceiver

    assert next_consumer is not None
    return MlflowReceiver(settings, config, next_consumer)


factory: SimpleFactory[MlflowReceiverConfig] = SimpleFactory("mlflow", Kind.RECEIVER, MlflowReceiverConfig, _create)
