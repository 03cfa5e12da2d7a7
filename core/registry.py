"""Component types by name.

Factories are imported on first use, so a process loads only the components its config
names: the sidecar never imports the embedded ClickHouse engine.
"""

from __future__ import annotations

import importlib

from tracehouse.core.component import Factory, Kind

_REGISTRY: dict[Kind, dict[str, str]] = {
    Kind.RECEIVER: {
        "otlp": "tracehouse.ingest.otlp.factory:factory",
        "kafka": "tracehouse.ingest.kafka.factory:factory",
        "mlflow": "tracehouse.ingest.mlflow.factory:factory",
    },
    Kind.PROCESSOR: {
        "batch": "tracehouse.processors.batch.factory:factory",
        "memory_limiter": "tracehouse.processors.memory_limiter.factory:factory",
        "genai_normalize": "tracehouse.processors.genai_normalize.factory:factory",
        "genai_tokens": "tracehouse.processors.genai_tokens.factory:factory",
        "genai_cost": "tracehouse.processors.genai_cost.factory:factory",
        "redaction": "tracehouse.processors.redaction.factory:factory",
        "k8sattributes": "tracehouse.processors.k8sattributes.factory:factory",
    },
    Kind.EXPORTER: {
        "clickhouse": "tracehouse.sinks.clickhouse.factory:factory",
        "debug": "tracehouse.sinks.debug.exporter:factory",
        "kafka": "tracehouse.sinks.kafka.factory:factory",
    },
    Kind.EXTENSION: {
        "query_api": "tracehouse.query.factory:factory",
        "health_check": "tracehouse.extensions.health_check.factory:factory",
        "bearertokenauth": "tracehouse.extensions.bearertokenauth.factory:factory",
        "clickhouse_http": "tracehouse.extensions.clickhouse_http.factory:factory",
    },
}


def known_types(kind: Kind) -> list[str]:
    return sorted(_REGISTRY[kind])


def get_factory(kind: Kind, type_name: str) -> Factory | None:
    target = _REGISTRY[kind].get(type_name)
    if target is None:
        return None
    module_name, _, attr = target.partition(":")
    factory: Factory = getattr(importlib.import_module(module_name), attr)
    return factory
