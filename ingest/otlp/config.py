"""Config of the `otlp` receiver (keys follow the Collector's otlpreceiver)."""

from __future__ import annotations

from typing import Any

from pydantic import field_validator, model_validator

from tracehouse.core.auth import AuthConfig
from tracehouse.core.component import ComponentConfig, Signal
from tracehouse.core.config import Duration
from tracehouse.net.endpoint import parse_endpoint
from tracehouse.net.tls import TlsServerConfig


def _check_endpoint(v: str) -> str:
    parse_endpoint(v)
    return v


class GrpcConfig(ComponentConfig):
    # localhost by default, as the Collector does; containers set 0.0.0.0:4317.
    endpoint: str = "localhost:4317"
    # gRPC's default is 4 MiB; OTLP batches from busy SDKs run larger.
    max_recv_msg_size_mib: float = 16.0
    # Requests handled at once; more are refused with a retryable UNAVAILABLE.
    max_concurrent_requests: int = 128
    # `auth: {authenticator: bearertokenauth}`: every call needs an API key (metadata
    # `authorization: Bearer <key>`), whose tenant owns the spans.
    auth: AuthConfig | None = None
    # TLS (and mTLS with client_ca_file) on this port: net/tls.py, docs/tls.md.
    tls: TlsServerConfig | None = None

    _endpoint = field_validator("endpoint")(_check_endpoint)

    @field_validator("tls")
    @classmethod
    def _grpc_versions(cls, v: TlsServerConfig | None) -> TlsServerConfig | None:
        # grpcio's server credentials take no version limits: gRPC core always negotiates 1.2 or 1.3.
        if v is not None and (v.min_version != "1.2" or v.max_version not in ("", "1.3")):
            raise ValueError("the gRPC listener (grpcio) always accepts TLS 1.2 and 1.3 and cannot be limited to one "
                             "of them: leave min_version at 1.2 and max_version unset here (the HTTP listener "
                             "and the query API take both)")
        return v


class HttpConfig(ComponentConfig):
    endpoint: str = "localhost:4318"
    traces_url_path: str = "/v1/traces"
    # More paths that take the same OTLP traces requests, e.g. Langfuse's
    # `/api/public/otel/v1/traces`, where Langfuse SDKs pointed at tracehouse
    # (LANGFUSE_HOST / LANGFUSE_BASE_URL) send. The all-in-one configs list it.
    traces_url_aliases: list[str] = []
    # Where OTLP logs and metrics are accepted (served only when a logs / metrics pipeline
    # names this receiver; else 404, as in the Collector).
    logs_url_path: str = "/v1/logs"
    metrics_url_path: str = "/v1/metrics"
    # Cap on the body, both as sent and after decompression (the Collector's 20 MiB).
    max_request_body_size: int = 20 * 1024 * 1024
    # Requests handed to the pipeline at once; more are refused with a retryable 503. A
    # request takes its slot once its whole body is read: clients that are slow to send
    # (or stall) hold only their connection, never a slot a complete request could use.
    max_concurrent_requests: int = 128
    # How long the pipeline may take before the client is answered with a retryable
    # error; exporters stop retrying before it.
    request_timeout: Duration = 30.0
    # Time from a connection's opening (or a keep-alive request's first byte) to the end
    # of the request's headers; then 408 and the connection is closed (the Collector's
    # confighttp `read_header_timeout`).
    read_header_timeout: Duration = 60.0
    # Time to receive the whole body once the headers are in, however it trickles; then
    # 408 and the connection is closed. (The Collector's `read_timeout` bounds headers and
    # body together and defaults to none: a stalled body would be held forever.)
    read_timeout: Duration = 60.0
    # Cap on the request line and headers together; larger is answered 431 (Go's
    # http.DefaultMaxHeaderBytes, what the Collector's servers use).
    max_request_header_size: int = 1024 * 1024
    # `auth: {authenticator: bearertokenauth}`: every request needs `Authorization: Bearer <key>`.
    auth: AuthConfig | None = None
    # TLS (and mTLS with client_ca_file) on this port: net/tls.py, docs/tls.md.
    tls: TlsServerConfig | None = None

    _endpoint = field_validator("endpoint")(_check_endpoint)

    @field_validator("max_request_header_size", "max_request_body_size", "max_concurrent_requests")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v < 1:
            raise ValueError("must be at least 1")
        return v

    @field_validator("traces_url_path", "logs_url_path", "metrics_url_path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError("must start with '/'")
        return v

    @field_validator("traces_url_aliases")
    @classmethod
    def _paths(cls, v: list[str]) -> list[str]:
        for path in v:
            if not path.startswith("/"):
                raise ValueError(f"{path!r} must start with '/'")
        return v

    @model_validator(mode="after")
    def _distinct_paths(self) -> HttpConfig:
        seen: dict[str, str] = {}
        for key, paths in (("traces", self.traces_paths), ("logs_url_path", (self.logs_url_path,)),
                           ("metrics_url_path", (self.metrics_url_path,))):
            for path in paths:
                if seen.setdefault(path, key) != key:
                    raise ValueError(f"path {path!r} is given to both {seen[path]} and {key}")
        return self

    @property
    def traces_paths(self) -> tuple[str, ...]:
        """Every path OTLP traces are accepted at: traces_url_path first."""
        return tuple(dict.fromkeys([self.traces_url_path, *self.traces_url_aliases]))

    def signal_paths(self) -> dict[str, Signal]:
        """Path -> the signal whose export requests it takes."""
        paths = dict.fromkeys(self.traces_paths, Signal.TRACES)
        paths[self.logs_url_path] = Signal.LOGS
        paths[self.metrics_url_path] = Signal.METRICS
        return paths


class ProtocolsConfig(ComponentConfig):
    grpc: GrpcConfig | None = None
    http: HttpConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _empty_means_defaults(cls, data: Any) -> Any:
        # `grpc:` with nothing under it enables gRPC with defaults, as in the Collector.
        if isinstance(data, dict):
            return {k: ({} if v is None else v) for k, v in data.items()}
        return data


class OtlpReceiverConfig(ComponentConfig):
    protocols: ProtocolsConfig = ProtocolsConfig(grpc=GrpcConfig(), http=HttpConfig())

    @model_validator(mode="after")
    def _one_protocol(self) -> OtlpReceiverConfig:
        if self.protocols.grpc is None and self.protocols.http is None:
            raise ValueError("must specify at least one protocol (grpc or http) under protocols")
        return self
