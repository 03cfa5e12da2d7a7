"""Config of the `otlp` receiver (keys follow the Collector's otlpreceiver)."""

from __future__ import annotations

from typing import Any

from pydantic import field_validator, model_validator

from tracehouse.core.auth import AuthConfig
from tracehouse.core.component import ComponentConfig
from tracehouse.core.config import Duration
from tracehouse.net.endpoint import parse_endpoint


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

    _endpoint = field_validator("endpoint")(_check_endpoint)


class HttpConfig(ComponentConfig):
    endpoint: str = "localhost:4318"
    traces_url_path: str = "/v1/traces"
    # Cap on the body, both as sent and after decompression (the Collector's 20 MiB).
    max_request_body_size: int = 20 * 1024 * 1024
    max_concurrent_requests: int = 128
    # How long the pipeline may take before the client is answered with a retryable
    # error; exporters stop retrying before it.
    request_timeout: Duration = 30.0
    # `auth: {authenticator: bearertokenauth}`: every request needs `Authorization: Bearer <key>`.
    auth: AuthConfig | None = None

    _endpoint = field_validator("endpoint")(_check_endpoint)

    @field_validator("traces_url_path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError("must start with '/'")
        return v


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
