"""The `otlp` receiver: OTLP/gRPC and OTLP/HTTP front doors onto one pipeline.

Both transports share `TraceExportService`: validate ids, hand the batch on, count the
outcome. A client is answered only after `consume()` returned, that is after its spans
reached the durable point (ClickHouse in the all-in-one, Kafka in the sidecar).
"""

from __future__ import annotations

import time
from typing import Protocol

from tracehouse.core.component import Host, Settings, TracesConsumer
from tracehouse.core.pdata import TraceBatch
from tracehouse.ingest.otlp.config import OtlpReceiverConfig
from tracehouse.ingest.otlp.validate import drop_invalid_spans


class TraceExportService:
    """What both transports do with a decoded request."""

    def __init__(self, settings: Settings, next_consumer: TracesConsumer, transport: str):
        self._next = next_consumer
        self._settings = settings
        self.transport = transport
        self.host: Host | None = None
        self._receiver = str(settings.id)

    async def export(self, batch: TraceBatch) -> tuple[int, str]:
        """Hand the valid spans on. Returns (rejected spans, message) for partial_success."""
        rejected, message = drop_invalid_spans(batch)
        if rejected and self.host:
            self.host.telemetry.receiver_refused_spans.labels(self._receiver, self.transport, "invalid").inc(rejected)
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

            self._servers.append(OtlpGrpcReceiver(protocols.grpc, TraceExportService(settings, next_consumer, "grpc"),
                                                  settings.logger))
        if protocols.http is not None:
            from tracehouse.ingest.otlp.http import OtlpHttpReceiver

            self._servers.append(OtlpHttpReceiver(protocols.http, TraceExportService(settings, next_consumer, "http"),
                                                  settings.logger))

    @property
    def grpc_port(self) -> int | None:
        return next((s.port for s in self._servers if s.handler.transport == "grpc"), None)

    @property
    def http_port(self) -> int | None:
        return next((s.port for s in self._servers if s.handler.transport == "http"), None)

    async def start(self, host: Host) -> None:
        for server in self._servers:
            server.handler.host = host
            await server.start()

    async def shutdown(self) -> None:
        for server in self._servers:
            await server.shutdown()
