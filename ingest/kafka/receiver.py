"""The `kafka` receiver: the writer's front door (Kafka -> processors -> ClickHouse).

It reads the topic of each signal that has a pipeline naming it (otlp_spans, otlp_logs,
otlp_metrics by default) in one consumer group; a partition's messages decode to its
topic's signal and go to that signal's pipelines, with the same batching, plans, tokens
and commits whatever the signal.

This module is the component: its lifecycle, the connection to the group, the one poll
loop that fetches for every partition, and rebalancing (assignment, revocation, reading
each new partition's committed offset and batch plan back). Each assigned partition is
then processed by its own `PartitionWorker` (worker.py), which cuts batches, hands them
on and commits; metrics.py holds the receiver's metrics.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from tracehouse.core.component import Host, Kind, Settings, Status, signal_consumers
from tracehouse.core.pdata import BATCH_TYPES
from tracehouse.net.kafka import client_kwargs
from tracehouse.net.tls import TlsFileError
from tracehouse.core.logs import RateLimited
from tracehouse.core.telemetry import Telemetry
from tracehouse.ingest.kafka.config import KafkaReceiverConfig
from tracehouse.ingest.kafka.dlq import DeadLetterQueue, stop_quietly
from tracehouse.ingest.kafka.metrics import KafkaReceiverMetrics
from tracehouse.ingest.kafka.partition import decode
from tracehouse.ingest.kafka.worker import CommittedOffsets, PartitionWorker, WorkerServices, retry_delays

_POLL_MS = 200  # getmany's wait; bounds how fast shutdown stops fetching
_MAX_RECORDS = 1000  # per getmany, across partitions
_PLAN_READ_TIMEOUT = 10.0


class _Listener(ConsumerRebalanceListener):
    """Called from aiokafka's coordinator task; it must never wait on getmany()."""

    def __init__(self, receiver: KafkaReceiver):
        self._receiver = receiver

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self._receiver._on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self._receiver._on_assigned(set(assigned))


