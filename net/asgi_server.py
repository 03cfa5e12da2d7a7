"""Run an ASGI app with uvicorn inside the service's own event loop.

The service owns signals and shutdown order, so uvicorn must neither install signal
handlers nor exit the process on a bind error: we bind the socket ourselves first. With
`tls`, the listener speaks only TLS, from a context tracehouse builds (net/tls.py) so the
certificate can be reloaded without a restart.

uvicorn's HTTP/1.1 protocol (httptools) has no limit on the size of a request's headers
and no deadline for receiving them: a client could send 64 MB of headers, or open
connections and send a byte of header a minute, and be served. `HardenedHttpProtocol`
adds what Go's net/http gives the Collector: a cap on the request head
(`max_header_bytes`, answered 431) and `read_header_timeout` from the connection's
opening (or the next request's first byte) to the end of its head (answered 408, then
closed). Reading the body is the application's business: it bounds it itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import ssl
from collections.abc import Generator
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tracehouse.net.endpoint import bind_tcp, client_url
from tracehouse.net.tls import ServerTls, TlsServerConfig

# Go's http.DefaultMaxHeaderBytes (1 MiB), which the Collector's confighttp servers use.
DEFAULT_MAX_HEADER_BYTES = 1 << 20
# The Collector's confighttp default read_header_timeout.
DEFAULT_READ_HEADER_TIMEOUT_S = 60.0


# After refusing a request, how long the connection still reads (and drops) what the client
# sends before closing. Closing with unread data makes the kernel reset the connection, and a
# reset can discard the refusal before the client reads it; Go's server lingers likewise.
LINGER_S = 1.0


def _reply_and_close(transport: asyncio.BaseTransport, status: bytes, message: str) -> None:
    body = message.encode("ascii")
    transport.write(b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\n"  # type: ignore[attr-defined]
                    b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body)
    if isinstance(transport, asyncio.WriteTransport) and transport.can_write_eof():
        transport.write_eof()  # the reply, then FIN; reading goes on until the linger ends
        asyncio.get_running_loop().call_later(LINGER_S, transport.close)
    else:
        transport.close()


class HardenedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a request head size cap and a head read deadline."""

    max_header_bytes = DEFAULT_MAX_HEADER_BYTES
    read_header_timeout = DEFAULT_READ_HEADER_TIMEOUT_S

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # between a message's first byte (or the connection's start) and its head's end
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # lingering after a refusal: read and drop
        super().data_received(data)
        if self._in_head and not self.transport.is_closing():
            # Counted after parsing: bytes of a head that ended in this chunk do not count.
            self._head_bytes += len(data)
            if self._head_bytes > self.max_header_bytes:
                self._cancel_head_timer()
                self._refused = True
                _reply_and_close(self.transport, b"431 Request Header Fields Too Large",
                                 f"request headers exceed the limit of {self.max_header_bytes} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0
        self._arm_head_timer()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_head_timer()
        super().on_headers_complete()

    def _arm_head_timer(self) -> None:
        if self._head_timer is None and self.read_header_timeout > 0:
            self._head_timer = self.loop.call_later(self.read_header_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._in_head and not self.transport.is_closing():
            self._refused = True
            _reply_and_close(self.transport, b"408 Request Timeout",
                             f"request headers not received within {self.read_header_timeout:g}s")

    def timeout_keep_alive_handler(self) -> None:
        self._cancel_head_timer()
        super().timeout_keep_alive_handler()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # An idle keep-alive connection is uvicorn's keep-alive timeout's business until the
        # next request's first byte (on_message_begin arms the head deadline again). A next
        # request whose head is already arriving keeps its deadline.
        if not self.pipeline and not self._in_head:
            self._cancel_head_timer()


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class _Config(uvicorn.Config):
    """uvicorn's config with our own SSLContext: uvicorn would build one from file names that it
    never reloads."""

    def __init__(self, *args: Any, ssl_context: ssl.SSLContext | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._ssl_context = ssl_context

    def load(self) -> None:
        super().load()
        if self._ssl_context is not None:
            self.ssl = self._ssl_context


class AsgiServer:
    def __init__(self, app: Any, endpoint: str, *, name: str, timeout_graceful_shutdown: float = 10.0,
                 tls: TlsServerConfig | None = None, logger: Any = None,
                 max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
                 read_header_timeout: float = DEFAULT_READ_HEADER_TIMEOUT_S):
        self._app = app
        self._endpoint = endpoint
        self._name = name
        self._grace = timeout_graceful_shutdown
        self._protocol = type("HttpProtocol", (HardenedHttpProtocol,), {
            "max_header_bytes": max_header_bytes, "read_header_timeout": read_header_timeout})
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None
        self.tls = ServerTls(tls, name=name, logger=logger) if tls is not None else None
        self.port: int | None = None
        self.addresses: tuple[str, ...] = ()  # what is bound: 127.0.0.1:4318, [::1]:4318

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    @property
    def url(self) -> str:
        """What a client on this machine dials (once started)."""
        assert self.port is not None, "not started"
        return client_url(self.scheme, self._endpoint, self.port)

    async def start(self) -> None:
        # The files load before the port is bound: a bad certificate fails start-up cleanly.
        context = self.tls.ssl_context(alpn=["http/1.1"]) if self.tls is not None else None
        sockets = bind_tcp(self._endpoint)
        self.port = sockets[0].getsockname()[1]
        self.addresses = tuple(_address(s) for s in sockets)
        config = _Config(
            self._app, lifespan="off", log_config=None, access_log=False, server_header=False,
            timeout_graceful_shutdown=math.ceil(self._grace), timeout_keep_alive=30, ssl_context=context,
            http=self._protocol,
            # No route speaks WebSocket: "auto" would import the websockets package into
            # every process (the sidecar's idle RSS included) to answer upgrades nobody sends.
            ws="none",
        )
        self._server = _EmbeddedServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=sockets), name=f"asgi-{self._name}")
        while not self._server.started:
            if self._task.done():
                self._task.result()  # surfaces the start-up error
                raise RuntimeError(f"{self._name}: server stopped during start-up")
            await asyncio.sleep(0.01)
        if self.tls is not None:
            self.tls.start()

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish (up to the grace period)."""
        if self.tls is not None:
            await self.tls.close()
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        reaper = asyncio.create_task(_abort_unanswered_closes(self._server)) if self.tls is not None else None
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        finally:
            if reaper is not None:
                reaper.cancel()
        self._server = None
        self._task = None


def _address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if sock.family == socket.AF_INET6 else f"{host}:{port}"


# How long a closing TLS connection may wait for the client's close_notify once its data is out.
_TLS_CLOSE_WAIT_S = 1.0


async def _abort_unanswered_closes(server: uvicorn.Server) -> None:
    """At shutdown uvicorn closes idle keep-alive connections and waits for them to go. Over
    TLS a close waits for the client's close_notify, which a client with an idle pooled
    connection sends only when it next reads: asyncio would hold each such connection (and
    so the shutdown) for 30 s. Abort them once what they had to send is out."""
    loop = asyncio.get_running_loop()
    closing_since: dict[Any, float] = {}
    while True:
        await asyncio.sleep(0.1)
        now = loop.time()
        for connection in list(server.server_state.connections):
            transport = getattr(connection, "transport", None)
            if transport is None or not transport.is_closing():
                continue
            since = closing_since.setdefault(transport, now)
            if now - since >= _TLS_CLOSE_WAIT_S and transport.get_write_buffer_size() == 0:
                transport.abort()
