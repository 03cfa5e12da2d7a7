"""OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export` on grpc.aio.

The method is registered with identity (de)serializers, so the handler gets the wire
bytes: they are parsed once into a TraceBatch that keeps them (a forwarding sidecar
never re-serializes). Refusals carry google.rpc.RetryInfo: OTLP clients retry
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
from tracehouse.net.endpoint import parse_endpoint
from tracehouse.net.tls import ServerTls
from tracehouse.core.pdata import TraceBatch
from tracehouse.ingest.otlp.config import GrpcConfig
from tracehouse.ingest.otlp.encoding import encode_export_response
from tracehouse.ingest.otlp.errors import refusal_for
from tracehouse.ingest.otlp.receiver import TraceExportService

SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"


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
    def __init__(self, config: GrpcConfig, handler: TraceExportService, logger: Any):
        self.handler = handler
        self._config = config
        self._log = logger
        self._server: grpc.aio.Server | None = None
        self._tls = ServerTls(config.tls, name="otlp-grpc", logger=logger) if config.tls is not None else None
        self._active = 0
        self.port: int | None = None

    async def _export(self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        started = time.perf_counter()
        if self._active >= self._config.max_concurrent_requests:
            self.handler.observe("UNAVAILABLE", started)
            await context.abort_with_status(_status(code_pb2.UNAVAILABLE, "too many concurrent requests; retry later", 1.0))
        self._active += 1
        spans = 0
        try:
            principal = ANONYMOUS
            if self.handler.needs_auth:
                principal = self.handler.authenticate(
                    {k.lower(): v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)})
            batch = TraceBatch.from_bytes(request)
            spans = batch.span_count
            remaining = context.time_remaining()
            batch.deadline = time.monotonic() + remaining if remaining is not None else None
            rejected, message = await self.handler.export(batch, principal)
        except Exception as exc:  # a malformed request (BadRequestError) included
            refusal = refusal_for(exc)
            if not isinstance(exc, (RetryableError, PermanentError)):
                self._log.exception("unexpected error in the pipeline", error=str(exc))
            status = _status(refusal.grpc_code, refusal.message, refusal.retry_after)  # RetryInfo if retryable
            self.handler.observe(status.code.name, started, spans, refusal.reason)
            await context.abort_with_status(status)
        finally:
            self._active -= 1
        self.handler.observe("OK", started)
        return encode_export_response(rejected, message, json=False)

    async def start(self) -> None:
        # The files load before the server exists: a bad certificate fails start-up cleanly.
        credentials = self._tls.grpc_credentials() if self._tls is not None else None
        max_bytes = int(self._config.max_recv_msg_size_mib * 1024 * 1024)
        self._server = grpc.aio.server(options=[
            ("grpc.max_receive_message_length", max_bytes),
            ("grpc.so_reuseport", 0),
        ])
        handler = grpc.method_handlers_generic_handler(SERVICE, {
            "Export": grpc.unary_unary_rpc_method_handler(self._export),
        })
        self._server.add_generic_rpc_handlers((handler,))
        host, port = parse_endpoint(self._config.endpoint)
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            if credentials is not None:
                self.port = self._server.add_secure_port(address, credentials)
            else:
                self.port = self._server.add_insecure_port(address)
        except RuntimeError as exc:
            raise OSError(f"cannot listen on {self._config.endpoint}: {exc}") from None
        await self._server.start()
        if self._tls is not None:
            self._tls.start()
        tls = self._config.tls
        self._log.info("OTLP/gRPC receiver listening", endpoint=self._config.endpoint, port=self.port,
                       tls=tls is not None, client_auth=bool(tls and tls.client_ca_file),
                       auth=self.handler.auth_description)

    async def shutdown(self) -> None:
        server, self._server = self._server, None
        if self._tls is not None:
            await self._tls.close()
        if server is not None:
            # Refuse new calls, give in-flight ones time to finish (their spans may be
            # waiting on the exporter), then stop.
            await server.stop(grace=30.0)
