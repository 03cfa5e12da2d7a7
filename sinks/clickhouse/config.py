"""Config of the `clickhouse` exporter (keys follow the Collector's clickhouseexporter)."""

from __future__ import annotations

import re

from pydantic import field_validator

from tracehouse.core.component import ComponentConfig
from tracehouse.core.config import Duration, PositiveDuration
from tracehouse.core.exporterhelper.config import ExporterHelperConfig

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ClickHouseConnectionConfig(ComponentConfig):
    """Where the spans live; shared by the exporter and the query API, so keys match."""

    # `chdb://<path>` runs the embedded engine on a local data directory (relative paths
    # are relative to the working directory); `http(s)://host:8123` talks to a server.
    endpoint: str = "chdb://./data/clickhouse"
    username: str = "default"
    password: str = ""
    database: str = "tracehouse"
    traces_table_name: str = "otel_traces"
    # Per-statement timeout (inserts for the exporter, queries for the query API).
    timeout: PositiveDuration = 30.0

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



class ClickHouseExporterConfig(ClickHouseConnectionConfig, ExporterHelperConfig):
    # Apply the versioned migrations at start. Turn off where a DBA owns the schema.
    create_schema: bool = True
    # Keep spans this long (0 = forever); whole parts are dropped (ttl_only_drop_parts).
    ttl: Duration = 0
    # How many recent insert blocks ClickHouse remembers to drop exact replays.
    deduplication_window: int = 1000
    # A ClickHouse cluster (its `remote_servers` name): the schema becomes Replicated*MergeTree
    # `<table>_local` tables on every node plus Distributed tables under the usual names, and
    # inserts wait until every shard has its rows. Empty: one server (or chDB).
    cluster: str = ""

    @field_validator("cluster")
    @classmethod
    def _check_cluster(cls, v: str) -> str:
        if v and not re.match(r"^[A-Za-z0-9_.-]+$", v):
            raise ValueError(f"{v!r} is not a cluster name (letters, digits, '_', '.', '-')")
        return v
