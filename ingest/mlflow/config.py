"""Config of the `mlflow` receiver."""

from __future__ import annotations

from pydantic import field_validator

from tracehouse.core.auth import AuthConfig
from tracehouse.core.component import ComponentConfig
from tracehouse.core.config import Duration
from tracehouse.net.endpoint import parse_endpoint
from tracehouse.net.tls import TlsServerConfig
from tracehouse.sinks.clickhouse.config import ClickHouseConnectionConfig


class MlflowClickHouseConfig(ClickHouseConnectionConfig):
    """Where experiments, runs, prompts and scores are kept (the tracking store). Spans go
    through the pipeline like any receiver's; with `chdb://` this is the same data directory
    as the exporter's, in one engine."""


class MlflowReceiverConfig(ComponentConfig):
    # MLflow's own port; localhost by default, as every listener here.
    endpoint: str = "localhost:5000"
    tls: TlsServerConfig | None = None
    # `auth: {authenticator: bearertokenauth}`: the client's MLFLOW_TRACKING_TOKEN (Bearer) or
    # MLFLOW_TRACKING_USERNAME/PASSWORD (Basic, the password being the key) is a tracehouse key.
    auth: AuthConfig | None = None
    clickhouse: MlflowClickHouseConfig = MlflowClickHouseConfig()
    # The version `GET /version` reports: MLflow clients send spans over OTLP (/v1/traces)
    # only to servers of 3.4 or newer.
    server_version: str = "3.17.2"
    # Cap on a request body: OTLP, traces.json uploads and other artifacts.
    max_request_body_size: int = 20 * 1024 * 1024
    # How long the pipeline may take to accept spans before a retryable 503.
    request_timeout: Duration = 30.0
    # Threads running tracking-store queries (each holds its own ClickHouse client).
    max_workers: int = 4

    @field_validator("endpoint")
    @classmethod
    def _check_endpoint(cls, v: str) -> str:
        parse_endpoint(v)
        return v

    @field_validator("max_request_body_size", "max_workers")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v < 1:
            raise ValueError("must be at least 1")
        return v
