"""The `clickhouse` exporter: batched, column-oriented inserts into the Collector's tables:
otel_traces for spans, otel_logs for log records, otel_metrics_* for metric points (one
exporter serves the pipelines of every signal).

By default `consume()` returns only after ClickHouse acknowledged the insert: in the
all-in-one that is the point where the OTLP client is told its spans are safe. With
`sending_queue.storage`, it returns once the batch (GenAI columns included) is fsynced
in the exporter helper's write-ahead queue, which is drained into ClickHouse, retrying
while it is down. clickhouse-connect and chDB are synchronous, so all ClickHouse work
(including turning spans into columns) runs on one dedicated thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from clickhouse_connect.driver.client import Client

from tracehouse.core.component import Host, Settings, Signal
from tracehouse.core.errors import PermanentError, RetryableError
from tracehouse.core.exporterhelper import Exporter, ExportRequest, Health
from tracehouse.core.logs import LogThrottle
from tracehouse.core.pdata import LogBatch, MetricBatch, OtlpBatch, TraceBatch
from tracehouse.sinks.clickhouse import columns
from tracehouse.sinks.clickhouse.client import is_embedded, open_client
from tracehouse.sinks.clickhouse.columns import batch_to_columns
from tracehouse.sinks.clickhouse.config import ClickHouseExporterConfig
from tracehouse.sinks.clickhouse.errors import is_data_error, public_reason
from tracehouse.sinks.clickhouse.dedup import RowGate, new_rows, stored_keys_query, take_rows, token_settings
from tracehouse.sinks.clickhouse.log_columns import logs_to_columns
from tracehouse.sinks.clickhouse.metric_columns import metrics_to_columns
from tracehouse.sinks.clickhouse.prompts import PromptRegistry
from tracehouse.sinks.clickhouse.schema import migrate, schema_params
from tracehouse.sinks.clickhouse.scores import insert_scores, scores_table

def _classify(exc: Exception) -> Exception:
    """PermanentError when the rows can never be inserted (split off by the batch processor
    or the Kafka writer, answered 400 / INVALID_ARGUMENT); else RetryableError. The text a
    client sees names ClickHouse's code and reason, not the server's address."""
    if isinstance(exc, (PermanentError, RetryableError)):
        return exc
    if is_data_error(exc):
        return PermanentError(f"ClickHouse cannot store the data: {public_reason(exc)}")
    return RetryableError(f"ClickHouse insert failed: {public_reason(exc)}")


class _Insert(ExportRequest):
    def __init__(self, sender: ClickHouseSender, batch: OtlpBatch[Any]):
        self._sender = sender
        self._batch = batch
        self.item_count = batch.item_count

    async def send(self) -> None:
        sender = self._sender
        if sender.executor is None:
            raise RetryableError("clickhouse exporter is not started")
        try:
            # A timed-out attempt's thread may finish later; the batch is then retried or
            # refused, never half-acknowledged (the retry gate drops what did land).
            await asyncio.get_running_loop().run_in_executor(sender.executor, sender.insert, self._batch)
        except Exception as exc:
            error = _classify(exc)
            if error is not exc and sender.throttle.allow(type(error).__name__) is not None:
                # The client is told ClickHouse's reason only; the whole text stays here.
                sender.log.warning("clickhouse insert failed", permanent=isinstance(error, PermanentError),
                                   error=str(exc))
            raise error from exc


class ClickHouseSender:
    """ClickHouse's side of the exporter: the connection, migrations, and one insert."""

    name = "ClickHouse"
    mutates_data = True  # writes registry versions of linked prompts into the GenAI columns

    def __init__(self, settings: Settings, config: ClickHouseExporterConfig):
        self._config = config
        self._log = settings.logger
        self._throttle = LogThrottle(30.0)
        self._id = str(settings.id)
        self._host: Host | None = None
        self.executor: ThreadPoolExecutor | None = None
        self._client: Client | None = None
        self._contexts: dict[tuple[str, ...], Any] = {}
        # Span inserts into the embedded engine as one Native block encoded in C (columns.py
        # `native_block`). A server keeps clickhouse-connect's insert, which also compresses
        # what it sends.
        self._native_blocks = columns.native is not None and is_embedded(config.endpoint)
        self._prompts = PromptRegistry(config.database, config.traces_table_name)
        self._stored_keys_query = stored_keys_query(config.database, config.traces_table_name)
        self._logs_gate = RowGate(config.database, config.logs_table_name, "Timestamp", ("ServiceName",))
        self._metric_gates = {kind: RowGate(config.database, table, "TimeUnix", ("ServiceName", "MetricName", "Attributes"))
                              for kind, table in config.metrics_tables.by_kind().items()}
        self._scores_table = scores_table(config.database, config.traces_table_name)
        self.skipped_duplicates = 0

    @property
    def log(self) -> Any:
        return self._log

    @property
    def throttle(self) -> LogThrottle:
        return self._throttle

    @property
    def table(self) -> str:
        return f"{self._config.database}.{self._config.traces_table_name}"

    async def start(self, host: Host, health: Health) -> None:
        self._host = host
        self.executor = ThreadPoolExecutor(1, thread_name_prefix=f"clickhouse-{self._id}")
        try:
            await asyncio.get_running_loop().run_in_executor(self.executor, self._ensure_connected)
        except Exception as exc:
            # A server that is not up yet (pod start order) is not fatal: every insert
            # attempt reconnects, and clients get retryable errors meanwhile.
            health.failing(f"cannot reach ClickHouse: {public_reason(exc)}")
            self._log.warning("clickhouse not reachable at start; will retry on each insert",
                              endpoint=_redact(self._config.endpoint), error=str(exc))
            return
        self._log.info("clickhouse exporter ready", endpoint=_redact(self._config.endpoint), table=self.table)

    def request(self, batch: OtlpBatch[Any]) -> ExportRequest:
        return _Insert(self, batch)

    def check(self, batch: OtlpBatch[Any]) -> None:
        return None

    async def ready(self) -> None:
        return None  # every attempt reconnects

    def retry_after(self) -> float | None:
        return None

    def _ensure_connected(self) -> Client:
        if self._client is not None:
            return self._client
        cfg = self._config
        # On a cluster, an insert into the Distributed table returns only once every shard
        # holds its rows: the client's acknowledgement must not rest on a node's local queue.
        settings = {"distributed_foreground_insert": 1} if cfg.cluster else None
        client = open_client(cfg.endpoint, username=cfg.username, password=cfg.password, timeout_s=cfg.timeout,
                             settings=settings, tls=cfg.tls)
        try:
            if cfg.create_schema:
                migrate(client, schema_params(cfg.database, cfg.traces_table_name, cfg.ttl, cfg.deduplication_window,
                                              logs_table=cfg.logs_table_name,
                                              metric_tables=cfg.metrics_tables.by_kind()), cluster=cfg.cluster)
        except Exception:
            client.close()
            raise
        self._client = client
        return client

    def insert(self, batch: OtlpBatch[Any]) -> None:
        """One insert attempt, on the ClickHouse thread."""
        client = self._ensure_connected()
        token = batch.origin.token if batch.origin else None
        if isinstance(batch, TraceBatch):
            self._insert_spans(client, batch, token)
        elif isinstance(batch, LogBatch):
            scores: list[dict[str, Any]] = []
            names, data = logs_to_columns(batch, scores)
            # Before the records, as for spans: a retry the gate drops still writes them (same ids).
            insert_scores(client, self._scores_table, batch.tenant, scores)
            self._insert_gated(client, self._logs_gate, names, data, batch.tenant, token, Signal.LOGS)
        elif isinstance(batch, MetricBatch):
            # A table per metric kind. A retry after a failure part-way redoes them all: the
            # tables already written drop the rows again by the gate (or the token).
            for kind, (names, data) in metrics_to_columns(batch).items():
                self._insert_gated(client, self._metric_gates[kind], names, data, batch.tenant, token, Signal.METRICS)
        else:  # pragma: no cover - every signal's batch type is above
            raise PermanentError(f"the clickhouse exporter cannot store {type(batch).__name__}")

    def _insert_spans(self, client: Client, batch: TraceBatch, token: str | None) -> None:
        if batch.genai is not None:
            self._prompts.link(client, batch.genai, batch.tenant)
        dropped: dict[str, int] = {}
        scores: list[dict[str, Any]] = []
        names, data = batch_to_columns(batch, dropped, scores)
        if dropped and self._throttle.allow("dropped") is not None:
            self._log.warning("GenAI values out of their column's range stored as NULL (unknown)", columns=dropped)
        # Before the spans and from every span of the batch: a retried batch whose spans the
        # gate then drops still writes its scores (the same ids: idempotent).
        insert_scores(client, self._scores_table, batch.tenant, scores)
        keep = new_rows(client, self._stored_keys_query, data, batch.tenant)
        if keep is not None:
            self._duplicates(Signal.TRACES, len(data[0]) - len(keep), len(data[0]))
            if not keep:
                return
            data = take_rows(data, keep)
        if self._native_blocks:
            settings = token_settings(token, keep)
            client.raw_insert(f"{self._config.database}.{self._config.traces_table_name}", column_names=names,
                              insert_block=columns.native_block(names, data), settings=settings or None, fmt="Native")
        else:
            self._insert(client, self._config.traces_table_name, names, data, token, keep)

    def _insert_gated(self, client: Client, gate: RowGate, names: list[str], data: list[list[Any]], tenant: str,
                      token: str | None, signal: Signal) -> None:
        keep = gate.new_rows(client, names, data, tenant)
        if keep is not None:
            self._duplicates(signal, len(data[0]) - len(keep), len(data[0]))
            if not keep:
                return
            data = take_rows(data, keep)
        self._insert(client, gate.table, names, data, token, keep)

    def _duplicates(self, signal: Signal, duplicates: int, rows: int) -> None:
        self.skipped_duplicates += duplicates
        if self._host:
            self._host.telemetry.of(signal).exporter_duplicate.labels(self._id).inc(duplicates)
        self._log.info(f"{signal.items} already stored, not inserted again", duplicates=duplicates, rows=rows)

    def _insert(self, client: Client, table: str, names: list[str], data: list[list[Any]], token: str | None,
                keep: list[int] | None) -> None:
        key = (table, *names)
        context = self._contexts.get(key)
        if context is None:
            context = client.create_insert_context(
                table=table, database=self._config.database, column_names=names, column_oriented=True)
            self._contexts[key] = context
        # A batch replayed from Kafka names its source records: ClickHouse drops a block
        # whose token it has already stored (the gate cannot see a concurrent writer).
        settings = token_settings(token, keep)
        shared_settings = context.settings
        context.settings = {**shared_settings, **settings}
        context.data = data
        try:
            client.insert(context=context)
        finally:
            context.data = None
            context.settings = shared_settings

    async def shutdown(self) -> None:
        executor, self.executor = self.executor, None
        if executor is None:
            return
        client = self._client

        def close() -> None:
            if client is not None:
                client.close()

        await asyncio.get_running_loop().run_in_executor(executor, close)
        executor.shutdown(wait=True)
        self._client = None


class ClickHouseExporter(Exporter):
    def __init__(self, settings: Settings, config: ClickHouseExporterConfig, _next: Any = None):
        self._clickhouse = ClickHouseSender(settings, config)
        super().__init__(settings, config, self._clickhouse)

    @property
    def table(self) -> str:
        return self._clickhouse.table

    @property
    def skipped_duplicates(self) -> int:
        return self._clickhouse.skipped_duplicates


def _redact(endpoint: str) -> str:
    return re.sub(r"//[^@/]*@", "//***@", endpoint)
