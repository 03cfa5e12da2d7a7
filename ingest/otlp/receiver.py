"""The `otlp` receiver: OTLP/gRPC and OTLP/HTTP front doors onto the pipelines.

One receiver serves every signal that has a pipeline naming it (traces, logs, metrics),
as the Collector's otlpreceiver does; a signal without one is answered HTTP 404 / gRPC
UNIMPLEMENTED. Both transports share an `ExportService`: validate, hand the batch on to
its signal's pipelines, count the outcome. A client is answered only after `consume()`
returned, that is after its data reached the durable point (ClickHouse in the
all-in-one, Kafka in the sidecar).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Protocol

from tracehouse.core.auth import (
    ANONYMOUS,
    TENANT_ATTRIBUTE,
    Action,
    AuthConfig,
    Principal,
    ServerAuthenticator,
    resolve_authenticator,
)
from tracehouse.core.errors import PermanentError
from tracehouse.core.component import Host, Listener, Settings, Signal, signal_consumers
from tracehouse.core.pdata import OtlpBatch
from tracehouse.ingest.otlp.config import OtlpReceiverConfig
from tracehouse.ingest.otlp.validate import drop_invalid


class ExportService:
    """What both transports do with a request: who sent it, then its valid items on to the
    pipelines of its signal. `next_consumer` is the receiver's SignalConsumers (a plain
    consumer counts as a traces pipeline)."""

    def __init__(self, settings: Settings, next_consumer: Any, transport: str, auth: AuthConfig | None = None):
        self._consumers = signal_consumers(next_consumer)
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
    def signals(self) -> frozenset[Signal]:
        """The signals with a pipeline behind this receiver: the others are not served."""
        return self._consumers.signals

    def serves(self, signal: Signal) -> bool:
        return self._consumers.get(signal) is not None

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

    async def export(self, batch: OtlpBatch[Any], principal: Principal = ANONYMOUS) -> tuple[int, str]:
        """Hand the valid items on, as the caller's tenant's. Returns (rejected items,
        message) for partial_success."""
        consumer = self._consumers.get(batch.signal)
        if consumer is None:  # the transports check first; this guards a direct call
            raise PermanentError(f"no {batch.signal.value} pipeline takes this receiver's data")
        rejected, message = drop_invalid(batch)
        counters = self.host.telemetry.of(batch.signal) if self.host else None
        if rejected and counters:
            counters.receiver_refused.labels(self._receiver, self.transport, "invalid").inc(rejected)
        batch.tenant = principal.tenant
        strip_tenant_attribute(batch)
        if batch.item_count and self._authenticator is not None:
            # spans_per_second counts spans; every signal counts against bytes_per_second.
            spans = batch.item_count if batch.signal is Signal.TRACES else 0
            self._authenticator.admit(principal.tenant, spans, batch.nbytes)
        if batch.item_count:
            await consumer.consume(batch)
            if counters:
                counters.receiver_accepted.labels(self._receiver, self.transport).inc(batch.item_count)
        return rejected, message

    def observe(self, status: str, started: float, refused_items: int = 0, reason: str = "",
                signal: Signal = Signal.TRACES) -> None:
        if not self.host:
            return
        t = self.host.telemetry
        t.receiver_requests.labels(self._receiver, self.transport, status).inc()
        t.receiver_request_duration.labels(self._receiver, self.transport).observe(time.perf_counter() - started)
        if refused_items:
            t.of(signal).receiver_refused.labels(self._receiver, self.transport, reason).inc(refused_items)


TraceExportService = ExportService  # the name from before logs and metrics


def strip_tenant_attribute(batch: OtlpBatch[Any]) -> None:
    """Drop a `tracehouse.tenant` resource attribute a client sent: the tenant is what the
    server authenticated, never what the data claims."""
    for rs in batch.resources():
        attrs = rs.resource.attributes
        if any(kv.key == TENANT_ATTRIBUTE for kv in attrs):
            kept = [kv for kv in attrs if kv.key != TENANT_ATTRIBUTE]
            del attrs[:]
            attrs.extend(kept)
            batch.mark_mutated()


class _Transport(Protocol):
    handler: ExportService
    port: int | None

    async def start(self) -> None: ...

    def listener(self) -> Listener | None: ...

    async def shutdown(self) -> None: ...


class OtlpReceiver:
    def __init__(self, settings: Settings, config: OtlpReceiverConfig, next_consumer: Any):
        # Imported here: a receiver with only one protocol does not load the other stack.
        self._settings = settings
        self._servers: list[_Transport] = []
        consumers = signal_consumers(next_consumer)
        protocols = config.protocols
        if protocols.grpc is not None:
            from tracehouse.ingest.otlp.grpc import OtlpGrpcReceiver

            self._servers.append(OtlpGrpcReceiver(
                protocols.grpc, ExportService(settings, consumers, "grpc", protocols.grpc.auth), settings.logger))
        if protocols.http is not None:
            from tracehouse.ingest.otlp.http import OtlpHttpReceiver

            self._servers.append(OtlpHttpReceiver(
                protocols.http, ExportService(settings, consumers, "http", protocols.http.auth), settings.logger))

    @property
    def grpc_port(self) -> int | None:
        return next((s.port for s in self._servers if s.handler.transport == "grpc"), None)

    @property
    def http_port(self) -> int | None:
        return next((s.port for s in self._servers if s.handler.transport == "http"), None)

    def listeners(self) -> list[Listener]:
        return [listener for server in self._servers if (listener := server.listener()) is not None]

    async def start(self, host: Host) -> None:
        for server in self._servers:
            server.handler.bind(host)
            await server.start()

    async def shutdown(self) -> None:
        for server in self._servers:
            await server.shutdown()
