"""Config of the `query_api` extension: the HTTP API over the spans table."""

from __future__ import annotations

from pydantic import field_validator

from tracehouse.core.auth import AuthConfig
from tracehouse.core.component import ComponentConfig
from tracehouse.core.config import Duration
from tracehouse.net.endpoint import parse_endpoint
from tracehouse.net.tls import TlsServerConfig
from tracehouse.sinks.clickhouse.config import ClickHouseConnectionConfig

class QueryClickHouseConfig(ClickHouseConnectionConfig):
    """Where the spans are read from. With `chdb://` the query API opens the same data
    directory as the exporter: in the all-in-one both share the process's one engine."""


# The default of `max_trace_duration` (seconds).
MAX_TRACE_DURATION_S = 6 * 3600.0


class RetentionConfig(ComponentConfig):
    """Per-tenant retention: a tenant's data older than its duration is deleted, every
    `check_interval`. The exporter's `ttl` still bounds every tenant's data."""

    # Tenant (as in the key file; `default` for data sent without keys) -> how long to keep.
    tenants: dict[str, Duration] = {}
    check_interval: Duration = 3600.0

    @field_validator("tenants")
    @classmethod
    def _positive(cls, v: dict[str, float]) -> dict[str, float]:
        bad = [t for t, d in v.items() if d <= 0]
        if bad:
            raise ValueError(f"retention must be greater than zero (tenants {bad})")
        return v


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
    max_trace_duration: Duration = MAX_TRACE_DURATION_S
    # A search whose range holds up to this many traces (per-trace rollup rows) is answered
    # exactly, totals included; above it, the page stays exact and the totals are estimated
    # from the rollup's rows (`totals.estimated`), so a day of 10M spans answers in well
    # under a second (docs/api.md, "Search at scale").
    exact_totals_max_traces: int = 100_000
    # `auth: {authenticator: bearertokenauth}`: API routes need a key of kind read or full,
    # and read only that key's tenant. Health probes stay open.
    auth: AuthConfig | None = None
    # With `auth`: whether `/metrics` needs a key too (Prometheus then sends one).
    metrics_auth: bool = False
    retention: RetentionConfig = RetentionConfig()
    # The read budget (query/budget.py): API requests at once, in total and per client (an
    # API key, else an address); over the total, a request waits this long, then 503.
    max_concurrent_reads: int = 8
    max_concurrent_reads_per_client: int = 4
    read_queue_timeout: Duration = 5.0
    # Of those, reads of whole traces (up to 100k spans each) at once; the others wait.
    max_concurrent_trace_reads: int = 2
    # Exports of a search's traces streaming at once (slots of their own); the others wait
    # `read_queue_timeout`, then 503.
    max_concurrent_exports: int = 2
    # ClickHouse's memory cap for one query of the API (max_memory_usage).
    max_query_memory_mib: int = 2048
    # Reads' own CPU budget beside ingestion's: the nice value (0-19) of the engine threads
    # running an API query (ClickHouse's os_thread_priority), so under contention the
    # exporter's inserts, at the process's priority, get the CPU first. 0: as ingestion.
    read_nice: int = 10

    @field_validator("endpoint")
    @classmethod
    def _check_endpoint(cls, v: str) -> str:
        parse_endpoint(v)
        return v

    @field_validator("max_workers", "max_limit", "max_concurrent_reads", "max_concurrent_reads_per_client",
                     "max_concurrent_trace_reads", "max_concurrent_exports",
                     "max_query_memory_mib")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v < 1:
            raise ValueError("must be at least 1")
        return v

    @field_validator("read_nice")
    @classmethod
    def _check_nice(cls, v: int) -> int:
        # Below 0 would put reads ahead of ingestion (and needs CAP_SYS_NICE).
        if not 0 <= v <= 19:
            raise ValueError("must be between 0 and 19 (a nice value; higher: reads yield more)")
        return v

    @field_validator("default_lookback", "max_trace_duration")
    @classmethod
    def _check_lookback(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("must be greater than zero")
        return v
