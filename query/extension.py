"""The `query_api` extension: serves the query HTTP API inside the service's event loop."""

from __future__ import annotations

from tracehouse.net.asgi_server import AsgiServer
from tracehouse.core.component import Host, Settings
from tracehouse.extensions.health_check.health import health_of
from tracehouse.query.app import create_app
from tracehouse.query.config import QueryApiConfig
from tracehouse.query.store import TraceStore


class QueryApiExtension:
    def __init__(self, settings: Settings, config: QueryApiConfig):
        self._settings = settings
        self._config = config
        self._log = settings.logger
        self._store: TraceStore | None = None
        self._server: AsgiServer | None = None
        self.port: int | None = None

    async def start(self, host: Host) -> None:
        cfg = self._config
        store = TraceStore(cfg.clickhouse, max_workers=cfg.max_workers)
        app = create_app(store, health_of(host), settings=cfg)
        server = AsgiServer(app, cfg.endpoint, name=str(self._settings.id), tls=cfg.tls, logger=self._log)
        self._store = store
        try:
            await server.start()
        except BaseException:
            self._store = None
            await store.close()
            raise
        self._server = server
        self.port = server.port
        self._log.info("query API listening", endpoint=cfg.endpoint, port=self.port, scheme=server.scheme,
                       client_auth=bool(cfg.tls and cfg.tls.client_ca_file),
                       database=cfg.clickhouse.database, table=cfg.clickhouse.traces_table_name)

    async def shutdown(self) -> None:
        """Stop accepting, finish in-flight requests, close the ClickHouse clients. Safe twice."""
        server, self._server = self._server, None
        store, self._store = self._store, None
        if server is not None:
            await server.stop()
        if store is not None:
            await store.close()
