"""The injection webhook's HTTPS server: POST /mutate (AdmissionReview v1), /healthz, /readyz.

The API server calls admission webhooks over TLS only; the certificate (a Secret, from
cert-manager or made by hand) is reloaded when the files change, as tracehouse's
listeners do, so a renewal needs no restart. A body that is not an AdmissionReview gets
400 with the reason; the API server then applies the webhook's failurePolicy.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from tracehouse.core.inject.patch import ReviewError, Template, review
from tracehouse.net.asgi_server import AsgiServer
from tracehouse.net.tls import TlsServerConfig

MAX_BODY = 4 << 20  # the API server's requests are far smaller (a pod spec)

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class WebhookApp:
    """A bare ASGI app: three routes do not need a framework."""

    def __init__(self, template: Template, logger: Any = None):
        self._template = template
        self._log = logger if logger is not None else structlog.get_logger("tracehouse").bind(component="inject")
        self.reviews = 0
        self.injected = 0

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path in ("/healthz", "/readyz"):
            await _reply(send, 200, {"status": "ok"})
        elif path != "/mutate":
            await _reply(send, 404, {"error": f"no route {path}; the webhook answers POST /mutate"})
        elif method != "POST":
            await _reply(send, 405, {"error": "POST an AdmissionReview to /mutate"})
        else:
            await self._mutate(receive, send)

    async def _mutate(self, receive: Receive, send: Send) -> None:
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > MAX_BODY:
                await _reply(send, 413, {"error": f"body over {MAX_BODY} bytes"})
                return
            if not message.get("more_body"):
                break
        try:
            answer = review(self._template, json.loads(body))
        except json.JSONDecodeError as exc:
            await _reply(send, 400, {"error": f"the body is not JSON: {exc}"})
            return
        except ReviewError as exc:
            await _reply(send, 400, {"error": str(exc)})
            return
        self.reviews += 1
        response = answer["response"]
        injected = "patch" in response
        self.injected += injected
        self._log.info("admission review", uid=response["uid"], injected=injected,
                       warnings=response.get("warnings", []))
        await _reply(send, 200, answer)


async def _reply(send: Send, status: int, payload: dict[str, Any]) -> None:
    data = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


def make_server(template: Template, endpoint: str, cert_file: str, key_file: str,
                reload_interval: float = 60.0) -> AsgiServer:
    tls = TlsServerConfig(cert_file=cert_file, key_file=key_file, reload_interval=reload_interval)
    return AsgiServer(WebhookApp(template), endpoint, name="inject-webhook", tls=tls)


async def serve(template: Template, endpoint: str, cert_file: str, key_file: str) -> None:
    """Run until SIGTERM or SIGINT."""
    server = make_server(template, endpoint, cert_file, key_file)
    await server.start()
    structlog.get_logger("tracehouse").info("injection webhook listening", endpoint=endpoint, port=server.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop()
