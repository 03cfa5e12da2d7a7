"""The `otlp` receiver: OTLP/gRPC and OTLP/HTTP front doors onto one pipeline.

Both transports share `TraceExportService`: validate ids, hand the batch on, count the
outcome. A client is answered only after `consume()` returned, that is after its spans
reached the durable point (ClickHouse in the all-in-one, Kafka in the sidecar).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Protocol

from tracehouse.core.auth import (
    ANONYMOUS,
    TENANT_ATTRIBUTE,
    Action,
    AuthConfig,
    Principal,
    ServerAuthenticator,
    resolve_authenticator,
)
from tracehouse.core.component import Host, Settings, TracesConsumer
from tracehouse.core.pdata import TraceBatch
from tracehouse.ingest.otlp.config import OtlpReceiverConfig
from tracehouse.ingest.otlp.validate import drop_invalid_spans


class TraceExportService:
    """What both transports do with a request: who sent it, then its valid spans on."""

    def __init__(self, settings: Settings, next_consumer: TracesConsumer, transport: str,
                 auth: AuthConfig | None = None):
        self._next = next_consumer
        self._settings = settings
        self.transport = transport
        self.host: Host | None = None
        self._receiver = str(settings.id)
        self._auth_config = auth
        self._authenticator: ServerAuthenticator | None = None

    def bind(self, host: Host) -> None:
        self.host = host
        self._authenticator = resolve_authenticator(host, self._auth_config)

    @property
    def auth_description(self) -> str:
        if self._auth_config is None:
            return "off: no API key needed, every span is the default tenant's"
        return self._auth_config.authenticator

    @property
    def needs_auth(self) -> bool:
        return self._authenticator is not None

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        """The caller, from its headers, allowed to ingest; UnauthenticatedError / PermissionDeniedError."""
        principal = self.identify(headers)
        principal.require(Action.INGEST)
        return principal

    def identify(self, headers: Mapping[str, str]) -> Principal:
        """The caller, whatever its key may do (the mlflow receiver's read routes decide)."""
        if self._authenticator is None:
            return ANONYMOUS
        return self._authenticator.authenticate(headers)

    async def export(self, batch: TraceBatch, principal: Principal = ANONYMOUS) -> tuple[int, str]:
        """Hand the valid spans on, as the caller's tenant's. Returns (rejected spans,
        message) for partial_success."""
        rejected, message = drop_invalid_spans(batch)
        if rejected and self.host:
            self.host.telemetry.receiver_refused_spans.labels(self._receiver, self.transport, "invalid").inc(rejected)
        batch.tenant = principal.tenant
        strip_tenant_attribute(batch)
        if batch.span_count and self._authenticator is not None:
            self._authenticator.admit(principal.tenant, batch.span_count, batch.nbytes)
        if batch.span_count:
            await self._next.consume(batch)
            if self.host:
                self.host.telemetry.receiver_accepted_spans.labels(self._receiver, self.transport).inc(batch.span_count)
        return rejected, message

    def observe(self, status: str, started: float, refused_spans: int = 0, reason: str = "") -> None:
        if not self.host:
            return
        t = self.host.telemetry
        t.receiver_requests.labels(self._receiver, self.transport, status).inc()
        t.receiver_request_duration.labels(self._receiver, self.transport).observe(time.perf_counter() - started)
        if refused_spans:
            t.receiver_refused_spans.labels(self._receiver, self.transport, reason).inc(refused_spans)


def strip_tenant_attribute(batch: TraceBatch) -> None:
    """Drop a `tracehouse.tenant` resource attribute a client sent: the tenant is what the
    server authenticated, never what the data claims."""
    for rs in batch.request.resource_spans:
        attrs = rs.resource.attributes
        if any(kv.key == TENANT_ATTRIBUTE for kv in attrs):
            kept = [kv for kv in attrs if kv.key != TENANT_ATTRIBUTE]
            del attrs[:]
            attrs.extend(kept)
            batch.mark_mutated()


class _Transport(Protocol):
    handler: TraceExportService
    port: int | None

    async def start(self) -> None: ...

    async def shutdown(self) -> None: ...


class OtlpReceiver:
    def __init__(self, settings: Settings, config: OtlpReceiverConfig, next_consumer: TracesConsumer):
        # Imported here: a receiver with only one protocol does not load the other stack.
        self._settings = settings
        self._servers: list[_Transport] = []
        protocols = config.protocols
        if protocols.grpc is not None:
            from tracehouse.ingest.otlp.grpc import OtlpGrpcReceiver

            self._servers.append(OtlpGrpcReceiver(
                protocols.grpc, TraceExportService(settings, next_consumer, "grpc", protocols.grpc.auth),
                settings.logger))
        if protocols.http is not None:
            from tracehouse.ingest.otlp.http import OtlpHttpReceiver

            self._servers.append(OtlpHttpReceiver(
                protocols.http, TraceExportService(settings, next_consumer, "http", protocols.http.auth),
                settings.logger))

    @property
    def grpc_port(self) -> int | None:
        return next((s.port for s in self._servers if s.handler.transport == "grpc"), None)

    @property
    def http_port(self) -> int | None:
        return next((s.port for s in self._servers if s.handler.transport == "http"), None)

    async def start(self, host: Host) -> None:
        for server in self._servers:
            server.handler.bind(host)
            await server.start()

    async def shutdown(self) -> None:
        for server in self._servers:
            await server.shutdown()
