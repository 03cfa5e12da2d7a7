"""The `mlflow` receiver: an MLflow tracking server on its own port (5000 by default).

Spans (OTLP on `/v1/traces`, or a `traces.json` upload) go down the receiver's traces
pipeline like any receiver's: processors, Kafka where configured, ClickHouse. What else
an MLflow client keeps in its server (experiments, runs, prompt versions, assessments) is
written to the tracking store, ClickHouse tables beside the spans (migration 008), before
the client is answered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from tracehouse.core.component import Host, Listener, ListenerRole, Settings
from tracehouse.ingest.mlflow.app import MlflowApp, tag_experiment
from tracehouse.ingest.mlflow.config import MlflowReceiverConfig
from tracehouse.ingest.mlflow.store import TrackingStore
from tracehouse.ingest.otlp.config import HttpConfig
from tracehouse.ingest.otlp.http import OtlpHttpApp
from tracehouse.ingest.otlp.receiver import ExportService
from tracehouse.net.asgi_server import AsgiServer
from tracehouse.sinks.clickhouse.client import open_client

T = TypeVar("T")


class MlflowReceiver:
    def __init__(self, settings: Settings, config: MlflowReceiverConfig, next_consumer: Any):
        self._settings = settings
        self._config = config
        self._log = settings.logger
        self._exports = ExportService(settings, next_consumer, "mlflow", config.auth)
        self._executor: ThreadPoolExecutor | None = None
        self._store: TrackingStore | None = None
        self._server: AsgiServer | None = None
        self.port: int | None = None

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        assert self._executor is not None
        return await asyncio.get_running_loop().run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    async def start(self, host: Host) -> None:
        cfg = self._config
        ch = cfg.clickhouse
        self._exports.bind(host)
        self._executor = ThreadPoolExecutor(cfg.max_workers, thread_name_prefix=f"{self._settings.id}-store")
        store = TrackingStore(lambda: open_client(ch.endpoint, username=ch.username, password=ch.password,
                                                  timeout_s=ch.timeout, tls=ch.tls),
                              ch.database, ch.traces_table_name)
        self._store = store
        table = f"{ch.database}.{ch.traces_table_name}_experiments"
        try:
            exists = str(await self._run(lambda: store.client.command(f"EXISTS TABLE {table}"))) == "1"
        except Exception as exc:
            # Spans still flow (the pipeline has its own retries and queue); tracking routes
            # answer 503 until ClickHouse is back, as the exporter retries its inserts.
            self._log.warning("the MLflow tracking store is not reachable at start; its routes answer 503 "
                              "until it is", error=str(exc))
            exists = True
        if not exists:
            # Not fatal: the writers of a Kafka shape may create them later. Until then the
            # tracking routes answer 503 (retryable), and this says why.
            self._log.warning("the MLflow tracking store's tables are missing: the clickhouse exporter creates them "
                              "(create_schema: true) on the same database; point this receiver's clickhouse at the "
                              "database the writers use", table=table)
        otlp = OtlpHttpApp(HttpConfig(endpoint=cfg.endpoint, max_request_body_size=cfg.max_request_body_size,
                                      request_timeout=cfg.request_timeout, auth=cfg.auth),
                           self._exports, self._log, annotate=tag_experiment)
        app = MlflowApp(cfg, store, self._exports, otlp, self._log, self._run)
        server = AsgiServer(app, cfg.endpoint, name=str(self._settings.id), tls=cfg.tls, logger=self._log,
                            timeout_graceful_shutdown=cfg.request_timeout)
        await server.start()
        self._server = server
        self.port = server.port
        self._log.info("MLflow tracking endpoint listening", endpoint=cfg.endpoint, port=self.port,
                       scheme=server.scheme, tracking_uri=f"{server.scheme}://{cfg.endpoint}",
                       database=ch.database, auth=self._exports.auth_description)

    def listeners(self) -> list[Listener]:
        server = self._server
        return [] if server is None else [Listener(ListenerRole.MLFLOW, server.url, server.addresses)]

    async def shutdown(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.stop()
        store, self._store = self._store, None
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
        if store is not None:
            store.close()
