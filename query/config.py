"""Config of the `query_api` extension: the HTTP API over the spans table."""

from __future__ import annotations

from pydantic import field_validator

from tracehouse.core.component import ComponentConfig
from tracehouse.core.config import Duration
from tracehouse.net.endpoint import parse_endpoint
from tracehouse.net.tls import TlsServerConfig
from tracehouse.sinks.clickhouse.config import ClickHouseConnectionConfig

class QueryClickHouseConfig(ClickHouseConnectionConfig):
    """Where the spans are read from. With `chdb://` the query API opens the same data
    directory as the exporter: in the all-in-one both share the process's one engine."""


class QueryApiConfig(ComponentConfig):
    # localhost by default, as the Collector's extensions do; containers set 0.0.0.0:8080.
    endpoint: str = "localhost:8080"
    # TLS (and mTLS with client_ca_file) on the API's port: net/tls.py, docs/tls.md.
    tls: TlsServerConfig | None = None
    clickhouse: QueryClickHouseConfig = QueryClickHouseConfig()
    # Threads running ClickHouse queries (each holds its own client).
    max_workers: int = 4
    # Trace search range when the request gives no `start`.
    default_lookback: Duration = 3600.0
    # Largest `limit` a search may ask for.
    max_limit: int = 1000
    # The trace list sums each trace from the per-trace rollup rows that start within this
    # long of the searched range; a longer trace across the range's edge shows the part
    # inside (its own page is always whole). Larger costs the list more rows to read.
    max_trace_duration: Duration = 6 * 3600.0

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

    @field_validator("default_lookback", "max_trace_duration")
    @classmethod
    def _check_lookback(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("must be greater than zero")
        return v
