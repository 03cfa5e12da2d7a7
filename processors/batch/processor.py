"""The `batch` processor: merges requests into larger batches, without giving up acks.

Unlike the Collector's classic batchprocessor (which answers before exporting and so
swallows errors), every request waits for the export of the batch it joined and gets
its result, as the Collector's newer queuebatch does with `wait_for_result: true`.
If a merged batch fails permanently, its requests are retried one by one, so one
poisoned request cannot fail the others it was merged with. It works on any signal:
sizes count the items of its pipeline's signal (spans, log records, data points).

With `group_commit` (the default) a request that finds no export in flight is sent at
once, and requests only wait while an export is in flight: they go together as soon as it
ends (or when `send_batch_size` of them wait). Batches then grow with the load, as a
database's group commit does, and a lone client's acknowledgement costs one export rather
than a timer; the timer is the classic mode's (`group_commit: false`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from tracehouse.core.component import Consumer, Host, Settings
from tracehouse.core.errors import PermanentError, RetryableError
from tracehouse.core.pdata import OtlpBatch
from tracehouse.processors.batch.config import BatchConfig


@dataclass(slots=True)
class _Pending:
    batch: OtlpBatch[Any]
    done: asyncio.Future[None]


class BatchProcessor:
    mutates_data = False  # merges into new batches, never changes the ones it is given

    def __init__(self, settings: Settings, config: BatchConfig, next_consumer: Consumer):
        self._settings = settings
        self._config = config
        self._next = next_consumer
        # Per tenant: a batch holds one tenant's data, so tenants are batched apart.
        self._pending: dict[str, list[_Pending]] = {}
        self._pending_items: dict[str, int] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._exports: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(config.max_concurrent_exports)
        self._closed = False
        self._host: Host | None = None
        self._labels = (str(settings.id), settings.pipeline or "")
        # Each pipeline has its own instance: the gauge names the pipeline too, but for the
        # `traces` pipeline, whose name the dashboards know as the component's own.
        pipeline = settings.pipeline or "traces"
        self._component = str(settings.id) if pipeline == "traces" else f"{settings.id} ({pipeline})"

    async def start(self, host: Host) -> None:
        self._host = host

    async def consume(self, batch: OtlpBatch[Any]) -> None:
        if self._closed:
            raise RetryableError("the batch processor is shutting down", retry_after=1.0)
        if batch.item_count == 0:
            return
        cfg = self._config
        tenant = batch.tenant
        pending = self._pending_items.get(tenant, 0)
        if cfg.send_batch_max_size and pending + batch.item_count > cfg.send_batch_max_size:
            self._flush_tenant(tenant, "max_size")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(tenant, []).append(_Pending(batch, done))
        self._pending_items[tenant] = self._pending_items.get(tenant, 0) + batch.item_count
        self._gauge()
        if self._pending_items[tenant] >= cfg.send_batch_size:
            self._flush_tenant(tenant, "size")
        elif cfg.group_commit:
            if not self._exports:
                self._flush_tenant(tenant, "idle")
        elif self._pending and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(cfg.timeout, self._flush, "timeout")
        # Shielded: a client that hangs up must not cancel the export others wait on.
        await asyncio.shield(done)

    def _gauge(self) -> None:
        if self._host:
            self._host.telemetry.queued_spans.labels(self._component).set(sum(self._pending_items.values()))

    def _flush(self, trigger: str) -> None:
        """Every tenant's pending requests (the timer, shutdown)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for tenant in list(self._pending):
            self._flush_tenant(tenant, trigger)

    def _flush_tenant(self, tenant: str, trigger: str) -> None:
        items = self._pending.pop(tenant, [])
        count = self._pending_items.pop(tenant, 0)
        if not self._pending and self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not items:
            return
        self._gauge()
        if self._host:
            t = self._host.telemetry
            t.batch_send_size.labels(*self._labels).observe(count)
            t.batch_send_trigger.labels(*self._labels, trigger).inc()
        task = asyncio.create_task(self._export(items), name=f"batch-export-{self._settings.id}")
        self._exports.add(task)
        task.add_done_callback(self._exports.discard)

    async def _export(self, items: list[_Pending]) -> None:
        try:
            async with self._slots:
                await self._send(items)
        finally:
            # Failed futures hold exceptions whose tracebacks hold this frame; dropping the
            # frame's references to them lets the batches be freed without a full GC.
            items.clear()
            # Out of the in-flight set now, not in the done callback: a request arriving in
            # between would otherwise wait for an export that has ended.
            self._exports.discard(asyncio.current_task())
            if self._config.group_commit and self._pending:
                # What arrived while this export was in flight goes now, as one batch per tenant.
                self._flush("idle")

    async def _send(self, items: list[_Pending]) -> None:
        try:
            await self._next.consume(type(items[0].batch).merge(p.batch for p in items))
        except PermanentError as exc:
            if len(items) == 1:
                _resolve(items[0].done, exc)
                return
            self._settings.logger.warning("merged batch failed permanently; retrying its requests one by one",
                                          requests=len(items), error=str(exc))
            for item in items:
                try:
                    await self._next.consume(item.batch)
                except Exception as one:
                    _resolve(item.done, one)
                else:
                    _resolve(item.done, None)
            return
        except Exception as exc:
            for item in items:
                _resolve(item.done, exc)
            return
        for item in items:
            _resolve(item.done, None)

    async def shutdown(self) -> None:
        """Flush what is waiting and wait for every export in flight."""
        self._closed = True
        self._flush("shutdown")
        while self._exports:
            await asyncio.gather(*list(self._exports), return_exceptions=True)


def _resolve(fut: asyncio.Future[None], error: BaseException | None) -> None:
    if fut.done():
        return
    if error is None:
        fut.set_result(None)
    else:
        fut.set_exception(error)
        # The waiter may have gone away (client hung up); don't warn about an unread error.
        fut.exception()
