"""The `clickhouse_http` extension: ClickHouse's HTTP interface on its own port, over the
all-in-one's embedded engine, so ClickHouse clients (Grafana's ClickHouse plugin,
clickhouse-connect, curl) read what tracehouse stored."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from tracehouse.core.component import Host, Listener, ListenerRole, Settings
from tracehouse.extensions.clickhouse_http.app import ClickHouseHttpApp, EndpointSettings
from tracehouse.extensions.clickhouse_http.config import ClickHouseHttpConfig
from tracehouse.extensions.clickhouse_http.engine import Caps, Engine, ServerInfo
from tracehouse.net.asgi_server import AsgiServer


class ClickHouseHttpEndpoint:
    def __init__(self, settings: Settings, config: ClickHouseHttpConfig):
        self._settings = settings
        self._config = config
        self._log = settings.logger
        self._engine: Engine | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._server: AsgiServer | None = None
        self.port: int | None = None

    async def start(self, host: Host) -> None:
        cfg = self._config
        if not cfg.clickhouse.embedded:
            self._log.info("ClickHouse HTTP endpoint not started: ClickHouse is a server with its own HTTP "
                           "interface; point clients at it", clickhouse=cfg.clickhouse.endpoint)
            return
        caps = Caps(max_execution_time_s=cfg.max_execution_time, max_memory_usage=cfg.max_memory_usage_mib << 20,
                    max_result_bytes=cfg.max_result_mib << 20)
        engine = Engine(cfg.clickhouse.endpoint, caps)
        try:
            info = await asyncio.to_thread(engine.open)
        except Exception as exc:
            # As the query API: the engine's data directory may be unusable now (a full disk,
            # a bad mount) and fixed later; each query opens it again and fails until then.
            self._log.warning("embedded ClickHouse cannot be opened yet; queries fail until it can",
                              clickhouse=cfg.clickhouse.endpoint, error=str(exc))
            info = ServerInfo(version="", timezone="UTC")
        executor = ThreadPoolExecutor(max_workers=cfg.max_concurrent_queries, thread_name_prefix="clickhouse-http")
        app = ClickHouseHttpApp(engine, info, EndpointSettings(
            username=cfg.username, password=cfg.password, database=cfg.database, display_name=cfg.display_name,
            max_body_bytes=cfg.max_body_bytes), executor, logger=self._log)
        server = AsgiServer(app.asgi, cfg.endpoint, name=str(self._settings.id), tls=cfg.tls, logger=self._log)
        self._engine, self._executor = engine, executor
        try:
            await server.start()
        except BaseException:
            await self.shutdown()
            raise
        self._server = server
        self.port = server.port
        self._log.info("ClickHouse HTTP endpoint listening", endpoint=cfg.endpoint, port=self.port, scheme=server.scheme,
                       database=cfg.database, version=info.version, read_only=True,
                       max_execution_time=cfg.max_execution_time, max_memory_usage_mib=cfg.max_memory_usage_mib,
                       password_set=bool(cfg.password), allow_with_tenants=cfg.allow_with_tenants)

    def listeners(self) -> list[Listener]:
        server = self._server
        return [] if server is None else [Listener(ListenerRole.CLICKHOUSE_HTTP, server.url, server.addresses)]

    async def shutdown(self) -> None:
        """Stop accepting, let running queries finish, release the engine. Safe twice."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop()
        executor, self._executor = self._executor, None
        if executor is not None:
            # Queued queries are dropped; running ones end within max_execution_time.
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.close()
