"""Queue -> retry -> timeout -> send: the plumbing every exporter shares (the Collector's
exporterhelper).

An exporter is a `Sender` (connection code, and how one batch becomes an `ExportRequest`
that one call of `send()` tries to deliver) wrapped in an `Exporter`, which owns:

- the sending queue, configured by `sending_queue`:
  - in memory (default): admission in items (spans, log records, metric data points:
    one exporter serves every signal's pipelines). `consume()` returns only once the
    destination acknowledged, so "acknowledged means stored" holds end to end;
  - on disk (`sending_queue.storage`): `consume()` returns once the batch (with its GenAI
    columns and origin) is fsynced; a replayer drains the queue to the destination,
    retrying until it is acknowledged, and deletes each entry only then;
- retries (`retry_on_failure`) with backoff, within the client's deadline (the batch's);
- the per-attempt `timeout`;
- the sent / failed / retried / enqueue-failed / dropped counters, the queue gauges, and
  the exporter's health status.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from tracehouse.core.component import Host, Kind, Settings, Status
from tracehouse.core.errors import BadRequestError, PermanentError, RetryableError
from tracehouse.core.exporterhelper.codec import decode_batch, encode_batch
from tracehouse.core.exporterhelper.config import ExporterHelperConfig
from tracehouse.core.logs import LogThrottle
from tracehouse.core.exporterhelper.queue import CorruptEntryError, DiskQueue, MemoryQueue, QueueEntry, QueueFullError
from tracehouse.core.component import Signal
from tracehouse.core.pdata import OtlpBatch
from tracehouse.core.retry import backoff_delays, call_with_retry
from tracehouse.core.telemetry import Telemetry

_REPLAY_WINDOW = 8  # queue entries replayed at once (bounds the replayer's memory)
_LOG_EVERY_S = 30.0  # a repeated failure is logged at most this often
_DEFAULT_RETRY_AFTER_S = 5.0


class ExportRequest:
    """One batch in the destination's form. `send()` is one attempt; it is called again
    after a retryable failure and may keep what it learned (e.g. which messages Kafka
    already acknowledged), so a retry never duplicates what was delivered."""

    item_count: int = 0

    async def send(self) -> None:
        raise NotImplementedError

    @property
    def delivered_items(self) -> int:
        """Items the destination took, after a permanent failure of the rest."""
        return 0

    def when_settled(self, callback: Callable[[], None]) -> None:
        """Call `callback` once nothing of this request is still in flight at the destination."""
        callback()


class Health(Protocol):
    def failing(self, error: str) -> None: ...

    def ok(self) -> None: ...


class Sender(Protocol):
    """The destination-specific part of an exporter."""

    name: str  # for messages: "ClickHouse", "Kafka"
    mutates_data: bool

    async def start(self, host: Host, health: Health) -> None:
        """Connect, or begin connecting in the background; a peer that is down is not fatal."""

    async def shutdown(self) -> None: ...

    def request(self, batch: OtlpBatch[Any]) -> ExportRequest:
        """Convert; PermanentError if the batch can never be sent, RetryableError to refuse fast."""

    def check(self, batch: OtlpBatch[Any]) -> None:
        """Refuse before queueing what could never be sent (PermanentError)."""

    async def ready(self) -> None:
        """Return once sending may work (the replayer reads nothing from disk before)."""

    def retry_after(self) -> float | None:
        """When a client refused for a retryable reason should come back, if known."""


class Exporter:
    """A `Sender` behind the sending queue, retries and timeouts; batches of every signal."""

    def __init__(self, settings: Settings, config: ExporterHelperConfig, sender: Sender):
        self._settings = settings
        self._config = config
        self._sender = sender
        self.mutates_data = sender.mutates_data
        self._log = settings.logger
        self._id = str(settings.id)
        self._host: Host | None = None
        self._memory: MemoryQueue | None = None
        self._disk: DiskQueue | None = None
        self._replayer: asyncio.Task[None] | None = None
        self._replaying: set[asyncio.Task[None]] = set()
        self._active = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._state = "created"  # created -> running -> stopped
        self._failing = False
        self._throttle = LogThrottle(_LOG_EVERY_S)

    @property
    def queued_items(self) -> int:
        if self._disk is not None:
            return self._disk.spans
        return self._memory.size if self._memory is not None else 0

    # -------------------------------------------------------------- lifecycle

    async def start(self, host: Host) -> None:
        if self._state != "created":
            return
        self._host = host
        queue = self._config.sending_queue
        gauges = host.telemetry
        if queue.enabled:
            gauges.exporter_queue_capacity.labels(self._id).set(queue.queue_size)
        size_gauge = gauges.exporter_queue_size.labels(self._id)
        if queue.storage:
            disk = DiskQueue(queue.storage, max_spans=queue.queue_size, max_bytes=queue.max_storage_mib * 2**20,
                             on_change=size_gauge.set)
            recovery = await disk.open()  # a directory we cannot use is a deployment error: fail start
            self._disk = disk
            self._log.info("sending queue opened", storage=queue.storage, entries=recovery.entries,
                           spans=recovery.spans, bytes=recovery.nbytes,
                           partial_writes_removed=recovery.partial_writes_removed)
            if recovery.unknown_files:
                self._log.warning("files in the sending queue directory that are not queue entries were left alone",
                                  files=recovery.unknown_files[:10], count=len(recovery.unknown_files))
        else:
            self._memory = MemoryQueue(queue.queue_size if queue.enabled else None, on_change=size_gauge.set)
            size_gauge.set(0)
        try:
            await self._sender.start(host, self)
        except BaseException:
            if self._disk is not None:
                await self._disk.close()
            raise
        if self._disk is not None:
            self._replayer = asyncio.create_task(self._replay(), name=f"exporter-replay:{self._id}")
        self._state = "running"

    async def shutdown(self) -> None:
        if self._state != "running":
            self._state = "stopped"
            return
        self._state = "stopped"  # consume() refuses from here on
        if self._replayer is not None:
            # Entries being sent stay on disk: sent again after the restart (at least once).
            tasks = [self._replayer, *self._replaying]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._disk is not None:
            # Writes already accepted finish (their clients are waiting); the rest stays on disk.
            left = await self._disk.close()
            self._log.info("sending queue closed; unsent entries stay on disk for the next start",
                           entries=left, spans=self._disk.spans)
        else:
            await self._idle.wait()  # batches in flight finish (the service bounds this)
        await self._sender.shutdown()

    # -------------------------------------------------------------- consume

    async def consume(self, batch: OtlpBatch[Any]) -> None:
        if batch.item_count == 0:
            return
        if self._state != "running":
            raise RetryableError(f"{self._sender.name} exporter is not running", retry_after=_DEFAULT_RETRY_AFTER_S)
        if self._disk is not None:
            await self._enqueue(self._disk, batch)
        else:
            await self._send_now(batch)

    async def _enqueue(self, disk: DiskQueue, batch: OtlpBatch[Any]) -> None:
        try:
            self._sender.check(batch)  # refuse now what could never be sent, while the client can be told
        except PermanentError as exc:
            self._on_failed(batch.signal, batch.item_count, exc)
            raise
        try:
            await disk.put(encode_batch(batch), batch.item_count)
        except QueueFullError:
            self._on_enqueue_failed(batch.signal, batch.item_count)
            raise
        except RetryableError as exc:  # the disk failed us
            self._on_failed(batch.signal, batch.item_count, exc)
            raise

    async def _send_now(self, batch: OtlpBatch[Any]) -> None:
        assert self._memory is not None
        try:
            request = self._sender.request(batch)
        except PermanentError as exc:  # can never be sent (e.g. a span over the message size)
            self._on_failed(batch.signal, batch.item_count, exc)
            raise
        try:
            self._memory.admit(batch.item_count)
        except QueueFullError:
            self._on_enqueue_failed(batch.signal, batch.item_count)
            raise
        self._active += 1
        self._idle.clear()
        try:
            await call_with_retry(lambda: self._attempt(request, batch.remaining(self._config.timeout)),
                                  self._config.retry_on_failure, deadline=batch.deadline,
                                  on_retry=lambda exc, delay: self._on_retry(exc, delay, batch.signal, batch.item_count))
        except (RetryableError, PermanentError) as exc:
            self._on_failed(batch.signal, batch.item_count - request.delivered_items, exc,
                            delivered=request.delivered_items)
            if isinstance(exc, RetryableError) and exc.retry_after is None:
                exc.retry_after = self._sender.retry_after() or _DEFAULT_RETRY_AFTER_S
            raise
        finally:
            self._active -= 1
            if self._active == 0:
                self._idle.set()
            memory, items = self._memory, batch.item_count
            # Sends still in flight at the destination keep their room in the queue.
            request.when_settled(lambda: memory.release(items))
        self._on_sent(batch.signal, batch.item_count)

    async def _attempt(self, request: ExportRequest, timeout: float) -> None:
        timeout = max(0.05, timeout)
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                await request.send()
        except TimeoutError:
            raise RetryableError(f"data not acknowledged by {self._sender.name} within {timeout:.2f}s") from None
        finally:
            self._telemetry().exporter_send_duration.labels(self._id).observe(time.perf_counter() - t0)

    # -------------------------------------------------------------- the persistent queue's replayer

    async def _replay(self) -> None:
        assert self._disk is not None
        disk = self._disk
        window = asyncio.Semaphore(_REPLAY_WINDOW)
        while True:
            await self._sender.ready()  # nothing is read from disk while the destination is unreachable
            await window.acquire()
            try:
                entry = await disk.get()
            except BaseException:
                window.release()
                raise
            task = asyncio.create_task(self._replay_guarded(disk, entry))
            self._replaying.add(task)

            def finished(t: asyncio.Task[None]) -> None:
                self._replaying.discard(t)
                window.release()

            task.add_done_callback(finished)

    async def _replay_guarded(self, disk: DiskQueue, entry: QueueEntry) -> None:
        try:
            await self._replay_entry(disk, entry)
        except Exception as exc:
            # Never let one entry stop the exporter: it stays on disk for the next start.
            self.failing(str(exc))
            self._log.error("queued batch could not be handled; it stays on disk for the next start",
                            entry=entry.name, error=str(exc) or type(exc).__name__)

    async def _replay_entry(self, disk: DiskQueue, entry: QueueEntry) -> None:
        telemetry = self._telemetry()
        try:
            batch = decode_batch(await disk.read(entry))
        except (CorruptEntryError, BadRequestError) as exc:
            target = await disk.quarantine(entry)
            # Its signal is unreadable with the rest: counted with the spans (the queue's first use).
            telemetry.exporter_dropped_spans.labels(self._id, "corrupt_queue_entry").inc(entry.span_count)
            self._log.error("corrupt sending queue entry moved aside; its items are lost", entry=entry.name,
                            moved_to=str(target), items=entry.span_count, error=str(exc))
            return
        # Acknowledged work: retried until the destination takes it, however long that is.
        # A permanent refusal is bisected down to the items refused (one request's bad data
        # in a merged entry must not take the others with it); only those are dropped.
        delays = backoff_delays(self._config.retry_on_failure, forever=True)
        parts = [batch]
        while parts:
            part = parts.pop()
            refused = await self._replay_part(disk, entry, part, delays)
            if refused is None:
                self._on_sent(part.signal, part.item_count)
            elif part.item_count > 1 and not refused[1]:  # (a partly delivered part is not resent)
                halves = part.split()
                parts.extend(h for h in reversed(halves) if h.item_count)
            else:
                error, delivered = refused
                rejected = part.item_count - delivered
                self._on_failed(part.signal, rejected, error, delivered=delivered, log=False)
                telemetry.of(part.signal).exporter_dropped.labels(self._id, "rejected").inc(rejected)
                self._log.error(f"{self._sender.name} rejected queued {part.signal.items}; they are dropped",
                                entry=entry.name, items=rejected, error=str(error))
        await disk.remove(entry)

    async def _replay_part(self, disk: DiskQueue, entry: QueueEntry, batch: OtlpBatch[Any],
                           delays: Iterator[float]) -> tuple[PermanentError, int] | None:
        """Send `batch` until it is taken (None) or refused permanently ((error, items delivered))."""
        telemetry = self._telemetry()
        request: ExportRequest | None = None
        while True:
            try:
                if request is None:
                    request = self._sender.request(batch)
                await self._attempt(request, self._config.timeout)
                return None
            except PermanentError as exc:
                delivered = request.delivered_items if request is not None else 0
                if batch.item_count > 1 and not delivered and self._throttle.allow("bisect") is not None:
                    self._log.warning(f"{self._sender.name} refused a queued batch; resending it in halves to "
                                      f"find the {batch.signal.items} it refuses", entry=entry.name, items=batch.item_count,
                                      error=str(exc))
                return exc, delivered
            except Exception as exc:
                telemetry.exporter_send_retries.labels(self._id).inc()
                self.failing(str(exc))
                delay = next(delays)
                held = self._throttle.allow("replay")
                if held is not None:
                    self._log.warning(f"sending a queued batch to {self._sender.name} failed; "
                                      "retrying until it is acknowledged",
                                      error=str(exc), retry_in_s=round(delay, 2), queued_entries=disk.entries,
                                      queued_items=disk.spans, suppressed=held)
                await asyncio.sleep(delay)

    # -------------------------------------------------------------- status and metrics

    def failing(self, error: str) -> None:
        if not self._failing:
            self._failing = True
            if self._host is not None:
                self._host.report_status(self._settings.id, Kind.EXPORTER, Status.RECOVERABLE_ERROR, error)

    def ok(self) -> None:
        if self._failing:
            self._failing = False
            if self._host is not None:
                self._host.report_status(self._settings.id, Kind.EXPORTER, Status.OK)

    def _telemetry(self) -> Telemetry:
        assert self._host is not None
        return self._host.telemetry

    def _on_sent(self, signal: Signal, items: int) -> None:
        self._telemetry().of(signal).exporter_sent.labels(self._id).inc(items)
        self.ok()

    def _on_retry(self, exc: Exception, delay: float, signal: Signal, items: int) -> None:
        self._telemetry().exporter_send_retries.labels(self._id).inc()
        self.failing(str(exc))
        held = self._throttle.allow("retry")
        if held is not None:
            self._log.warning(f"send to {self._sender.name} failed, retrying", error=str(exc),
                              retry_in_s=round(delay, 2), signal=signal.value, items=items, suppressed=held)

    def _on_failed(self, signal: Signal, items: int, exc: Exception, *, delivered: int = 0, log: bool = True) -> None:
        counters = self._telemetry().of(signal)
        counters.exporter_send_failed.labels(self._id).inc(items)
        if delivered:
            counters.exporter_sent.labels(self._id).inc(delivered)
        self.failing(str(exc))
        held = self._throttle.allow(f"failed:{type(exc).__name__}") if log else None
        if held is not None:
            self._log.error(f"{signal.items} not sent to {self._sender.name}; the client was told", error=str(exc),
                            items=items, permanent=isinstance(exc, PermanentError), suppressed=held)

    def _on_enqueue_failed(self, signal: Signal, items: int) -> None:
        self._telemetry().of(signal).exporter_enqueue_failed.labels(self._id).inc(items)
        held = self._throttle.allow("queue_full")
        if held is not None:
            self._log.warning("sending queue full; refusing batches (clients retry)", items=items, suppressed=held)



TracesExporter = Exporter  # the name from before logs and metrics
