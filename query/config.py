"""Config of the `query_api` extension: the HTTP API over the spans table."""

from __future__ import annotations

import re

from pydantic import field_validator

from tracehouse.core.component import ComponentConfig
from tracehouse.core.config import Duration
from tracehouse.core.netaddr import parse_endpoint

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class QueryClickHouseConfig(ComponentConfig):
    """Where the spans are read from; keys match the `clickhouse` exporter's."""

    # `chdb://<path>` reads the embedded engine's data directory (the all-in-one shares it
    # with the exporter); `http(s)://host:8123` talks to a ClickHouse server.
    endpoint: str = "chdb://./data/clickhouse"
    username: str = "default"
    password: str = ""
    database: str = "tracehouse"
    traces_table_name: str = "otel_traces"
    # Per-query limit, enforced by ClickHouse (max_execution_time) and the HTTP client.
    timeout: Duration = 30.0

    @field_validator("endpoint")
    @classmethod
    def _check_endpoint(cls, v: str) -> str:
        if not re.match(r"^(chdb|https?)://", v):
            raise ValueError(f"expected chdb://<path> or http(s)://host:port, got {v!r}")
        return v

    @field_validator("database", "traces_table_name")
    @classmethod
    def _check_identifier(cls, v: str) -> str:
        if not _IDENT.match(v):
            raise ValueError(f"{v!r} is not a valid ClickHouse identifier (letters, digits, underscore)")
        return v

    @field_validator("timeout")
    @classmethod
    def _check_timeout(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("must be greater than zero")
        return v


class QueryApiConfig(ComponentConfig):
    # localhost by default, as the Collector's extensions do; containers set 0.0.0.0:8080.
    endpoint: str = "localhost:8080"
    clickhouse: QueryClickHouseConfig = QueryClickHouseConfig()
    # Threads running ClickHouse queries (each holds its own client).
    max_workers: int = 4
    # Trace search range when the request gives no `start`.
    default_lookback: Duration = 3600.0
    # Largest `limit` a search may ask for.
    max_limit: int = 1000

    @field_validator("endpoint")
    @classmethod
    def _check_endpoint(cls, v: str) -> str:
        parse_endpoint(v)
        return v

    @field_validator("max_workers", "max_limit")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v < 1:
            raise ValueError("must be at least 1")
        return v

    @field_validator("default_lookback")
    @classmethod
    def _check_lookback(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("must be greater than zero")
        return v
