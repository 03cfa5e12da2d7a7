"""Config of the `clickhouse` exporter (keys follow the Collector's clickhouseexporter)."""

from __future__ import annotations

import re

from pydantic import ValidationInfo, field_validator, model_validator

from tracehouse.core.component import ComponentConfig
from tracehouse.core.config import Duration, PositiveDuration, files_checked
from tracehouse.core.exporterhelper.config import ExporterHelperConfig
from tracehouse.net.tls import TlsFile, TlsFileError, load_client_files

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ClickHouseTlsConfig(ComponentConfig):
    """TLS to an https:// endpoint: the client-side configtls keys clickhouse-connect can honour
    (it negotiates TLS 1.2 or 1.3 itself, so there is no min_version)."""

    # CAs that sign the server's certificate; empty: the system's CAs.
    ca_file: TlsFile = ""
    # A client certificate, for a server that requires one (mTLS). The username and password
    # are still sent: ClickHouse's certificate-based user authentication is not used.
    cert_file: TlsFile = ""
    key_file: TlsFile = ""
    insecure_skip_verify: bool = False
    # The name the server's certificate must carry, when it differs from the endpoint's host.
    server_name_override: str = ""

    @model_validator(mode="after")
    def _loads(self, info: ValidationInfo) -> ClickHouseTlsConfig:
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("cert_file and key_file go together (client certificate authentication)")
        if files_checked(info):
            try:
                load_client_files(None, self.ca_file, self.cert_file, self.key_file)
            except TlsFileError as exc:
                raise ValueError(str(exc)) from None
        return self


class ClickHouseConnectionConfig(ComponentConfig):
    """Where the spans live; shared by the exporter and the query API, so keys match."""

    # `chdb://<path>` runs the embedded engine on a local data directory (relative paths
    # are relative to the working directory); `http(s)://host:8123` talks to a server.
    endpoint: str = "chdb://./data/clickhouse"
    username: str = "default"
    password: str = ""
    database: str = "tracehouse"
    traces_table_name: str = "otel_traces"
    # Where logs pipelines' records go (the Collector's key and default); the query API reads a
    # span's GenAI events from it.
    logs_table_name: str = "otel_logs"
    # Per-statement timeout (inserts for the exporter, queries for the query API).
    timeout: PositiveDuration = 30.0
    # CA, client certificate, ... for an https:// endpoint (https alone verifies against the system's CAs).
    tls: ClickHouseTlsConfig | None = None

    @field_validator("endpoint")
    @classmethod
    def _check_endpoint(cls, v: str) -> str:
        if not re.match(r"^(chdb|https?)://", v):
            raise ValueError(f"expected chdb://<path> or http(s)://host:port, got {v!r}")
        return v

    @model_validator(mode="after")
    def _tls_needs_https(self) -> ClickHouseConnectionConfig:
        if self.tls is not None and not self.endpoint.startswith("https://"):
            raise ValueError(f"tls is set but the endpoint {self.endpoint!r} is not https://")
        return self

    @field_validator("database", "traces_table_name", "logs_table_name")
    @classmethod
    def _check_identifier(cls, v: str) -> str:
        if not _IDENT.match(v):
            raise ValueError(f"{v!r} is not a valid ClickHouse identifier (letters, digits, underscore)")
        return v



class MetricTableConfig(ComponentConfig):
    name: str

    @field_validator("name")
    @classmethod
    def _check_identifier(cls, v: str) -> str:
        if not _IDENT.match(v):
            raise ValueError(f"{v!r} is not a valid ClickHouse identifier (letters, digits, underscore)")
        return v


class MetricTablesConfig(ComponentConfig):
    """The Collector's `metrics_tables`: one table per metric kind."""

    gauge: MetricTableConfig = MetricTableConfig(name="otel_metrics_gauge")
    sum: MetricTableConfig = MetricTableConfig(name="otel_metrics_sum")
    summary: MetricTableConfig = MetricTableConfig(name="otel_metrics_summary")
    histogram: MetricTableConfig = MetricTableConfig(name="otel_metrics_histogram")
    exponential_histogram: MetricTableConfig = MetricTableConfig(name="otel_metrics_exponential_histogram")

    def by_kind(self) -> dict[str, str]:
        """OTLP Metric `data` kind -> table name."""
        return {kind: getattr(self, kind).name for kind in
                ("gauge", "sum", "histogram", "exponential_histogram", "summary")}


class ClickHouseExporterConfig(ClickHouseConnectionConfig, ExporterHelperConfig):
    # Where metrics pipelines' data points go, a table per metric kind (the Collector's keys and defaults).
    metrics_tables: MetricTablesConfig = MetricTablesConfig()
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

    @model_validator(mode="after")
    def _distinct_tables(self) -> ClickHouseExporterConfig:
        tables = [self.traces_table_name, self.logs_table_name, *self.metrics_tables.by_kind().values()]
        repeated = sorted({t for t in tables if tables.count(t) > 1})
        if repeated:
            raise ValueError(f"table {repeated[0]!r} is named for two kinds of data; each needs its own table")
        return self

    @field_validator("cluster")
    @classmethod
    def _check_cluster(cls, v: str) -> str:
        if v and not re.match(r"^[A-Za-z0-9_.-]+$", v):
            raise ValueError(f"{v!r} is not a cluster name (letters, digits, '_', '.', '-')")
        return v
