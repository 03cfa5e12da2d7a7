"""OTLP/gRPC: `opentelemetry.proto.collector.{trace,logs,metrics}.v1.{Trace,Logs,Metrics}Service/Export`
on grpc.aio.

A signal's service is registered only when a pipeline of that signal names the receiver;
calls to the others get UNIMPLEMENTED from gRPC itself, as from the Collector. The
methods are registered with identity (de)serializers, so the handler gets the wire
bytes: they are parsed once into a batch that keeps them (a forwarding sidecar never
re-serializes). Refusals carry google.rpc.RetryInfo: OTLP clients retry
RESOURCE_EXHAUSTED only when it is present.
"""

from __future__ import annotations

import time
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from tracehouse.core.auth import ANONYMOUS
from tracehouse.core.errors import PermanentError, RetryableError
from tracehouse.net.endpoint import ListenAddress, bind_error, client_url, listen_addresses, listen_error
from tracehouse.net.tls import ServerTls
from tracehouse.core.component import Listener, ListenerRole, Signal
from tracehouse.core.pdata import BATCH_TYPES
from tracehouse.ingest.otlp.config import GrpcConfig
from tracehouse.ingest.otlp.encoding import encode_export_response
from tracehouse.ingest.otlp.errors import refusal_for
from tracehouse.ingest.otlp.receiver import ExportService

SERVICES = {
    Signal.TRACES: "opentelemetry.proto.collector.trace.v1.TraceService",
    Signal.LOGS: "opentelemetry.proto.collector.logs.v1.LogsService",
    Signal.METRICS: "opentelemetry.proto.collector.metrics.v1.MetricsService",
}
SERVICE = SERVICES[Signal.TRACES]


def _status(code: int, message: str, retry_after: float | None = None) -> grpc.Status:
    details = []
    if retry_after is not None:
        info = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(
            seconds=int(retry_after), nanos=int((retry_after % 1) * 1e9)))
        packed = any_pb2.Any()
        packed.Pack(info)
        details.append(packed)
    return rpc_status.to_status(status_pb2.Status(code=code, message=message, details=details))


class OtlpGrpcReceiver:
    def __init__(self, config: GrpcConfig, handler: ExportService, logger: Any):
        self.handler = handler
        self._config = config
        self._log = logger
        self._server: grpc.aio.Server | None = None
        self._tls = ServerTls(config.tls, name="otlp-grpc", logger=logger) if config.tls is not None else None
        self._active = 0
        self.port: int | None = None
        self.addresses: tuple[str, ...] = ()

    async def _export(self, signal: Signal, request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        started = time.perf_counter()
        if self._active >= self._config.max_concurrent_requests:
            self.handler.observe("UNAVAILABLE", started, signal=signal)
            await context.abort_with_status(_status(code_pb2.UNAVAILABLE, "too many concurrent requests; retry later", 1.0))
        self._active += 1
        items = 0
        try:
            principal = ANONYMOUS
            if self.handler.needs_auth:
                principal = self.handler.authenticate(
                    {k.lower(): v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)})
            batch = BATCH_TYPES[signal].from_bytes(request)
            items = batch.item_count
            remaining = context.time_remaining()
            batch.deadline = time.monotonic() + remaining if remaining is not None else None
            rejected, message = await self.handler.export(batch, principal)
        except Exception as exc:  # a malformed request (BadRequestError) included
            refusal = refusal_for(exc)
            if not isinstance(exc, (RetryableError, PermanentError)):
                self._log.exception("unexpected error in the pipeline", error=str(exc))
            status = _status(refusal.grpc_code, refusal.message, refusal.retry_after)  # RetryInfo if retryable
            self.handler.observe(status.code.name, started, items, refusal.reason, signal)
            await context.abort_with_status(status)
        finally:
            self._active -= 1
        self.handler.observe("OK", started, signal=signal)
        return encode_export_response(rejected, message, json=False, signal=signal)

    def _exporter(self, signal: Signal) -> Any:
        # A coroutine function of its own per signal: grpc.aio runs non-coroutine handlers on threads.
        async def export(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
            return await self._export(signal, request, context)

        return export

    async def start(self) -> None:
        # The files load before the server exists: a bad certificate fails start-up cleanly.
        credentials = self._tls.grpc_credentials() if self._tls is not None else None
        max_bytes = int(self._config.max_recv_msg_size_mib * 1024 * 1024)
        self._server = grpc.aio.server(options=[
            ("grpc.max_receive_message_length", max_bytes),
            ("grpc.so_reuseport", 0),
        ])
        self._server.add_generic_rpc_handlers(tuple(
            grpc.method_handlers_generic_handler(SERVICES[signal], {
                "Export": grpc.unary_unary_rpc_method_handler(self._exporter(signal)),
            })
            for signal in Signal if self.handler.serves(signal)))
        try:
            self.port, self.addresses = self._add_ports(self._server, credentials)
        except OSError:
            # gRPC releases the addresses it did bind only when a started server stops.
            server, self._server = self._server, None
            await server.start()
            await server.stop(None)
            raise
        await self._server.start()
        if self._tls is not None:
            self._tls.start()
        tls = self._config.tls
        self._log.info("OTLP/gRPC receiver listening", endpoint=self._config.endpoint, port=self.port,
                       signals=sorted(s.value for s in self.handler.signals),
                       tls=tls is not None, client_auth=bool(tls and tls.client_ca_file),
                       auth=self.handler.auth_description)

    def _add_ports(self, server: grpc.aio.Server, credentials: grpc.ServerCredentials | None) -> tuple[int, tuple[str, ...]]:
        """Every address of the endpoint, one by one: given `localhost`, gRPC itself binds
        whichever of 127.0.0.1 and ::1 it can and succeeds if one is free, so another process
        holding the other would silently get this receiver's clients."""
        addresses = listen_addresses(self._config.endpoint)
        port = addresses[0].port
        bound: list[str] = []
        for address in addresses:
            target = str(ListenAddress(address.family, address.host, port))
            try:
                got = (server.add_secure_port(target, credentials) if credentials is not None
                       else server.add_insecure_port(target))
            except RuntimeError as exc:  # gRPC says only "Failed to bind": ask the kernel why
                failed = ListenAddress(address.family, address.host, port)
                reason = bind_error(failed) or str(exc)
                raise OSError(listen_error(self._config.endpoint, failed, reason, len(addresses))) from None
            port = got
            bound.append(str(ListenAddress(address.family, address.host, port)))
        return port, tuple(bound)

    def listener(self) -> Listener | None:
        if self._server is None or self.port is None:
            return None
        scheme = "https" if self._tls is not None else "http"
        return Listener(ListenerRole.OTLP_GRPC, client_url(scheme, self._config.endpoint, self.port), self.addresses)

    async def shutdown(self) -> None:
        server, self._server = self._server, None
        if self._tls is not None:
            await self._tls.close()
        if server is not None:
            # Refuse new calls, give in-flight ones time to finish (their spans may be
            # waiting on the exporter), then stop.
            await server.stop(grace=30.0)
