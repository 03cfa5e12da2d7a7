"""Health of a running service as HTTP: `/healthz`, `/readyz` and `/metrics`, from a bare
ASGI app (no FastAPI). The `health_check` extension serves it; the query API answers the
same routes with the same bodies."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from tracehouse.core.component import Host, Status

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_READY = {Status.OK.value, Status.RECOVERABLE_ERROR.value}


class MetricsSource(Protocol):
    def render(self) -> bytes: ...


@runtime_checkable
class HealthSource(Protocol):
    """What health endpoints need from the running service (`Service` has it)."""

    @property
    def telemetry(self) -> MetricsSource: ...

    def healthy(self) -> bool: ...

    def ready(self) -> bool: ...

    def statuses(self) -> Mapping[str, tuple[str, str | None]]: ...


class _StatusHealth:
    """Health derived from component statuses, for a host without ready()/healthy()."""

    def __init__(self, host: Host):
        self._host = host

    @property
    def telemetry(self) -> MetricsSource:
        return self._host.telemetry

    def statuses(self) -> Mapping[str, tuple[str, str | None]]:
        return self._host.statuses()

    def healthy(self) -> bool:
        return all(str(s) != Status.FATAL_ERROR.value for s, _ in self.statuses().values())

    def ready(self) -> bool:
        return all(str(s) in _READY for s, _ in self.statuses().values())


def health_of(host: Any) -> HealthSource:
    return host if isinstance(host, HealthSource) else _StatusHealth(host)


def readiness_body(health: HealthSource) -> tuple[int, dict[str, Any]]:
    ready = health.ready()
    components = {name: {"status": str(status), "error": error}
                  for name, (status, error) in sorted(health.statuses().items())}
    return (200 if ready else 503), {"status": "ready" if ready else "not_ready", "components": components}


Send = Callable[[dict[str, Any]], Awaitable[None]]


def health_app(health: HealthSource) -> Callable[[dict[str, Any], Any, Send], Awaitable[None]]:
    async def app(scope: dict[str, Any], receive: Any, send: Send) -> None:
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if method not in ("GET", "HEAD"):
            return await _respond(send, 405, b'{"error":"method not allowed"}', "application/json")
        if path == "/healthz":
            ok = health.healthy()
            body = json.dumps({"status": "ok" if ok else "unhealthy"}).encode()
            return await _respond(send, 200 if ok else 503, body, "application/json")
        if path == "/readyz":
            status, payload = readiness_body(health)
            return await _respond(send, status, json.dumps(payload).encode(), "application/json")
        if path == "/metrics":
            return await _respond(send, 200, health.telemetry.render(), PROMETHEUS_CONTENT_TYPE)
        body = json.dumps({"error": f"no route {path}; try /healthz, /readyz or /metrics"}).encode()
        await _respond(send, 404, body, "application/json")

    return app


async def _respond(send: Send, status: int, body: bytes, content_type: str) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
