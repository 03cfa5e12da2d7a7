"""The embedded uvicorn server speaks HTTP only: no route serves WebSocket, so an upgrade
request is answered as the plain HTTP request it also is, and the websockets package is
never imported (it would sit in every process's memory, the sidecar's included)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from typing import Any

from tracehouse.net.asgi_server import AsgiServer

UPGRADE = (b"GET /v1/traces HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
           b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")


async def _http_only(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http", scope["type"]
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4")]})
    await send({"type": "http.response.body", "body": b"http"})


async def test_a_websocket_upgrade_is_answered_as_http() -> None:
    server = AsgiServer(_http_only, "127.0.0.1:0", name="probe")
    await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(UPGRADE)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        body = await asyncio.wait_for(reader.readexactly(4), 5)
        writer.close()
    finally:
        await server.stop()
    assert head.startswith(b"HTTP/1.1 200") and body == b"http"


def test_serving_http_never_imports_websockets() -> None:
    script = textwrap.dedent("""
        import asyncio, sys
        from tracehouse.net.asgi_server import AsgiServer

        async def app(scope, receive, send):
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        async def main():
            server = AsgiServer(app, "127.0.0.1:0", name="probe")
            await server.start()
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
            assert (await reader.readline()).startswith(b"HTTP/1.1 204")
            writer.close()
            await server.stop()
            print(sorted(m for m in sys.modules if m.split(".")[0] == "websockets"))

        asyncio.run(main())
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
