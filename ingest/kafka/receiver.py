"""The `kafka` receiver: the writer's front door (Kafka -> processors -> ClickHouse).

One consumer (a group member) fetches. Each assigned partition has its own worker task
that cuts that partition's messages into batches of consecutive offsets and hands them
on, so a partition that is retrying never holds the others up. For a batch [first, last]
the worker:

1. commits `first` with metadata `tracehouse:end=<last>`: the plan a restart replays;
2. sends undecodable messages to the dead-letter topic;
3. awaits `next.consume(batch)` with the batch tagged `topic/partition/first-last` (the
   ClickHouse insert's deduplication token). On a retryable failure it pauses the
   partition, backs off and retries the same messages with the same token; on a
   permanent one it bisects down to the refusing message(s) and dead-letters them;
4. commits `last+1`, only after consume() returned.

Offsets are therefore committed only past data that is stored or dead-lettered
(at-least-once), and a replay after a crash re-inserts the same ranges with the same
tokens, which ClickHouse drops (exactly-once in effect; see README.md).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import OffsetAndMetadata

from tracehouse.core.component import Host, Kind, Settings, Status, TracesConsumer
from tracehouse.core.errors import PermanentError, RetryableError
from tracehouse.net.kafka import client_kwargs
from tracehouse.core.logs import RateLimited
from tracehouse.core.retry import backoff_delays
from tracehouse.core.telemetry import Telemetry
from tracehouse.ingest.kafka.config import KafkaReceiverConfig
from tracehouse.ingest.kafka.dlq import DeadLetterQueue, stop_quietly
from tracehouse.ingest.kafka.partition import (
    PartitionBatch,
    ConsumedRecord,
    PartitionBatcher,
    batch_token,
    build_batch,
    decode,
    parse_plan,
    plan_metadata,
)

_POLL_MS = 200  # getmany's wait; bounds how fast shutdown stops fetching
_MAX_RECORDS = 1000  # per getmany, across partitions
_PLAN_READ_TIMEOUT = 10.0
_TRANSPORT = "kafka"


class _PartitionLost(Exception):
    """The group moved the partition elsewhere: stop working on it, commit nothing more."""


class _Abandoned(Exception):
    """A revoke or shutdown interrupted a retry; the committed plan lets the next owner replay it."""


@dataclass(eq=False)
class _Partition:
    tp: TopicPartition
    batcher: PartitionBatcher
    committed: int | None = None
    loaded: bool = False  # committed offset and plan read back
    busy: bool = False  # a batch is between its plan commit and its final commit
    retrying: bool = False
    paused: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class _Listener(ConsumerRebalanceListener):
    """Called from aiokafka's coordinator task; it must never wait on getmany()."""

    def __init__(self, receiver: KafkaReceiver):
        self._receiver = receiver

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self._receiver._on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self._receiver._on_assigned(set(assigned))


