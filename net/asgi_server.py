"""Run an ASGI app with uvicorn inside the service's own event loop.

The service owns signals and shutdown order, so uvicorn must neither install signal
handlers nor exit the process on a bind error: we bind the socket ourselves first. With
`tls`, the listener speaks only TLS, from a context tracehouse builds (net/tls.py) so the
certificate can be reloaded without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import ssl
from collections.abc import Generator
from typing import Any

import uvicorn

from tracehouse.net.endpoint import bind_tcp
from tracehouse.net.tls import ServerTls, TlsServerConfig


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
                 h11_max_incomplete_event_size: int | None = None, tls: TlsServerConfig | None = None,
                 logger: Any = None):
        self._app = app
        self._endpoint = endpoint
        self._name = name
        self._grace = timeout_graceful_shutdown
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None
        self.tls = ServerTls(tls, name=name, logger=logger) if tls is not None else None
        self.port: int | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    async def start(self) -> None:
        # The files load before the port is bound: a bad certificate fails start-up cleanly.
        context = self.tls.ssl_context(alpn=["http/1.1"]) if self.tls is not None else None
        sock = bind_tcp(self._endpoint)
        self.port = sock.getsockname()[1]
        config = _Config(
            self._app, lifespan="off", log_config=None, access_log=False, server_header=False,
            timeout_graceful_shutdown=math.ceil(self._grace), timeout_keep_alive=30, ssl_context=context,
        )
        self._server = _EmbeddedServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name=f"asgi-{self._name}")
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
