"""The `memory_limiter` processor: refuses, never drops.

Python's RSS barely shrinks after a burst, so polling RSS (the Collector's method) is a
weak control on its own. The primary limit here is admission: items (spans, log records
or data points: each pipeline has its own limiter) and wire bytes that were accepted and
are still on their way to the durable point. Because every stage
downstream acknowledges only after the data is safe (batch waits for the export, the
exporter for ClickHouse or Kafka), the in-flight count bounds what the process holds.
Over the limit, a request is refused with a retryable error that receivers answer as
HTTP 429 / gRPC RESOURCE_EXHAUSTED with a retry delay. RSS polling stays as a safety net.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import psutil

from tracehouse.core.component import Consumer, Host, Settings
from tracehouse.core.errors import RetryableError
from tracehouse.core.pdata import OtlpBatch
from tracehouse.processors.memory_limiter.config import MemoryLimiterConfig

_MIB = 1024 * 1024


class MemoryLimiterProcessor:
    mutates_data = False  # only counts what passes

    def __init__(self, settings: Settings, config: MemoryLimiterConfig, next_consumer: Consumer):
        self._settings = settings
        self._config = config
        self._next = next_consumer
        self._spans = 0
        self._bytes = 0
        self._max_bytes = int(config.max_in_flight_mib * _MIB)
        self._rss_over = False
        self._poller: asyncio.Task[None] | None = None
        self._host: Host | None = None
        self._labels = (str(settings.id), settings.pipeline or "")

    @property
    def in_flight_spans(self) -> int:
        return self._spans

    async def start(self, host: Host) -> None:
        self._host = host
        if self._config.limit_mib:
            self._poller = asyncio.create_task(self._poll_rss(), name=f"memory-limiter-{self._settings.id}")

    async def _poll_rss(self) -> None:
        process = psutil.Process()
        threshold = (self._config.limit_mib - self._config.spike_limit_mib) * _MIB
        while True:
            over = process.memory_info().rss > threshold
            if over != self._rss_over:
                self._rss_over = over
                self._settings.logger.warning("memory above soft limit, refusing data" if over
                                              else "memory back below soft limit, accepting data",
                                              limit_mib=self._config.limit_mib)
            await asyncio.sleep(self._config.check_interval)

    def _refuse(self, batch: OtlpBatch[Any], why: str) -> RetryableError:
        if self._host:
            self._host.telemetry.of(batch.signal).processor_refused.labels(*self._labels).inc(batch.item_count)
        return RetryableError(f"data refused due to high memory usage: {why}",
                              retry_after=self._config.retry_after, overload=True)

    async def consume(self, batch: OtlpBatch[Any]) -> None:
        n, size = batch.item_count, batch.nbytes
        # Something must always be admissible, or one oversized request would wedge the
        # pipeline: with nothing in flight, admit whatever comes.
        if self._spans and (self._spans + n > self._config.max_in_flight_spans
                            or self._bytes + size > self._max_bytes):
            items = batch.signal.items
            raise self._refuse(batch, f"{self._spans} {items} / {self._bytes // _MIB} MiB in flight "
                                      f"(limits {self._config.max_in_flight_spans} {items} / "
                                      f"{self._config.max_in_flight_mib:g} MiB)")
        if self._rss_over:
            raise self._refuse(batch, f"process memory above {self._config.limit_mib - self._config.spike_limit_mib:g} MiB")
        self._spans += n
        self._bytes += size
        self._gauges()
        # The reservation lives as long as downstream holds the data, not as long as the
        # caller waits: a client that times out and goes away leaves its batch retrying
        # in the exporter, and that memory must stay counted.
        work = asyncio.ensure_future(self._next.consume(batch))
        work.add_done_callback(lambda done: self._release(done, n, size))
        try:
            await asyncio.shield(work)
        finally:
            # A failure's traceback keeps this frame; without this the frame -> task ->
            # exception -> traceback cycle pins the batch until a full GC.
            del work, batch

    def _release(self, done: asyncio.Future[None], spans: int, size: int) -> None:
        self._spans -= spans
        self._bytes -= size
        self._gauges()
        if not done.cancelled():
            done.exception()  # retrieved here too, in case the caller went away

    def _gauges(self) -> None:
        if self._host:
            t = self._host.telemetry
            t.memory_limiter_in_flight_spans.labels(*self._labels).set(self._spans)
            t.memory_limiter_in_flight_bytes.labels(*self._labels).set(self._bytes)

    async def shutdown(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
