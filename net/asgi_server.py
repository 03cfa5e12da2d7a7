"""Run an ASGI app with uvicorn inside the service's own event loop.

The service owns signals and shutdown order, so uvicorn must neither install signal
handlers nor exit the process on a bind error: we bind the socket ourselves first.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Generator
from typing import Any

import uvicorn

from tracehouse.net.endpoint import bind_tcp


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class AsgiServer:
    def __init__(self, app: Any, endpoint: str, *, name: str, timeout_graceful_shutdown: float = 10.0,
                 h11_max_incomplete_event_size: int | None = None):
        self._app = app
        self._endpoint = endpoint
        self._name = name
        self._grace = timeout_graceful_shutdown
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None
        self.port: int | None = None

    async def start(self) -> None:
        sock = bind_tcp(self._endpoint)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app, lifespan="off", log_config=None, access_log=False, server_header=False,
            timeout_graceful_shutdown=math.ceil(self._grace), timeout_keep_alive=30,
        )
        self._server = _EmbeddedServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name=f"asgi-{self._name}")
        while not self._server.started:
            if self._task.done():
                self._task.result()  # surfaces the start-up error
                raise RuntimeError(f"{self._name}: server stopped during start-up")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish (up to the grace period)."""
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._server = None
        self._task = None
