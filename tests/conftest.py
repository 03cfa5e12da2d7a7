"""Shared fixtures.

chDB hosts one engine (one data directory) per process, so every in-process ClickHouse
test shares one session-wide directory and isolates itself with its own database.
Tests that need their own directory run the service as a subprocess.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

# The test extras install logfire, whose pydantic plugin pydantic loads with the first model
# of every process: ~0.25 s and 17 MB more per tracehouse process the tests start, none
# of it tracehouse's. Every child process inherits this.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")


@pytest.fixture(scope="session")
def chdb_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from tracehouse.sinks.clickhouse.client import open_client

    endpoint = f"chdb://{tmp_path_factory.mktemp('chdb')}"
    # One connection held for the session keeps the engine up. chDB stops its engine when
    # the last connection closes, and starting it again loads every database the session
    # has made (~40 ms each): the next test's first query took seconds late in the suite.
    keeper = open_client(endpoint)
    yield endpoint
    keeper.close()


@pytest.fixture
def client(chdb_endpoint: str) -> Iterator[Any]:
    """A ClickHouse client on the session's chDB engine, for tests that read stored rows."""
    from tracehouse.sinks.clickhouse.client import open_client

    c = open_client(chdb_endpoint)
    yield c
    c.close()


@pytest.fixture
def database() -> Iterator[str]:
    """A database name no other test uses."""
    yield f"t_{uuid.uuid4().hex[:12]}"


CLICKHOUSE_IMAGE = "clickhouse/clickhouse-server:25.8.2.29"


def docker_unavailable_reason() -> str | None:
    """Why testcontainers cannot run here, or None when a Docker engine answers."""
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception as exc:
        return f"no Docker engine reachable ({type(exc).__name__}: {exc}); testcontainers tests skipped"
    return None


@pytest.fixture(scope="session", params=["chdb", pytest.param("clickhouse-server", marks=pytest.mark.docker)])
def clickhouse_endpoint(request: pytest.FixtureRequest, chdb_endpoint: str) -> Iterator[str]:
    """The embedded engine always; a real ClickHouse server in a container where Docker runs."""
    if request.param == "chdb":
        yield chdb_endpoint
        return
    reason = docker_unavailable_reason()
    if reason:
        pytest.skip(reason)
    try:
        from testcontainers.community.clickhouse import ClickHouseContainer
    except ImportError:  # testcontainers < 4.10
        from testcontainers.clickhouse import ClickHouseContainer

    with ClickHouseContainer(CLICKHOUSE_IMAGE, port=8123, username="tracehouse", password="tracehouse") as server:
        host, port = server.get_container_host_ip(), server.get_exposed_port(8123)
        yield f"http://tracehouse:tracehouse@{host}:{port}"


KAFKA_IMAGE = "confluentinc/cp-kafka:7.7.1"


@pytest.fixture(scope="session", params=["tansu", pytest.param("kafka", marks=pytest.mark.docker)])
def kafka_bootstrap(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Kafka-protocol broker's bootstrap address: tansu always, Apache Kafka where Docker runs."""
    if request.param == "tansu":
        from kafka_broker import TansuBroker

        broker = TansuBroker(tmp_path_factory.mktemp("tansu") / "tansu.log").start()
        try:
            yield broker.bootstrap
        finally:
            broker.stop()
        return
    reason = docker_unavailable_reason()
    if reason:
        pytest.skip(reason)
    from testcontainers.kafka import KafkaContainer

    with KafkaContainer(KAFKA_IMAGE).with_kraft() as kafka:
        yield kafka.get_bootstrap_server()


@pytest.fixture
def pki(tmp_path: Any) -> Any:
    """A server CA, a client CA and a stranger CA with their certificates, as PEM files (trustme)."""
    from tls_certs import Pki

    return Pki(tmp_path / "pki")
