"""The `query_api` extension: serves the query HTTP API inside the service's event loop."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

from tracehouse.core.pdata import DEFAULT_TENANT
from tracehouse.extensions.bearertokenauth.keys import DEFAULT_TENANT_NAME
from tracehouse.net.asgi_server import AsgiServer
from tracehouse.core.auth import resolve_authenticator
from tracehouse.core.component import Host, Listener, ListenerRole, Settings
from tracehouse.extensions.health_check.health import health_of
from tracehouse.query.access import Access
from tracehouse.query.app import create_app
from tracehouse.query.config import QueryApiConfig
from tracehouse.query.store import StoreError, TraceStore


class QueryApiExtension:
    def __init__(self, settings: Settings, config: QueryApiConfig):
        self._settings = settings
        self._config = config
        self._log = settings.logger
        self._store: TraceStore | None = None
        self._server: AsgiServer | None = None
        self._retention: asyncio.Task[None] | None = None
        self.port: int | None = None

    async def start(self, host: Host) -> None:
        cfg = self._config
        access = Access(resolve_authenticator(host, cfg.auth))
        store = TraceStore(cfg.clickhouse, max_workers=cfg.max_workers, max_query_memory_mib=cfg.max_query_memory_mib,
                           exact_totals_max_traces=cfg.exact_totals_max_traces, read_nice=cfg.read_nice)
        app = create_app(store, health_of(host), settings=cfg, access=access)
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
        if cfg.retention.tenants:
            self._retention = asyncio.create_task(self._expire_forever(store), name="retention")
        self._log.info("query API listening", endpoint=cfg.endpoint, port=self.port, scheme=server.scheme,
                       client_auth=bool(cfg.tls and cfg.tls.client_ca_file),
                       database=cfg.clickhouse.database, table=cfg.clickhouse.traces_table_name,
                       auth=cfg.auth.authenticator if cfg.auth else "off: every caller reads the default tenant")

    async def _expire_forever(self, store: TraceStore) -> None:
        retention = self._config.retention
        while True:
            for name, keep in retention.tenants.items():
                tenant = DEFAULT_TENANT if name == DEFAULT_TENANT_NAME else name
                before = datetime.now(UTC) - timedelta(seconds=keep)
                try:
                    await store.expire(tenant, before)
                    self._log.info("retention applied", tenant=name, deleted_before=before.isoformat())
                except StoreError as exc:
                    self._log.warning("retention not applied; next check will retry", tenant=name, error=str(exc))
            await asyncio.sleep(retention.check_interval)

    def listeners(self) -> list[Listener]:
        server = self._server
        return [] if server is None else [Listener(ListenerRole.QUERY, server.url, server.addresses)]

    async def shutdown(self) -> None:
        """Stop accepting, finish in-flight requests, close the ClickHouse clients. Safe twice."""
        task, self._retention = self._retention, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        server, self._server = self._server, None
        store, self._store = self._store, None
        if server is not None:
            await server.stop()
        if store is not None:
            await store.close()