class KafkaReceiver:
    def __init__(self, settings: Settings, config: KafkaReceiverConfig, next_consumer: TracesConsumer):
        self._settings = settings
        self._config = config
        self._next = next_consumer
        self._log = settings.logger
        self._id = str(settings.id)
        self._host: Host | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions: dict[TopicPartition, _Partition] = {}
        self._dlq = DeadLetterQueue(config, self._log)
        self._status: tuple[Status, str | None] | None = None
        self._connect_log = RateLimited(30.0)
        self._retry_log = RateLimited(10.0)

    # -- introspection (health pages, tests) ----------------------------------------
    def assigned_partitions(self) -> set[TopicPartition]:
        return set(self._partitions)

    def paused_partitions(self) -> set[TopicPartition]:
        return {tp for tp, state in self._partitions.items() if state.paused}

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
            for state in self._partitions.values():
                self._remove_lag(state)
            self._partitions.clear()
            consumer, self._consumer = self._consumer, None
            if consumer is not None:
                await stop_quietly(consumer)
            await self._dlq.close()
        self._log.info("kafka receiver stopped", topic=self._config.topic, group_id=self._config.group_id)

    # -- connection and fetching -----------------------------------------------------
    def _new_consumer(self) -> AIOKafkaConsumer:
        cfg = self._config
        consumer = AIOKafkaConsumer(
            group_id=cfg.group_id, enable_auto_commit=False, auto_offset_reset=cfg.initial_offset,
            session_timeout_ms=_ms(cfg.session_timeout), heartbeat_interval_ms=_ms(cfg.heartbeat_interval),
            rebalance_timeout_ms=_ms(cfg.rebalance_timeout), **client_kwargs(cfg))
        consumer.subscribe([cfg.topic], listener=_Listener(self))
        return consumer

    async def _run(self) -> None:
        delays = self._delays()
        while not self._stopping.is_set():
            consumer = self._consumer = self._new_consumer()
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
            delays = self._delays()
            self._report(Status.OK)
            self._log.info("kafka receiver started", topic=self._config.topic, group_id=self._config.group_id,
                           brokers=self._config.brokers)
            try:
                await self._poll(consumer)
                return
            except Exception as exc:
                self._log.error("kafka consumer failed; reconnecting", error=str(exc) or type(exc).__name__)
                self._report(Status.RECOVERABLE_ERROR, f"kafka consumer failed: {exc}")
                await self._drain(list(self._partitions.values()), 0.0)
                for state in self._partitions.values():
                    self._remove_lag(state)
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
                state = self._partitions.get(tp)
                if state is None or state.closing.is_set():
                    continue
                messages = [decode(r.offset, r.key, r.value, r.headers or (), now) for r in records]
                self._count_invalid(messages)
                state.batcher.add(messages)
                state.wake.set()
                self._update_pause(state)
            for state in self._partitions.values():
                self._set_lag(state)

    # -- rebalance -------------------------------------------------------------------
    async def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        if self._stopping.is_set():
            return
        # aiokafka revokes everything before a new assignment; this only guards against a
        # partition that vanished without a revoke.
        stale = [state for tp, state in self._partitions.items() if tp not in assigned]
        if stale:
            await self._drain(stale, 0.0)
            for state in stale:
                self._partitions.pop(state.tp, None)
                self._remove_lag(state)
        new = sorted(tp for tp in assigned if tp not in self._partitions)
        plans = await self._read_plans(new)
        replaying = {}
        for tp in new:
            state = _Partition(tp, PartitionBatcher(tp.topic, tp.partition, self._config.batch))
            if plans is not None:
                self._apply_plan(state, plans)
                if state.batcher.plan_end is not None:
                    replaying[tp.partition] = f"{state.committed}-{state.batcher.plan_end}"
            self._partitions[tp] = state
            state.task = asyncio.create_task(self._work(state), name=f"kafka-{self._id}-{tp.topic}-{tp.partition}")
        self._log.info("partitions assigned", topic=self._config.topic,
                       partitions=sorted(tp.partition for tp in assigned), replaying_batches=replaying or None)

    async def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        states = [self._partitions[tp] for tp in revoked if tp in self._partitions]
        await self._drain(states, self._config.drain_timeout)
        for state in states:
            self._partitions.pop(state.tp, None)
            self._remove_lag(state)
        if revoked:
            self._log.info("partitions revoked", topic=self._config.topic,
                           partitions=sorted(tp.partition for tp in revoked))

    async def _drain(self, states: list[_Partition], timeout: float) -> None:
        """Let each worker finish its in-flight batch (consume + commit), then stop it.

        Messages fetched but not yet in a batch are dropped: the partition's next owner
        fetches them again from the committed offset."""
        for state in states:
            state.closing.set()
            state.wake.set()
        tasks = {state.task for state in states if state.task is not None and not state.task.done()}
        if not tasks:
            return
        busy = [s.tp.partition for s in states if s.busy]
        _, pending = await asyncio.wait(tasks, timeout=timeout) if timeout > 0 else (set(), tasks)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if pending and busy:
            self._log.warning("in-flight batch abandoned at drain_timeout; its next owner replays it with the "
                              "same token", partitions=busy, drain_timeout_s=timeout)

    async def _read_plans(self, tps: list[TopicPartition]) -> dict[TopicPartition, OffsetAndMetadata] | None:
        """Committed offsets with their metadata (`committed()` drops the metadata)."""
        if not tps:
            return {}
        consumer = self._consumer
        coordinator = getattr(consumer, "_coordinator", None)
        if coordinator is None:
            return None
        try:
            offsets: dict[TopicPartition, OffsetAndMetadata] = await asyncio.wait_for(
                coordinator.fetch_committed_offsets(tps), _PLAN_READ_TIMEOUT)
        except Exception as exc:
            self._log.warning("could not read committed offsets; the partition workers retry",
                              error=str(exc) or type(exc).__name__)
            return None
        return offsets

    @staticmethod
    def _apply_plan(state: _Partition, plans: dict[TopicPartition, OffsetAndMetadata]) -> None:
        committed = plans.get(state.tp)
        if committed is not None and committed.offset >= 0:
            state.committed = committed.offset
            end = parse_plan(committed.metadata)
            if end is not None and end >= committed.offset:
                state.batcher.plan_end = end
        state.loaded = True

    # -- per-partition work ----------------------------------------------------------
    async def _work(self, state: _Partition) -> None:
        try:
            await self._ensure_loaded(state)
            while True:
                cut = await self._next_cut(state)
                if cut is None:
                    return
                state.busy = True
                try:
                    await self._process_until_done(state, cut)
                finally:
                    state.busy = False
        except _Abandoned:
            return
        except _PartitionLost as exc:
            self._log.warning("partition lost to a rebalance; leaving it to its new owner",
                              partition=state.tp.partition, error=str(exc))

    async def _ensure_loaded(self, state: _Partition) -> None:
        delays = self._delays()
        while not state.loaded:
            plans = await self._read_plans([state.tp])
            if plans is not None:
                self._apply_plan(state, plans)
            else:
                await self._backoff_sleep(state, next(delays))

    async def _next_cut(self, state: _Partition) -> PartitionBatch | None:
        while not state.closing.is_set():
            wait = state.batcher.wait_time(time.monotonic())
            if wait == 0:
                cut = state.batcher.cut()
                self._update_pause(state)
                if cut is not None:
                    return cut
                continue
            state.wake.clear()
            try:
                await asyncio.wait_for(state.wake.wait(), wait)
            except TimeoutError:
                pass
        return None

    async def _process_until_done(self, state: _Partition, cut: PartitionBatch) -> None:
        delays = self._delays()
        while True:
            try:
                await self._process(state, cut)
                return
            except (_Abandoned, _PartitionLost):
                raise
            except Exception as exc:  # a bug somewhere: never skip the batch, retry it
                delay = next(delays)
                self._log.exception("unexpected error while handling a batch; retrying it", token=cut.token,
                                     error=str(exc), retry_in_s=round(delay, 2))
                await self._backoff_sleep(state, delay)

    async def _process(self, state: _Partition, cut: PartitionBatch) -> None:
        t0 = time.monotonic()
        await self._commit(state, cut.first, plan_metadata(cut.last))
        refused = 0
        for msg in cut.messages:
            if msg.clean is None:
                await self._dead_letter(state, msg, "decode_error", msg.error)
                refused += 1
        good = [m for m in cut.messages if m.clean is not None]
        if good:
            refused += await self._deliver(state, good)
        await self._commit(state, cut.last + 1, "")
        state.committed = cut.last + 1
        telemetry = self._telemetry()
        if telemetry is not None:
            if len(cut.messages) > refused:
                telemetry.kafka_receiver_messages.labels(self._id, state.tp.topic, "accepted").inc(
                    len(cut.messages) - refused)
            telemetry.kafka_receiver_batch_duration.labels(self._id).observe(time.monotonic() - t0)
        self._set_lag(state)

    async def _deliver(self, state: _Partition, messages: list[ConsumedRecord]) -> int:
        """Hand the messages on; returns how many were refused permanently (and dead-lettered)."""
        try:
            await self._consume(state, messages)
            return 0
        except PermanentError as exc:
            if len(messages) == 1:
                await self._dead_letter(state, messages[0], "permanent_error", str(exc))
                return 1
            # Halves keep consecutive offsets, so their tokens are as deterministic as the batch's.
            mid = len(messages) // 2
            self._log.warning("pipeline refused a batch permanently; bisecting to the refused messages",
                              token=batch_token(state.tp.topic, state.tp.partition, messages[0].offset,
                                                messages[-1].offset), error=str(exc))
            return await self._deliver(state, messages[:mid]) + await self._deliver(state, messages[mid:])

    async def _consume(self, state: _Partition, messages: list[ConsumedRecord]) -> None:
        delays = self._delays()
        while True:
            batch = build_batch(state.tp.topic, state.tp.partition, messages)
            if batch.span_count == 0:
                return
            try:
                await self._next.consume(batch)
            except PermanentError:
                raise
            except Exception as exc:  # retryable, or unexpected: either way, never drop the batch
                delay = next(delays)
                if isinstance(exc, RetryableError) and exc.retry_after:
                    delay = max(delay, exc.retry_after)
                self._set_retrying(state, True, str(exc))
                self._retry_log(self._log.warning, "pipeline refused a batch; retrying the same batch",
                                token=batch_token(state.tp.topic, state.tp.partition, messages[0].offset,
                                                  messages[-1].offset),
                                error=str(exc) or type(exc).__name__, retry_in_s=round(delay, 2))
                await self._backoff_sleep(state, delay)
                continue
            self._set_retrying(state, False)
            telemetry = self._telemetry()
            if telemetry is not None:
                telemetry.receiver_accepted_spans.labels(self._id, _TRANSPORT).inc(batch.span_count)
            return

    async def _dead_letter(self, state: _Partition, msg: ConsumedRecord, reason: str, error: str) -> None:
        tp = state.tp
        sent = await self._dlq.send(msg, tp.topic, tp.partition, reason, error, self._delays(),
                                    lambda delay: self._backoff_sleep(state, delay))
        telemetry = self._telemetry()
        if telemetry is not None:
            if sent:
                telemetry.kafka_receiver_dead_letters.labels(self._id, tp.topic, reason).inc()
            telemetry.kafka_receiver_messages.labels(self._id, tp.topic, "dead_lettered" if sent else "skipped").inc()

    async def _commit(self, state: _Partition, offset: int, metadata: str) -> None:
        """Commit one partition's offset; retried until done, the partition is lost, or abandoned."""
        delays = self._delays()
        while True:
            consumer = self._consumer
            if consumer is None:
                raise _PartitionLost("the consumer is closed")
            try:
                await consumer.commit({state.tp: OffsetAndMetadata(offset, metadata)})
                return
            except (CommitFailedError, IllegalStateError) as exc:
                raise _PartitionLost(str(exc)) from exc
            except KafkaError as exc:
                delay = next(delays)
                self._retry_log(self._log.warning, "offset commit failed; retrying", partition=state.tp.partition,
                                offset=offset, error=str(exc) or type(exc).__name__, retry_in_s=round(delay, 2))
                await self._backoff_sleep(state, delay)

    # -- pacing, pausing, status, metrics ----------------------------------------------
    def _delays(self) -> Iterator[float]:
        """error_backoff's schedule, never given up (max_elapsed_time does not apply);
        disabled, initial_interval every time."""
        cfg = self._config.error_backoff
        return backoff_delays(cfg, forever=True) if cfg.enabled else itertools.repeat(cfg.initial_interval)

    @staticmethod
    async def _backoff_sleep(state: _Partition, delay: float) -> None:
        try:
            await asyncio.wait_for(state.closing.wait(), delay)
        except TimeoutError:
            return
        raise _Abandoned()

    def _set_retrying(self, state: _Partition, retrying: bool, error: str | None = None) -> None:
        if state.retrying == retrying:
            return
        state.retrying = retrying
        self._update_pause(state)
        if retrying:
            self._report(Status.RECOVERABLE_ERROR, f"pipeline refused a batch: {error}")
        elif not any(s.retrying for s in self._partitions.values()):
            self._report(Status.OK)

    def _update_pause(self, state: _Partition) -> None:
        """Stop fetching a partition that is retrying or already has a whole batch waiting."""
        want = state.retrying or state.batcher.full
        consumer = self._consumer
        if want == state.paused or consumer is None or state.closing.is_set():
            return
        try:
            if want:
                consumer.pause(state.tp)
            else:
                consumer.resume(state.tp)
        except (IllegalStateError, AssertionError):  # not assigned any more
            return
        state.paused = want

    def _report(self, status: Status, error: str | None = None) -> None:
        if self._host is None or self._status == (status, error):
            return
        self._status = (status, error)
        self._host.report_status(self._settings.id, Kind.RECEIVER, status, error)

    def _telemetry(self) -> Telemetry | None:
        return self._host.telemetry if self._host is not None else None

    def _count_invalid(self, messages: list[ConsumedRecord]) -> None:
        invalid = sum(m.invalid_spans for m in messages)
        telemetry = self._telemetry()
        if invalid and telemetry is not None:
            telemetry.receiver_refused_spans.labels(self._id, _TRANSPORT, "invalid").inc(invalid)

    def _set_lag(self, state: _Partition) -> None:
        """Lag = high watermark - committed offset (what a restart would have to read again)."""
        telemetry, consumer = self._telemetry(), self._consumer
        if telemetry is None or consumer is None:
            return
        try:
            highwater = consumer.highwater(state.tp)
        except Exception:  # not assigned any more
            return
        base = state.committed if state.committed is not None else state.batcher.first_seen
        if highwater is None or base is None:
            return
        telemetry.kafka_receiver_offset_lag.labels(self._id, state.tp.topic, str(state.tp.partition)).set(
            max(0, highwater - base))

    def _remove_lag(self, state: _Partition) -> None:
        telemetry = self._telemetry()
        if telemetry is None:
            return
        try:
            telemetry.kafka_receiver_offset_lag.remove(self._id, state.tp.topic, str(state.tp.partition))
        except KeyError:
            pass


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
