"""The `clickhouse` exporter: batched, column-oriented inserts into the otel_traces table.

`consume()` returns only after ClickHouse acknowledged the insert: in the all-in-one
that is the point where the OTLP client is told its spans are safe. clickhouse-connect
and chDB are synchronous, so all ClickHouse work (including turning spans into columns)
runs on one dedicated thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from clickhouse_connect.driver.client import Client

from tracehouse.core.component import Host, Kind, Settings, Status
from tracehouse.core.context import remaining, request_deadline
from tracehouse.core.errors import PermanentError, RetryableError
from tracehouse.core.genai import genai_columns
from tracehouse.core.pdata import INSERT_DEDUP_TOKEN, TraceBatch
from tracehouse.core.retry import call_with_retry
from tracehouse.sinks.clickhouse.client import open_client
from tracehouse.sinks.clickhouse.columns import batch_to_columns
from tracehouse.sinks.clickhouse.config import ClickHouseExporterConfig
from tracehouse.sinks.clickhouse.dedup import new_rows, stored_keys_query, take_rows, token_settings
from tracehouse.sinks.clickhouse.prompts import PromptRegistry
from tracehouse.sinks.clickhouse.schema import migrate, schema_params

# ClickHouse error codes that mean "this data will never insert" (after Vector's
# ClickhouseRetryLogic): retrying the same rows cannot help.
_PERMANENT_CODES = {6, 27, 38, 41, 53, 69, 70, 72, 117, 130, 131, 321}
_CODE_RE = re.compile(r"Code:\s*(\d+)")


def _classify(exc: Exception) -> Exception:
    if isinstance(exc, (PermanentError, RetryableError)):
        return exc
    m = _CODE_RE.search(str(exc))
    if m and int(m[1]) in _PERMANENT_CODES:
        return PermanentError(f"ClickHouse rejected the rows: {exc}")
    return RetryableError(f"ClickHouse insert failed: {exc}")


class ClickHouseExporter:
    def __init__(self, settings: Settings, config: ClickHouseExporterConfig, _next: Any = None):
        self._settings = settings
        self._config = config
        self._log = settings.logger
        self._host: Host | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._client: Client | None = None
        self._contexts: dict[tuple[str, ...], Any] = {}
        self._failing = False
        self._id = str(settings.id)
        self._prompts = PromptRegistry(config.database, config.traces_table_name)
        self._stored_keys_query = stored_keys_query(config.database, config.traces_table_name)
        self.skipped_duplicates = 0

    @property
    def table(self) -> str:
        return f"{self._config.database}.{self._config.traces_table_name}"

    async def start(self, host: Host) -> None:
        self._host = host
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"clickhouse-{self._id}")
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._ensure_connected)
        except Exception as exc:
            # A server that is not up yet (pod start order) is not fatal: every insert
            # attempt reconnects, and clients get retryable errors meanwhile.
            self._set_failing(f"cannot reach ClickHouse: {exc}")
            self._log.warning("clickhouse not reachable at start; will retry on each insert",
                              endpoint=_redact(self._config.endpoint), error=str(exc))
            return
        self._log.info("clickhouse exporter ready", endpoint=_redact(self._config.endpoint), table=self.table)

    def _ensure_connected(self) -> Client:
        if self._client is not None:
            return self._client
        cfg = self._config
        # On a cluster, an insert into the Distributed table returns only once every shard
        # holds its rows: the client's acknowledgement must not rest on a node's local queue.
        settings = {"distributed_foreground_insert": 1} if cfg.cluster else None
        client = open_client(cfg.endpoint, username=cfg.username, password=cfg.password, timeout_s=cfg.timeout,
                             settings=settings)
        try:
            if cfg.create_schema:
                migrate(client, schema_params(cfg.database, cfg.traces_table_name, cfg.ttl,
                                              cfg.deduplication_window), cluster=cfg.cluster)
        except Exception:
            client.close()
            raise
        self._client = client
        return client

    async def consume(self, batch: TraceBatch) -> None:
        if batch.span_count == 0:
            return
        if self._executor is None:
            raise RetryableError("clickhouse exporter is not started")
        telemetry = self._host.telemetry if self._host else None
        loop = asyncio.get_running_loop()
        executor = self._executor

        async def attempt() -> None:
            t0 = time.perf_counter()
            try:
                # The client's deadline bounds each attempt too (the insert thread may
                # finish later; the batch is then retried or refused, never half-acked).
                async with asyncio.timeout(max(0.1, remaining(self._config.timeout))):
                    await loop.run_in_executor(executor, self._insert, batch)
            except TimeoutError:
                raise RetryableError("ClickHouse insert timed out", retry_after=5.0) from None
            except Exception as exc:
                raise _classify(exc) from exc
            finally:
                if telemetry:
                    telemetry.exporter_send_duration.labels(self._id).observe(time.perf_counter() - t0)

        def on_retry(exc: Exception, delay: float) -> None:
            self._set_failing(str(exc))
            if telemetry:
                telemetry.exporter_send_retries.labels(self._id).inc()
            self._log.warning("insert failed, retrying", error=str(exc), retry_in_s=round(delay, 2),
                              spans=batch.span_count)

        try:
            await call_with_retry(attempt, self._config.retry_on_failure, deadline=request_deadline.get(),
                                  on_retry=on_retry)
        except Exception as exc:
            if telemetry:
                telemetry.exporter_send_failed_spans.labels(self._id).inc(batch.span_count)
            self._set_failing(str(exc))
            self._log.error("insert failed, spans not written", error=str(exc), spans=batch.span_count)
            raise
        if telemetry:
            telemetry.exporter_sent_spans.labels(self._id).inc(batch.span_count)
        if self._failing:
            self._failing = False
            if self._host:
                self._host.report_status(self._settings.id, Kind.EXPORTER, Status.OK)

    def _insert(self, batch: TraceBatch) -> None:
        client = self._ensure_connected()
        cols = genai_columns(batch)
        if cols is not None:
            self._prompts.link(client, cols)
        names, data = batch_to_columns(batch)
        keep = new_rows(client, self._stored_keys_query, data)
        if keep is not None:
            duplicates = len(data[0]) - len(keep)
            self.skipped_duplicates += duplicates
            if self._host:
                self._host.telemetry.exporter_duplicate_spans.labels(self._id).inc(duplicates)
            self._log.info("spans already stored, not inserted again", duplicates=duplicates, spans=len(data[0]))
            if not keep:
                return
            data = take_rows(data, keep)
        key = tuple(names)
        context = self._contexts.get(key)
        if context is None:
            context = client.create_insert_context(
                table=self._config.traces_table_name, database=self._config.database,
                column_names=names, column_oriented=True)
            self._contexts[key] = context
        # A batch replayed from Kafka names its source records: ClickHouse drops a block
        # whose token it has already stored (the gate cannot see a concurrent writer).
        token = batch.extras.get(INSERT_DEDUP_TOKEN)
        settings = token_settings(token if isinstance(token, str) else None, keep)
        shared_settings = context.settings
        context.settings = {**shared_settings, **settings}
        context.data = data
        try:
            client.insert(context=context)
        finally:
            context.data = None
            context.settings = shared_settings

    def _set_failing(self, error: str) -> None:
        if not self._failing:
            self._failing = True
            if self._host:
                self._host.report_status(self._settings.id, Kind.EXPORTER, Status.RECOVERABLE_ERROR, error)

    async def shutdown(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        client = self._client

        def close() -> None:
            if client is not None:
                client.close()

        await asyncio.get_running_loop().run_in_executor(executor, close)
        executor.shutdown(wait=True)
        self._client = None


def _redact(endpoint: str) -> str:
    return re.sub(r"//[^@/]*@", "//***@", endpoint)