class KafkaReceiver:
    def __init__(self, settings: Settings, config: KafkaReceiverConfig, next_consumer: Any):
        self._settings = settings
        self._config = config
        self._log = settings.logger
        self._id = str(settings.id)
        self._host: Host | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions: dict[TopicPartition, PartitionWorker] = {}
        self._dlq = DeadLetterQueue(config, self._log)
        self._status: tuple[Status, str | None] | None = None
        self._connect_log = RateLimited(30.0)
        self._metrics = KafkaReceiverMetrics(self._id, self._telemetry)
        consumers = signal_consumers(next_consumer)
        # Topic -> (its signal's batch type, that signal's pipelines), for the signals with one.
        self._topics = {config.topic_of(signal): (BATCH_TYPES[signal], consumer)
                        for signal in sorted(consumers.signals) if (consumer := consumers.get(signal)) is not None}
        self._worker_services = WorkerServices(
            batch_limits=config.batch, error_backoff=config.error_backoff, consumers=self._topics,
            dlq=self._dlq, metrics=self._metrics, log=self._log, retry_log=RateLimited(10.0),
            consumer=lambda: self._consumer, commit=self._commit, read_plans=self._read_plans,
            retrying_changed=self._retrying_changed)

    # -- introspection (health pages, tests) ----------------------------------------
    def assigned_partitions(self) -> set[TopicPartition]:
        return set(self._partitions)

    def paused_partitions(self) -> set[TopicPartition]:
        return {tp for tp, worker in self._partitions.items() if worker.paused}

    # -- lifecycle -------------------------------------------------------------------
    async def start(self, host: Host) -> None:
        if self._task is not None or self._stopping.is_set():
            return
        self._host = host
        # Connecting and joining the group happen in the background: a broker that is not
        # up yet is a recoverable condition, not a failed start.
        self._task = asyncio.create_task(self._run(), name=f"kafka-receiver-{self._id}")
        self._task.add_done_callback(self._run_ended)

    def _run_ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        error = task.exception()
        self._log.error("kafka receiver stopped consuming after an unexpected error", error=repr(error))
        self._report(Status.PERMANENT_ERROR, f"consumer loop failed: {error!r}")

    async def shutdown(self) -> None:
        """Stop fetching, let in-flight batches finish and commit (up to drain_timeout), close."""
        self._stopping.set()
        task, self._task = self._task, None
        if task is None:
            return
        try:
            done, _ = await asyncio.wait({task}, timeout=_POLL_MS / 1000 + 1.0)
            if not done:  # still connecting, or waiting out a rebalance inside getmany()
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await self._drain(list(self._partitions.values()), self._config.drain_timeout)
        finally:
            for worker in self._partitions.values():
                self._metrics.remove_lag(worker.tp)
            self._partitions.clear()
            consumer, self._consumer = self._consumer, None
            if consumer is not None:
                await stop_quietly(consumer)
            await self._dlq.close()
        self._log.info("kafka receiver stopped", topics=sorted(self._topics), group_id=self._config.group_id)

    # -- connection and fetching -----------------------------------------------------
    def _new_consumer(self) -> AIOKafkaConsumer:
        cfg = self._config
        consumer = AIOKafkaConsumer(
            group_id=cfg.group_id, enable_auto_commit=False, auto_offset_reset=cfg.initial_offset,
            session_timeout_ms=_ms(cfg.session_timeout), heartbeat_interval_ms=_ms(cfg.heartbeat_interval),
            rebalance_timeout_ms=_ms(cfg.rebalance_timeout), **client_kwargs(cfg))
        consumer.subscribe(sorted(self._topics), listener=_Listener(self))
        return consumer

    async def _run(self) -> None:
        delays = retry_delays(self._config.error_backoff)
        while not self._stopping.is_set():
            try:
                consumer = self._new_consumer()
            except TlsFileError as exc:
                # A TLS file that no longer loads (mid-rotation) is retried like a broker that is down.
                delay = next(delays)
                self._report(Status.RECOVERABLE_ERROR, f"cannot load the TLS files: {exc}")
                self._connect_log(self._log.warning, "kafka TLS files do not load; retrying", error=str(exc),
                                  retry_in_s=round(delay, 2))
                await self._rest(delay)
                continue
            self._consumer = consumer
            try:
                await consumer.start()
            except Exception as exc:
                self._consumer = None
                await stop_quietly(consumer)
                delay = next(delays)
                self._report(Status.RECOVERABLE_ERROR, f"cannot reach Kafka: {exc}")
                self._connect_log(self._log.warning, "kafka not reachable; retrying", brokers=self._config.brokers,
                                  error=str(exc) or type(exc).__name__, retry_in_s=round(delay, 2))
                await self._rest(delay)
                continue
            except BaseException:
                self._consumer = None
                await stop_quietly(consumer)
                raise
            delays = retry_delays(self._config.error_backoff)
            self._report(Status.OK)
            self._log.info("kafka receiver started", topics=sorted(self._topics), group_id=self._config.group_id,
                           brokers=self._config.brokers)
            try:
                await self._poll(consumer)
                return
            except Exception as exc:
                self._log.error("kafka consumer failed; reconnecting", error=str(exc) or type(exc).__name__)
                self._report(Status.RECOVERABLE_ERROR, f"kafka consumer failed: {exc}")
                await self._drain(list(self._partitions.values()), 0.0)
                for worker in self._partitions.values():
                    self._metrics.remove_lag(worker.tp)
                self._partitions.clear()
                self._consumer = None
                await stop_quietly(consumer)
                await self._rest(next(delays))

    async def _rest(self, delay: float) -> None:
        """Sleep, but return at once when shutting down."""
        try:
            await asyncio.wait_for(self._stopping.wait(), delay)
        except TimeoutError:
            pass

    async def _poll(self, consumer: AIOKafkaConsumer) -> None:
        while not self._stopping.is_set():
            fetched = await consumer.getmany(timeout_ms=_POLL_MS, max_records=_MAX_RECORDS)
            now = time.monotonic()
            # No await between getmany() and here: a rebalance cannot slip in between.
            for tp, records in fetched.items():
                worker = self._partitions.get(tp)
                if worker is None or worker.closing.is_set():
                    continue
                batch_type = worker.batch_type
                messages = [decode(r.offset, r.key, r.value, r.headers or (), now, batch_type) for r in records]
                self._metrics.invalid(batch_type.signal, messages)
                worker.add(messages)
            for worker in self._partitions.values():
                worker.report_lag()

    # -- rebalance -------------------------------------------------------------------
    async def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        if self._stopping.is_set():
            return
        # aiokafka revokes everything before a new assignment; this only guards against a
        # partition that vanished without a revoke.
        stale = [worker for tp, worker in self._partitions.items() if tp not in assigned]
        if stale:
            await self._drain(stale, 0.0)
            for worker in stale:
                self._partitions.pop(worker.tp, None)
                self._metrics.remove_lag(worker.tp)
        new = sorted(tp for tp in assigned if tp not in self._partitions)
        plans = await self._read_plans(new)
        replaying = {}
        for tp in new:
            worker = PartitionWorker(tp, self._worker_services)
            if plans is not None:  # else the worker reads its plan itself, retrying
                worker.load_plan(plans)
                if worker.batcher.plan_end is not None:
                    replaying[f"{tp.topic}/{tp.partition}"] = f"{worker.committed}-{worker.batcher.plan_end}"
            self._partitions[tp] = worker
            worker.start(name=f"kafka-{self._id}-{tp.topic}-{tp.partition}")
        self._log.info("partitions assigned", partitions=sorted(f"{tp.topic}/{tp.partition}" for tp in assigned),
                       replaying_batches=replaying or None)

    async def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        workers = [self._partitions[tp] for tp in revoked if tp in self._partitions]
        await self._drain(workers, self._config.drain_timeout)
        for worker in workers:
            self._partitions.pop(worker.tp, None)
            self._metrics.remove_lag(worker.tp)
        if revoked:
            self._log.info("partitions revoked", partitions=sorted(f"{tp.topic}/{tp.partition}" for tp in revoked))

    async def _drain(self, workers: list[PartitionWorker], timeout: float) -> None:
        """Let each worker finish its in-flight batch (consume + commit), then stop it.

        Messages fetched but not yet in a batch are dropped: the partition's next owner
        fetches them again from the committed offset."""
        for worker in workers:
            worker.close()
        tasks = {worker.task for worker in workers if worker.task is not None and not worker.task.done()}
        if not tasks:
            return
        busy = [w.tp.partition for w in workers if w.busy]
        _, pending = await asyncio.wait(tasks, timeout=timeout) if timeout > 0 else (set(), tasks)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if pending and busy:
            self._log.warning("in-flight batch abandoned at drain_timeout; its next owner replays it with the "
                              "same token", partitions=busy, drain_timeout_s=timeout)

    async def _read_plans(self, tps: list[TopicPartition]) -> CommittedOffsets | None:
        """Committed offsets with their metadata (`committed()` drops the metadata)."""
        if not tps:
            return {}
        consumer = self._consumer
        coordinator = getattr(consumer, "_coordinator", None)
        if coordinator is None:
            return None
        try:
            offsets: CommittedOffsets = await asyncio.wait_for(
                coordinator.fetch_committed_offsets(tps), _PLAN_READ_TIMEOUT)
        except Exception as exc:
            self._log.warning("could not read committed offsets; the partition workers retry",
                              error=str(exc) or type(exc).__name__)
            return None
        return offsets

    # -- hooks for the partition workers ----------------------------------------------
    async def _commit(self, worker: PartitionWorker, offset: int, metadata: str) -> None:
        """Every offset commit of every partition goes through here; the worker retries it
        until done, the partition is lost, or abandoned. A seam: tests override it."""
        await worker.commit(offset, metadata)

    def _retrying_changed(self, retrying: bool, error: str | None) -> None:
        if retrying:
            self._report(Status.RECOVERABLE_ERROR, f"pipeline refused a batch: {error}")
        elif not any(w.retrying for w in self._partitions.values()):
            self._report(Status.OK)

    # -- status ----------------------------------------------------------------------
    def _report(self, status: Status, error: str | None = None) -> None:
        if self._host is None or self._status == (status, error):
            return
        self._status = (status, error)
        self._host.report_status(self._settings.id, Kind.RECEIVER, status, error)

    def _telemetry(self) -> Telemetry | None:
        return self._host.telemetry if self._host is not None else None


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
