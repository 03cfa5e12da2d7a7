"""The `health_check` extension: `/healthz`, `/readyz` and `/metrics` without the query API.

The sidecar and the writer have no query API (it needs ClickHouse), yet Kubernetes probes
and Prometheus still need an endpoint. This serves the same three routes as the query API
from a bare ASGI app: no FastAPI, no ClickHouse client, so the sidecar stays small.
Readiness never depends on Kafka being reachable (a failing exporter reports a
recoverable error, which is still ready): an unready sidecar would take the app's pod out
of its Service.
"""

from __future__ import annotations

from typing import Any

from tracehouse.core.component import Host, Listener, ListenerRole, Settings
from tracehouse.extensions.health_check.config import HealthCheckConfig
from tracehouse.extensions.health_check.health import health_app, health_of


class HealthCheckExtension:
    def __init__(self, settings: Settings, config: HealthCheckConfig):
        self._settings = settings
        self._config = config
        self._server: Any = None
        self.port: int | None = None

    async def start(self, host: Host) -> None:
        from tracehouse.net.asgi_server import AsgiServer

        server = AsgiServer(health_app(health_of(host)), self._config.endpoint, name=str(self._settings.id),
                            tls=self._config.tls, logger=self._settings.logger)
        await server.start()
        self._server = server
        self.port = server.port
        self._settings.logger.info("health endpoints listening", endpoint=self._config.endpoint, port=self.port,
                                   scheme=server.scheme, paths="/healthz /readyz /metrics")

    def listeners(self) -> list[Listener]:
        server = self._server
        return [] if server is None else [Listener(ListenerRole.HEALTH, server.url, server.addresses)]

    async def shutdown(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.stop()
