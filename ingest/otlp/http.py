"""OTLP/HTTP: `POST /v1/traces`, `/v1/logs`, `/v1/metrics` with protobuf or JSON bodies,
gzip or deflate encoded. A signal's path answers 404 when no pipeline of that signal
names the receiver, as the Collector's otlpreceiver does (it registers no handler).

A plain ASGI app (no framework): this is the hot path, and every check that can refuse
a request cheaply (path, method, content type, declared length) runs before the body is
read. The concurrency slot is taken only once the body is in (within `read_timeout`), so
slow or stalled senders cannot lock out the others; the server caps the headers' size
and the time to receive them (net/asgi_server.py). Status codes follow the OTLP spec: 400 for bad data, 413 over
the size limit, 415 for an unsupported content type, 429 / 503 with Retry-After when the
pipeline cannot take more right now.
"""

from __future__ import annotations

import asyncio
import math
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

from google.rpc import code_pb2

from tracehouse.net.asgi_server import AsgiServer
from tracehouse.core.auth import ANONYMOUS
from tracehouse.core.errors import (
    BadRequestError,
    PermanentError,
    PermissionDeniedError,
    RetryableError,
    UnauthenticatedError,
)
from tracehouse.core.component import Listener, ListenerRole, Signal
from tracehouse.core.pdata import BATCH_TYPES, OtlpBatch, TraceBatch
from tracehouse.ingest.otlp.config import HttpConfig
from tracehouse.ingest.otlp.encoding import decode_json, encode_export_response, encode_status
from tracehouse.ingest.otlp.errors import refusal_for
from tracehouse.ingest.otlp.receiver import ExportService

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_SUPPORTED = f"{PROTOBUF}, {JSON}"
# Bodies this large are decompressed and parsed on a worker thread, so one big request
# does not stall every other connection (zlib releases the GIL).
_OFFLOAD_BYTES = 1 << 20

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class HttpError(Exception):
    def __init__(self, status: int, message: str, *, grpc_code: int, retry_after: float | None = None,
                 refused_spans: int = 0, reason: str = "", close: bool = False):
        super().__init__(message)
        self.close = close  # the client stalled mid-body: the connection is dropped, not kept waiting
        self.status = status
        self.grpc_code = grpc_code
        self.retry_after = retry_after
        self.refused_spans = refused_spans
        self.reason = reason


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """Inflate gzip/deflate with a hard cap on the output, so a gzip bomb costs nothing.

    A gzip body may hold several members (RFC 1952 §2.2; `cat a.gz b.gz`, or a client that
    compresses in chunks): every member is inflated, as `gzip -d` does, under one cap for
    their sum. Stopping after the first would acknowledge spans that were never read."""
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise HttpError(415, f"unsupported Content-Encoding {encoding!r}; supported: gzip, deflate, identity",
                        grpc_code=code_pb2.INVALID_ARGUMENT)
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    out: list[bytes] = []
    size = 0
    data = body
    try:
        while True:
            inflater = zlib.decompressobj(wbits)
            chunk = inflater.decompress(data, limit + 1 - size)
            size += len(chunk)
            if size > limit or inflater.unconsumed_tail:
                raise HttpError(413, f"decompressed body exceeds the limit of {limit} bytes",
                                grpc_code=code_pb2.RESOURCE_EXHAUSTED)
            out.append(chunk)
            if not inflater.eof:
                raise HttpError(400, f"invalid {encoding} body: truncated stream", grpc_code=code_pb2.INVALID_ARGUMENT)
            data = inflater.unused_data
            if encoding == "gzip":
                data = data.lstrip(b"\x00")  # zero padding between members, as gzip(1) allows
            if not data:
                break
            if encoding != "gzip":
                raise HttpError(400, "invalid deflate body: data after the end of the stream",
                                grpc_code=code_pb2.INVALID_ARGUMENT)
    except zlib.error as exc:
        raise HttpError(400, f"invalid {encoding} body: {exc}", grpc_code=code_pb2.INVALID_ARGUMENT) from None
    return out[0] if len(out) == 1 else b"".join(out)


