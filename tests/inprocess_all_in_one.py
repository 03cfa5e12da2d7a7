"""The shipped all-in-one config run in this process (`Service`) on the session's chDB engine:
the whole pipeline (receivers, the GenAI processors, the exporter, the query API) on one
database of the test's choosing and OS-chosen loopback ports, cheaper than a child process.
Two of them on two databases are two independent stores."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import yaml

from tracehouse.core.component import Kind
from tracehouse.core.config import load_config_dict
from tracehouse.core.service import Service

REPO = Path(__file__).resolve().parents[1]


def all_in_one(chdb_endpoint: str, database: str) -> dict[str, Any]:
    """deploy/config/all-in-one.yaml as shipped (its pipeline and processor settings), on
    this database and OS-chosen loopback ports (the ClickHouse HTTP endpoint's too)."""
    raw = yaml.safe_load((REPO / "deploy/config/all-in-one.yaml").read_text())
    assert raw["service"]["pipelines"]["traces"]["processors"] == [
        "memory_limiter", "genai_normalize", "genai_tokens", "redaction", "genai_cost", "batch"]
    raw["receivers"]["otlp"]["protocols"] = {"http": {"endpoint": "127.0.0.1:0"}}
    raw["exporters"]["clickhouse"].update(endpoint=chdb_endpoint, database=database)
    raw["exporters"]["clickhouse"].pop("sending_queue", None)
    raw["extensions"]["query_api"]["endpoint"] = "127.0.0.1:0"
    raw["extensions"]["query_api"]["clickhouse"].update(endpoint=chdb_endpoint, database=database)
    raw["extensions"]["clickhouse_http"].update(endpoint="127.0.0.1:0", database=database)
    raw["extensions"]["clickhouse_http"]["clickhouse"].update(endpoint=chdb_endpoint)
    raw["receivers"]["mlflow"].update(endpoint="127.0.0.1:0")
    raw["receivers"]["mlflow"]["clickhouse"].update(endpoint=chdb_endpoint, database=database)
    raw["processors"]["batch"]["timeout"] = "20ms"
    return raw


@asynccontextmanager
async def running(chdb_endpoint: str, database: str, workers: int = 0) -> AsyncIterator[Service]:
    raw = all_in_one(chdb_endpoint, database)
    raw["service"]["workers"] = workers
    service = Service(load_config_dict(raw))
    await service.start()
    try:
        yield service
    finally:
        await service.shutdown()


def component(service: Service, kind: Kind, cls: type) -> Any:
    (node,) = [n for n in service._nodes if n.kind is kind and isinstance(n.component, cls)]
    return node.component
