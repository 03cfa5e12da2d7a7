from __future__ import annotations

from tracehouse.core.component import ALL_SIGNALS, Component, Consumer, Kind, Settings, SimpleFactory
from tracehouse.processors.k8sattributes.config import K8sAttributesConfig
from tracehouse.processors.k8sattributes.processor import K8sAttributesProcessor


def _create(settings: Settings, config: K8sAttributesConfig, next_consumer: Consumer | None) -> Component:
    assert next_consumer is not None
    return K8sAttributesProcessor(settings, config, next_consumer)


# Resource attributes: the same for traces, logs and metrics.
factory: SimpleFactory[K8sAttributesConfig] = SimpleFactory("k8sattributes", Kind.PROCESSOR, K8sAttributesConfig,
                                                            _create, ALL_SIGNALS)
