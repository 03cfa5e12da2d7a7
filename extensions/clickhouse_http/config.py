"""Config of the `clickhouse_http` extension: ClickHouse's HTTP interface over chDB."""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic import field_validator

from tracehouse.core.component import ComponentConfig, ComponentID
from tracehouse.core.config import PositiveDuration
from tracehouse.net.endpoint import parse_endpoint
from tracehouse.net.tls import TlsServerConfig
from tracehouse.sinks.clickhouse.client import is_embedded


class EngineConfig(ComponentConfig):
    # The exporter's and the query API's `endpoint`. `chdb://<dir>`: the embedded engine on
    # that data directory (one engine per process, so the same directory). An http(s)://
    # server has its own HTTP interface: the extension then serves nothing and says so.
    endpoint: str = "chdb://./data/clickhouse"

    @field_validator("endpoint")
    @classmethod
    def _check(cls, v: str) -> str:
        if not re.match(r"^(chdb|https?)://", v):
            raise ValueError(f"expected chdb://<path> or http(s)://host:port, got {v!r}")
        return v

    @property
    def embedded(self) -> bool:
        return is_embedded(self.endpoint)


class ClickHouseHttpConfig(ComponentConfig):
    # ClickHouse's HTTP port, on localhost as the Collector's extensions default.
    endpoint: str = "localhost:8123"
    tls: TlsServerConfig | None = None
    clickhouse: EngineConfig = EngineConfig()
    # The database of queries that name none (and of clients that send no `database`).
    database: str = "default"
    # The one user clients authenticate as (X-ClickHouse-User/Key, Basic, user/password params).
    username: str = "default"
    password: str = ""
    # Caps of every query: ClickHouse's max_execution_time and max_memory_usage. A client
    # may ask for less, never more.
    max_execution_time: PositiveDuration = 60.0
    max_memory_usage_mib: int = 2048
    # Largest result a query may return (ClickHouse's max_result_bytes, uncompressed).
    max_result_mib: int = 256
    # Queries run at once (each on its own engine connection); more wait.
    max_concurrent_queries: int = 4
    # Largest request body (the query text, possibly compressed).
    max_body_bytes: int = 1 << 20
    # Shown in X-ClickHouse-Server-Display-Name (clients show it as the server's name).
    display_name: str = "tracehouse"
    # With tenants (a bearertokenauth extension in the service), raw SQL would read every
    # tenant's rows: the extension then refuses to start unless this is true.
    allow_with_tenants: bool = False

    @field_validator("endpoint")
    @classmethod
    def _check_endpoint(cls, v: str) -> str:
        parse_endpoint(v)
        return v

    @field_validator("database")
    @classmethod
    def _identifier(cls, v: str) -> str:
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", v):
            raise ValueError(f"{v!r} is not a valid ClickHouse identifier (letters, digits, underscore)")
        return v

    @field_validator("max_memory_usage_mib", "max_result_mib", "max_concurrent_queries", "max_body_bytes")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v < 1:
            raise ValueError("must be at least 1")
        return v

    def check_service(self, extensions: Sequence[ComponentID]) -> None:
        tenants = [str(cid) for cid in extensions if cid.type == "bearertokenauth"]
        if tenants and not self.allow_with_tenants:
            raise ValueError(
                f"the service has tenants ({', '.join(tenants)}) and this endpoint runs any SQL over every "
                f"tenant's rows: it would bypass tenant isolation. Remove it, or set allow_with_tenants: true "
                f"if every client of it may read every tenant (extensions/clickhouse_http/README.md)")