def decode_body(body: bytes, encoding: str, is_json: bool, limit: int,
                signal: Signal = Signal.TRACES) -> OtlpBatch[Any]:
    data = decompress(body, encoding, limit)
    batch_type = BATCH_TYPES[signal]
    if is_json:
        return batch_type.from_request(decode_json(data, batch_type.request_type))
    return batch_type.from_bytes(data)


class OtlpHttpApp:
    """The ASGI application; one instance per receiver."""

    def __init__(self, config: HttpConfig, handler: ExportService, logger: Any,
                 annotate: Callable[[Scope, TraceBatch], None] | None = None):
        self._config = config
        self._handler = handler
        self._log = logger
        self._active = 0
        # Adds what a request's headers say to its spans (the mlflow receiver's experiment id).
        self._annotate = annotate
        self._paths = config.signal_paths()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        media = _media_type(_header(scope, b"content-type"))
        is_json = media == JSON
        # Replies use the request's content type (OTLP spec); for unsupported types, JSON.
        reply_json = media != PROTOBUF
        refused, reason = 0, ""
        signal = self._paths.get(scope["path"], Signal.TRACES)
        try:
            status, body, headers = await self._handle(scope, receive, is_json)
        except HttpError as exc:
            refused, reason = exc.refused_spans, exc.reason
            status = exc.status
            headers = [(b"content-type", (JSON if reply_json else PROTOBUF).encode())]
            if exc.retry_after is not None:
                headers.append((b"retry-after", str(max(1, math.ceil(exc.retry_after))).encode()))
            if exc.close:
                headers.append((b"connection", b"close"))
            if status == 401:
                headers.append((b"www-authenticate", b'Bearer realm="tracehouse"'))
            body = encode_status(exc.grpc_code, str(exc), json=reply_json, retry_after_s=exc.retry_after)
        self._handler.observe(str(status), started, refused, reason, signal)
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _handle(self, scope: Scope, receive: Receive, is_json: bool) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        cfg = self._config
        signal = self._paths.get(scope["path"])
        if signal is None or not self._handler.serves(signal):
            raise HttpError(404, self._not_found(scope["path"], signal), grpc_code=code_pb2.NOT_FOUND)
        if scope["method"] != "POST":
            raise HttpError(405, f"method {scope['method']} not allowed; use POST", grpc_code=code_pb2.UNIMPLEMENTED)
        media = _media_type(_header(scope, b"content-type"))
        if media not in (PROTOBUF, JSON):
            raise HttpError(415, f"unsupported Content-Type {media or '(none)'!r}; supported: {_SUPPORTED}",
                            grpc_code=code_pb2.INVALID_ARGUMENT)
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > cfg.max_request_body_size:
            raise HttpError(413, f"body of {declared} bytes exceeds the limit of {cfg.max_request_body_size} bytes",
                            grpc_code=code_pb2.RESOURCE_EXHAUSTED)
        # Before the body is read: a caller without a valid key costs nothing more.
        principal = ANONYMOUS
        if self._handler.needs_auth:
            try:
                principal = self._handler.authenticate(
                    {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]})
            except (UnauthenticatedError, PermissionDeniedError) as exc:
                refusal = refusal_for(exc)
                raise HttpError(refusal.http_status, refusal.message, grpc_code=refusal.grpc_code,
                                reason=refusal.reason) from None
        # The body first, then a slot: a client that trickles or stalls its body must not
        # hold a slot a complete request could use (it holds its connection, bounded by
        # read_timeout).
        body = await self._read_body(receive)
        if self._active >= cfg.max_concurrent_requests:
            raise HttpError(503, "too many concurrent requests; retry later", grpc_code=code_pb2.UNAVAILABLE,
                            retry_after=1.0)
        self._active += 1
        try:
            encoding = (_header(scope, b"content-encoding") or "").strip().lower()
            try:
                if len(body) > _OFFLOAD_BYTES:
                    batch = await asyncio.to_thread(decode_body, body, encoding, is_json, cfg.max_request_body_size,
                                                    signal)
                else:
                    batch = decode_body(body, encoding, is_json, cfg.max_request_body_size, signal)
            except BadRequestError as exc:
                raise HttpError(400, str(exc), grpc_code=code_pb2.INVALID_ARGUMENT) from None
            batch.deadline = time.monotonic() + cfg.request_timeout
            if self._annotate is not None and isinstance(batch, TraceBatch):
                self._annotate(scope, batch)
            try:
                # asyncio.timeout, not wait_for: wait_for wraps the call in a task whose
                # exception and traceback form a cycle that pins the request body until a
                # full GC, which under sustained refusals looks like a leak.
                async with asyncio.timeout(cfg.request_timeout):
                    rejected, message = await self._handler.export(batch, principal)
            except TimeoutError:
                raise HttpError(503, "the pipeline did not accept the data in time; retry later",
                                grpc_code=code_pb2.UNAVAILABLE, retry_after=5.0) from None
            except Exception as exc:
                if not isinstance(exc, (RetryableError, PermanentError)):
                    # A bug, not the client's fault: it is asked to retry rather than lose data.
                    self._log.exception("unexpected error in the pipeline", error=str(exc))
                refusal = refusal_for(exc)
                raise HttpError(refusal.http_status, refusal.message, grpc_code=refusal.grpc_code,
                                retry_after=refusal.retry_after, refused_spans=batch.item_count,
                                reason=refusal.reason) from None
        finally:
            self._active -= 1
        content_type = JSON if is_json else PROTOBUF
        body = encode_export_response(rejected, message, json=is_json, signal=signal)
        return 200, body, [(b"content-type", content_type.encode())]

    def _not_found(self, path: str, signal: Signal | None) -> str:
        where = "; ".join(f"OTLP {s.value} are accepted at {', '.join(p for p, ps in self._paths.items() if ps is s)}"
                          for s in Signal if self._handler.serves(s))
        if signal is None:
            return f"unknown path {path!r}; {where}"
        return (f"no {signal.value} pipeline takes data from this receiver, so {path} is not served "
                f"(as in the OpenTelemetry Collector); {where}")

    async def _read_body(self, receive: Receive) -> bytes:
        try:
            async with asyncio.timeout(self._config.read_timeout):
                return await self._read_body_chunks(receive)
        except TimeoutError:
            raise HttpError(408, f"request body not received within {self._config.read_timeout:g}s",
                            grpc_code=code_pb2.DEADLINE_EXCEEDED, close=True) from None

    async def _read_body_chunks(self, receive: Receive) -> bytes:
        limit = self._config.max_request_body_size
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise HttpError(400, "client disconnected before sending the whole body",
                                grpc_code=code_pb2.CANCELLED)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise HttpError(413, f"body exceeds the limit of {limit} bytes", grpc_code=code_pb2.RESOURCE_EXHAUSTED)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


class OtlpHttpReceiver:
    def __init__(self, config: HttpConfig, handler: ExportService, logger: Any):
        self.handler = handler
        self._config = config
        self._log = logger
        self._server: AsgiServer | None = None
        self.port: int | None = None

    async def start(self) -> None:
        app = OtlpHttpApp(self._config, self.handler, self._log)
        server = AsgiServer(app, self._config.endpoint, name="otlp-http",
                            timeout_graceful_shutdown=self._config.request_timeout, tls=self._config.tls,
                            logger=self._log, max_header_bytes=self._config.max_request_header_size,
                            read_header_timeout=self._config.read_header_timeout)
        await server.start()
        self._server = server
        self.port = server.port
        tls = self._config.tls
        paths = [p for p, signal in self._config.signal_paths().items() if self.handler.serves(signal)]
        self._log.info("OTLP/HTTP receiver listening", endpoint=self._config.endpoint, port=self.port,
                       path=", ".join(paths), scheme=server.scheme,
                       client_auth=bool(tls and tls.client_ca_file), auth=self.handler.auth_description)

    def listener(self) -> Listener | None:
        server = self._server
        return None if server is None else Listener(ListenerRole.OTLP_HTTP, server.url, server.addresses)

    async def shutdown(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.stop()
