"""The `kafka` exporter: the sidecar's hand-off of OTLP traces to Kafka.

Without `sending_queue.storage`, `consume()` returns once Kafka acknowledged every
message of the batch (acks=all by default): that is when the app's OTLP client is
answered. With a storage directory, `consume()` returns once the batch is fsynced in a
write-ahead queue there, and a replayer sends queued batches to Kafka, deleting each
only after Kafka acknowledged it.

The producer connects in the background: a broker that is not up yet never fails
start-up; the component reports a recoverable error and keeps trying.

Only the standard library, aiokafka, protobuf and tracehouse.core are imported here: the
sidecar runs in every application pod and must stay small (no ClickHouse, no
tokenizer).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaProducer
from aiokafka import errors as kafka_errors

from tracehouse.core.component import Host, Kind, Settings, Status
from tracehouse.core.context import remaining, request_deadline
from tracehouse.core.errors import BadRequestError, PermanentError, PipelineError, RetryableError
from tracehouse.core.kafka import client_kwargs
from tracehouse.core.logs import LogThrottle
from tracehouse.core.pdata import TraceBatch
from tracehouse.core.retry import backoff_delays, call_with_retry
from tracehouse.sinks.kafka.config import KafkaExporterConfig
from tracehouse.sinks.kafka.marshal import Message, message_size, split_message, to_messages
from tracehouse.sinks.kafka.queue import (
    CorruptEntryError,
    DiskQueue,
    MemoryQueue,
    QueueEntry,
    QueueFullError,
)

if TYPE_CHECKING:
    from tracehouse.core.telemetry import Telemetry

_LOG_EVERY_S = 30.0  # repeated errors are logged at most this often
_REPLAY_WINDOW = 8  # queue entries the replayer sends at once (bounds its memory)
_MAX_RETRY_AFTER_S = 30.0

# Retrying cannot help: the size needs splitting, the rest needs a config or ACL change.
_TOO_LARGE = (kafka_errors.MessageSizeTooLargeError, kafka_errors.RecordListTooLargeError,
              kafka_errors.RecordTooLargeError)
_PERMANENT = (
    kafka_errors.TopicAuthorizationFailedError, kafka_errors.ClusterAuthorizationFailedError,
    kafka_errors.TransactionalIdAuthorizationFailed, kafka_errors.SaslAuthenticationFailed,
    kafka_errors.AuthenticationFailedError, kafka_errors.AuthenticationMethodNotSupported,
    kafka_errors.UnsupportedSaslMechanismError, kafka_errors.UnsupportedVersionError,
    kafka_errors.UnsupportedForMessageFormatError, kafka_errors.UnsupportedCodecError,
    kafka_errors.IncompatibleBrokerVersion, kafka_errors.InvalidTopicError,
)
# The producer itself is finished (closed, or an idempotent producer lost its sequence).
_PRODUCER_DEAD = (kafka_errors.ProducerClosed, kafka_errors.ProducerFenced, kafka_errors.OutOfOrderSequenceNumber,
                  kafka_errors.UnknownProducerId, kafka_errors.InvalidProducerEpoch)


def producer_kwargs(config: KafkaExporterConfig) -> dict[str, Any]:
    p = config.producer
    return {
        **client_kwargs(config),
        "acks": "all" if p.required_acks == "all" else 1,
        "enable_idempotence": p.enable_idempotence,
        "compression_type": None if p.compression == "none" else p.compression,
        "max_request_size": p.max_message_bytes,
        "linger_ms": round(p.linger * 1000),
        # Also how long aiokafka keeps retrying a batch before failing its future.
        "request_timeout_ms": max(1, round(config.timeout * 1000)),
    }


def _describe(exc: BaseException) -> str:
    text = str(exc)
    name = type(exc).__name__
    return f"{name}: {text}" if text and name not in text else (text or name)


# ---------------------------------------------------------------------------- the producer


class _TLSFilesError(Exception):
    pass


class _ProducerLink:
    """Owns the AIOKafkaProducer: connects in the background with backoff, and replaces a
    producer that died (fenced, closed)."""

    def __init__(self, config: KafkaExporterConfig, log: Any, on_failing: Callable[[str], None],
                 on_ok: Callable[[], None]):
        self._config = config
        self._log = log
        self._on_failing = on_failing
        self._on_ok = on_ok
        self.producer: AIOKafkaProducer | None = None
        self.error = "not connected yet"
        self.connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping: set[asyncio.Task[None]] = set()
        self._next_attempt = 0.0
        self._closed = False
        self._throttle = LogThrottle(_LOG_EVERY_S)

    def start(self) -> None:
        self._task = asyncio.create_task(self._connect(), name="kafka-exporter-connect")

    def require(self) -> AIOKafkaProducer:
        if self.producer is None:
            raise RetryableError(f"not connected to Kafka ({self.error}); reconnecting in the background")
        return self.producer

    def retry_after(self) -> float:
        return min(_MAX_RETRY_AFTER_S, max(1.0, self._next_attempt - time.monotonic()))

    async def _connect(self) -> None:
        cfg = self._config
        delays = backoff_delays(cfg.retry_on_failure, forever=True)
        while not self._closed:
            producer: AIOKafkaProducer | None = None
            try:
                # Built here too: a TLS file that is not mounted yet is retried like a broker that is down.
                producer = AIOKafkaProducer(**self._kwargs())
                # Bounded: an idempotent producer waits for its id as long as no broker answers.
                async with asyncio.timeout(max(cfg.timeout, 1.0)):
                    await producer.start()
            except asyncio.CancelledError:
                if producer is not None:
                    await _stop_quietly(producer)  # shut down while connecting
                raise
            except Exception as exc:
                bootstrapped = producer is not None and bool(producer.client.cluster.brokers())
                if producer is not None:
                    await _stop_quietly(producer)
                self.error = self._connect_error(exc, bootstrapped)
                delay = next(delays)
                self._next_attempt = time.monotonic() + delay
                self._on_failing(self.error)
                held = self._throttle.allow("connect")
                if held is not None:
                    self._log.warning("cannot connect to Kafka; retrying in the background", error=self.error,
                                      brokers=list(cfg.brokers), retry_in_s=round(delay, 2), suppressed=held)
                await asyncio.sleep(delay)
                continue
            self.producer = producer
            self.error = ""
            self.connected.set()
            self._on_ok()
            self._log.info("connected to Kafka", brokers=list(cfg.brokers), topic=cfg.topic)
            return

    def _kwargs(self) -> dict[str, Any]:
        try:
            return producer_kwargs(self._config)
        except (OSError, ssl.SSLError) as exc:
            tls = self._config.tls
            files = [f for f in (tls.ca_file, tls.cert_file, tls.key_file) if f] if tls else []
            raise _TLSFilesError(f"cannot load the TLS files {files}: {_describe(exc)}") from exc

    def _connect_error(self, exc: BaseException, bootstrapped: bool) -> str:
        if isinstance(exc, _TLSFilesError):
            return str(exc)
        cfg = self._config
        if cfg.producer.enable_idempotence and bootstrapped and isinstance(exc, kafka_errors.BrokerResponseError):
            # The metadata request worked; InitProducerId is what failed.
            return (f"the broker refused an idempotent producer (InitProducerId answered {type(exc).__name__}); "
                    "set producer.enable_idempotence: false for brokers without idempotence support (e.g. tansu), "
                    "or grant this client the IdempotentWrite permission")
        if isinstance(exc, TimeoutError):
            return f"no answer from {', '.join(cfg.brokers)} within {max(cfg.timeout, 1.0)}s"
        return f"cannot connect to {', '.join(cfg.brokers)}: {_describe(exc)}"

    def reset(self, producer: AIOKafkaProducer, reason: str) -> None:
        """Replace a producer that can no longer send."""
        if self._closed or self.producer is not producer:
            return
        self._log.warning("Kafka producer failed; reconnecting", error=reason)
        self.producer = None
        self.error = reason
        self.connected.clear()
        task = asyncio.create_task(_stop_bounded(producer, self._config.timeout))
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)
        self._task = asyncio.create_task(self._connect(), name="kafka-exporter-connect")

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        producer, self.producer = self.producer, None
        if producer is not None:
            await _stop_bounded(producer, self._config.timeout)
        if self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)


async def _stop_quietly(producer: AIOKafkaProducer) -> None:
    try:
        await producer.stop()
    except Exception:
        pass  # it never started; only its connections are closed here


async def _stop_bounded(producer: AIOKafkaProducer, timeout: float) -> None:
    """Flush and close. An idempotent producer retries unacknowledged batches forever, so
    after `timeout` they are failed (they are still in the caller's queue or were already
    answered as failed) and the producer closes."""
    stop = asyncio.ensure_future(producer.stop())
    done, _ = await asyncio.wait({stop}, timeout=timeout)
    if not done:
        producer._message_accumulator.fail_all(kafka_errors.KafkaError("exporter shut down before Kafka acknowledged"))
        await asyncio.wait({stop}, timeout=timeout)
    if stop.done() and not stop.cancelled():
        stop.exception()  # retrieved: a failed close has nothing left to clean up


# ---------------------------------------------------------------------------- one batch's delivery


@dataclass(slots=True)
class _Slot:
    message: Message
    future: asyncio.Future[Any] | None = None  # of the latest send; None = (re)send
    send_error: BaseException | None = None


@dataclass(slots=True)
class _Delivery:
    """The messages of one batch that Kafka has not acknowledged yet.

    A message is sent again only after its previous send failed; one still awaiting its
    answer is waited on, not duplicated."""

    slots: list[_Slot]
    acked_spans: int = 0
    rejected: list[tuple[Message, str]] = field(default_factory=list)

    @classmethod
    def of(cls, messages: list[Message]) -> _Delivery:
        return cls([_Slot(m) for m in messages])

    @property
    def rejected_spans(self) -> int:
        return sum(m.span_count for m, _ in self.rejected)

    @property
    def unacked_spans(self) -> int:
        return sum(s.message.span_count for s in self.slots)

    def when_settled(self, callback: Callable[[], None]) -> None:
        """Call `callback` once no send of this batch is outstanding in the producer."""
        outstanding = [s.future for s in self.slots if s.future is not None and not s.future.done()]
        if not outstanding:
            callback()
            return
        left = [len(outstanding)]

        def one_done(_: asyncio.Future[Any]) -> None:
            left[0] -= 1
            if left[0] == 0:
                callback()

        for fut in outstanding:
            fut.add_done_callback(one_done)


# ---------------------------------------------------------------------------- the exporter


class KafkaExporter:
    def __init__(self, settings: Settings, config: KafkaExporterConfig, _next: Any = None):
        self._settings = settings
        self._config = config
        self._log = settings.logger
        self._id = str(settings.id)
        self._host: Host | None = None
        self._link: _ProducerLink | None = None
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
    def connected(self) -> bool:
        """Whether a producer is connected (sends can still fail while brokers are away)."""
        return self._link is not None and self._link.producer is not None

    @property
    def queued_spans(self) -> int:
        if self._disk is not None:
            return self._disk.spans
        return self._memory.size if self._memory is not None else 0

    # -------------------------------------------------------------- lifecycle

    async def start(self, host: Host) -> None:
        if self._state != "created":
            return
        self._host = host
        cfg = self._config
        queue = cfg.sending_queue
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
        self._link = _ProducerLink(cfg, self._log, self._set_failing, self._set_ok)
        self._link.start()
        if self._disk is not None:
            self._replayer = asyncio.create_task(self._replay(), name=f"kafka-exporter-replay:{self._id}")
        self._state = "running"
        self._log.info("kafka exporter started", brokers=list(cfg.brokers), topic=cfg.topic,
                       queue="disk" if self._disk else "memory", partition_traces_by_id=cfg.partition_traces_by_id)

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
        if self._link is not None:
            await self._link.close()
        self._log.info("kafka exporter stopped")

    # -------------------------------------------------------------- consume

    async def consume(self, batch: TraceBatch) -> None:
        if batch.span_count == 0:
            return
        if self._state != "running":
            raise RetryableError("kafka exporter is not running", retry_after=5.0)
        if self._disk is not None:
            await self._enqueue(self._disk, batch)
        else:
            await self._send_now(batch)

    async def _enqueue(self, disk: DiskQueue, batch: TraceBatch) -> None:
        if batch.nbytes > self._config.producer.max_message_bytes:
            # Refuse now what could never be sent, while the client can still be told.
            try:
                self._messages(batch)
            except PermanentError as exc:
                self._on_batch_failed(batch.span_count, exc)
                raise
        try:
            await disk.put(batch.to_bytes(), batch.span_count)
        except QueueFullError:
            self._telemetry_enqueue_failed(batch.span_count)
            raise
        except RetryableError as exc:  # the disk failed us
            self._on_batch_failed(batch.span_count, exc)
            raise

    async def _send_now(self, batch: TraceBatch) -> None:
        assert self._link is not None and self._memory is not None
        link = self._link
        if link.producer is None:
            raise RetryableError(f"not connected to Kafka ({link.error}); reconnecting in the background",
                                 retry_after=link.retry_after())
        try:
            self._memory.admit(batch.span_count)
        except QueueFullError:
            self._telemetry_enqueue_failed(batch.span_count)
            raise
        self._active += 1
        self._idle.clear()
        delivery: _Delivery | None = None
        try:
            delivery = _Delivery.of(self._messages(batch))
            await self._deliver_within_deadline(delivery)
        except PipelineError as exc:
            failed = batch.span_count if delivery is None else delivery.unacked_spans + delivery.rejected_spans
            self._on_batch_failed(failed, exc)
            if isinstance(exc, RetryableError) and exc.retry_after is None:
                exc.retry_after = link.retry_after() if link.producer is None else 5.0
            raise
        finally:
            self._active -= 1
            if self._active == 0:
                self._idle.set()
            memory, spans = self._memory, batch.span_count
            if delivery is None:
                memory.release(spans)
            else:
                # Sends still outstanding in the producer keep their room in the queue.
                delivery.when_settled(lambda: memory.release(spans))

    def _messages(self, batch: TraceBatch) -> list[Message]:
        cfg = self._config
        return to_messages(batch, by_trace_id=cfg.partition_traces_by_id, max_bytes=cfg.producer.max_message_bytes)

    async def _deliver_within_deadline(self, delivery: _Delivery) -> None:
        cfg = self._config

        async def attempt() -> None:
            await self._attempt(delivery, max(0.05, remaining(cfg.timeout)))

        def on_retry(exc: Exception, delay: float) -> None:
            self._telemetry().exporter_send_retries.labels(self._id).inc()
            self._set_failing(str(exc))
            held = self._throttle.allow("retry")
            if held is not None:
                self._log.warning("send to Kafka failed, retrying", error=str(exc), retry_in_s=round(delay, 2),
                                  suppressed=held)

        await call_with_retry(attempt, cfg.retry_on_failure, deadline=request_deadline.get(), on_retry=on_retry)
        self._set_ok()

    def _on_batch_failed(self, spans: int, exc: Exception) -> None:
        self._telemetry().exporter_send_failed_spans.labels(self._id).inc(spans)
        self._set_failing(str(exc))
        held = self._throttle.allow(f"failed:{type(exc).__name__}")
        if held is not None:
            self._log.error("spans not sent to Kafka; the client was told", error=str(exc), spans=spans,
                            permanent=isinstance(exc, PermanentError), suppressed=held)

    # -------------------------------------------------------------- one attempt

    async def _attempt(self, delivery: _Delivery, timeout: float) -> None:
        """Send what needs sending, wait up to `timeout` for Kafka's answers, and keep
        only the messages still unacknowledged. Raises while any are left."""
        assert self._link is not None
        producer = self._link.require()
        topic = self._config.topic
        telemetry = self._telemetry()
        t0 = time.perf_counter()
        timed_out = False
        try:
            async with asyncio.timeout(timeout):
                for slot in delivery.slots:
                    if slot.future is not None:
                        continue
                    try:
                        slot.future = await producer.send(topic, slot.message.value, key=slot.message.key)
                    except kafka_errors.KafkaError as exc:
                        slot.send_error = exc
                        continue
                    slot.future.add_done_callback(self._sent_counter(slot.message.span_count))
                waiting = [s.future for s in delivery.slots if s.future is not None and not s.future.done()]
                if waiting:
                    await asyncio.wait(waiting)
        except TimeoutError:
            timed_out = True
        finally:
            telemetry.exporter_send_duration.labels(self._id).observe(time.perf_counter() - t0)
        error = self._settle(delivery, producer)
        if delivery.slots:
            if timed_out and error is None:
                error = f"Kafka did not acknowledge within {timeout:.2f}s"
            raise RetryableError(f"{len(delivery.slots)} Kafka message(s) not acknowledged: {error}")
        if delivery.rejected:
            _, reason = delivery.rejected[0]
            raise PermanentError(f"Kafka rejected {len(delivery.rejected)} message(s) "
                                 f"({delivery.rejected_spans} spans; {delivery.acked_spans} spans were delivered): "
                                 f"{reason}")

    def _settle(self, delivery: _Delivery, producer: AIOKafkaProducer) -> str | None:
        """Sort each message into acked, rejected, or left to (re)send; the last retryable error."""
        left: list[_Slot] = []
        last_error: str | None = None
        for slot in delivery.slots:
            fut, error = slot.future, slot.send_error
            slot.send_error = None
            if error is None:
                if fut is None or not fut.done():
                    left.append(slot)  # not sent yet, or still awaiting its answer
                    continue
                if fut.cancelled():
                    error = kafka_errors.KafkaError("send cancelled")
                else:
                    error = fut.exception()
                if error is None:
                    delivery.acked_spans += slot.message.span_count
                    continue
            slot.future = None
            if isinstance(error, _TOO_LARGE):
                try:
                    # The broker's limit is below ours: halve until it takes them.
                    parts = split_message(slot.message, max(1024, message_size(slot.message.key,
                                                                               slot.message.value) // 2))
                except PermanentError as exc:
                    delivery.rejected.append((slot.message, f"{_describe(error)}; {exc}"))
                    continue
                left.extend(_Slot(p) for p in parts)
                last_error = f"message too large for the broker, split into {len(parts)}"
            elif isinstance(error, _PERMANENT):
                delivery.rejected.append((slot.message, _describe(error)))
            else:
                if isinstance(error, _PRODUCER_DEAD):
                    assert self._link is not None
                    self._link.reset(producer, _describe(error))
                left.append(slot)
                last_error = _describe(error)
        delivery.slots = left
        return last_error

    def _sent_counter(self, spans: int) -> Callable[[asyncio.Future[Any]], None]:
        counter = self._telemetry().exporter_sent_spans.labels(self._id)

        def count(fut: asyncio.Future[Any]) -> None:
            if not fut.cancelled() and fut.exception() is None:
                counter.inc(spans)

        return count

    # -------------------------------------------------------------- the disk queue's replayer

    async def _replay(self) -> None:
        assert self._disk is not None and self._link is not None
        disk, link = self._disk, self._link
        window = asyncio.Semaphore(_REPLAY_WINDOW)
        while True:
            await link.connected.wait()  # nothing is read from disk while Kafka is unreachable
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
            self._set_failing(str(exc))
            self._log.error("queued batch could not be handled; it stays on disk for the next start",
                            entry=entry.name, error=_describe(exc))

    async def _replay_entry(self, disk: DiskQueue, entry: QueueEntry) -> None:
        cfg = self._config
        telemetry = self._telemetry()
        try:
            batch = TraceBatch.from_bytes(await disk.read(entry))
        except (CorruptEntryError, BadRequestError) as exc:
            target = await disk.quarantine(entry)
            telemetry.exporter_dropped_spans.labels(self._id, "corrupt_queue_entry").inc(entry.span_count)
            self._log.error("corrupt sending queue entry moved aside; its spans are lost", entry=entry.name,
                            moved_to=str(target), spans=entry.span_count, error=str(exc))
            return
        try:
            delivery = _Delivery.of(self._messages(batch))
        except PermanentError as exc:
            delivery = _Delivery([], rejected=[(Message(None, b"", batch.span_count), str(exc))])
        delays = backoff_delays(cfg.retry_on_failure, forever=True)
        while delivery.slots:
            try:
                await self._attempt(delivery, cfg.timeout)
            except PermanentError:
                break  # counted below; the rest of the batch was delivered
            except Exception as exc:
                telemetry.exporter_send_retries.labels(self._id).inc()
                self._set_failing(str(exc))
                delay = next(delays)
                held = self._throttle.allow("replay")
                if held is not None:
                    self._log.warning("sending a queued batch to Kafka failed; retrying until it is acknowledged",
                                      error=str(exc), retry_in_s=round(delay, 2), queued_entries=disk.entries,
                                      queued_spans=disk.spans, suppressed=held)
                await asyncio.sleep(delay)
        if delivery.rejected:
            spans = delivery.rejected_spans
            telemetry.exporter_send_failed_spans.labels(self._id).inc(spans)
            telemetry.exporter_dropped_spans.labels(self._id, "rejected").inc(spans)
            self._log.error("Kafka rejected a queued batch; its spans are dropped", entry=entry.name, spans=spans,
                            error=delivery.rejected[0][1])
        else:
            self._set_ok()
        await disk.remove(entry)

    # -------------------------------------------------------------- status and metrics

    def _telemetry(self) -> Telemetry:
        assert self._host is not None
        return self._host.telemetry

    def _telemetry_enqueue_failed(self, spans: int) -> None:
        self._telemetry().exporter_enqueue_failed_spans.labels(self._id).inc(spans)
        held = self._throttle.allow("queue_full")
        if held is not None:
            self._log.warning("sending queue full; refusing batches (clients retry)", spans=spans, suppressed=held)

    def _set_failing(self, error: str) -> None:
        if not self._failing:
            self._failing = True
            if self._host is not None:
                self._host.report_status(self._settings.id, Kind.EXPORTER, Status.RECOVERABLE_ERROR, error)

    def _set_ok(self) -> None:
        if self._failing:
            self._failing = False
            if self._host is not None:
                self._host.report_status(self._settings.id, Kind.EXPORTER, Status.OK)
