"""Every registered component honours the lifecycle contract (the Collector's generated tests)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from tracehouse.core.component import ComponentID, Kind, Settings
from tracehouse.core.registry import get_factory, known_types
from tracehouse.core.testing import TestHost, TracesSink

ALL = [(kind, t) for kind in Kind for t in known_types(kind)]
NO_KEYS = Path(tempfile.mkdtemp(prefix="tracehouse-keys-")) / "keys.yaml"
NO_KEYS.write_text("keys: []\n")


def overrides(type_name: str, chdb_endpoint: str, database: str) -> dict[str, Any]:
    """Settings that let a component run here: free ports, the session's chDB directory."""
    clickhouse = {"endpoint": chdb_endpoint, "database": database}
    return {
        "otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}, "http": {"endpoint": "127.0.0.1:0"}}},
        "clickhouse": clickhouse,
        "query_api": {"endpoint": "127.0.0.1:0", "clickhouse": clickhouse},
        "health_check": {"endpoint": "127.0.0.1:0"},
        "mlflow": {"endpoint": "127.0.0.1:0"},  # not MLflow's 5000, which `make run` may hold
        "clickhouse_http": {"endpoint": "127.0.0.1:0", "clickhouse": {"endpoint": chdb_endpoint}, "database": database},
        "bearertokenauth": {"filename": str(NO_KEYS)},
    }.get(type_name, {})


@pytest.mark.parametrize(("kind", "type_name"), ALL, ids=lambda v: str(v))
def test_default_config_validates_and_round_trips_through_yaml(kind: Kind, type_name: str) -> None:
    factory = get_factory(kind, type_name)
    assert factory is not None and factory.type == type_name and factory.kind is kind
    default = factory.config_type()
    dumped = yaml.safe_dump(default.model_dump(mode="json"))
    assert factory.config_type.model_validate(yaml.safe_load(dumped)) == default


@pytest.mark.parametrize(("kind", "type_name"), ALL, ids=lambda v: str(v))
async def test_lifecycle(kind: Kind, type_name: str, chdb_endpoint: str, database: str) -> None:
    factory = get_factory(kind, type_name)
    assert factory is not None
    config = factory.config_type.model_validate(overrides(type_name, chdb_endpoint, database))
    settings = Settings(ComponentID(type_name), kind, "traces")
    sink = TracesSink()

    never_started = factory.create(settings, config, sink)
    await never_started.shutdown()  # safe before start

    component = factory.create(settings, config, sink)
    await component.start(TestHost())
    await component.shutdown()
    await component.shutdown()  # safe twice


CONSUMERS = [(kind, t) for kind in (Kind.PROCESSOR, Kind.EXPORTER) for t in known_types(kind)]


@pytest.mark.parametrize(("kind", "type_name"), CONSUMERS, ids=lambda v: str(v))
def test_every_consumer_declares_whether_it_mutates_data(kind: Kind, type_name: str, chdb_endpoint: str,
                                                          database: str) -> None:
    """A fanout clones a batch only for consumers that change it; one that declares nothing is
    assumed to, and costs a copy of every batch."""
    factory = get_factory(kind, type_name)
    assert factory is not None
    config = factory.config_type.model_validate(overrides(type_name, chdb_endpoint, database))
    component = factory.create(Settings(ComponentID(type_name), kind, "traces"), config, TracesSink())
    assert isinstance(getattr(component, "mutates_data", None), bool), f"{kind.value} {type_name}"
