"""The per-partition worker of the `kafka` receiver: cut, deliver, commit, and retry.

Each assigned partition has one worker task, so a partition that is retrying never holds
the others up. The receiver's poll loop hands the worker its fetched messages; the worker
cuts them into batches of consecutive offsets and, for a batch [first, last]:

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
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import OffsetAndMetadata

from tracehouse.core.component import Consumer
from tracehouse.core.errors import PermanentError, RetryableError
from tracehouse.core.logs import RateLimited
from tracehouse.core.pdata import OtlpBatch
from tracehouse.core.retry import RetryConfig, backoff_delays
from tracehouse.ingest.kafka.config import KafkaBatchConfig
from tracehouse.ingest.kafka.dlq import DeadLetterQueue
from tracehouse.ingest.kafka.metrics import KafkaReceiverMetrics
from tracehouse.ingest.kafka.partition import (
    ConsumedRecord,
    PartitionBatch,
    PartitionBatcher,
    batch_token,
    build_batch,
    parse_plan,
    plan_metadata,
    tenant_runs,
)

CommittedOffsets = dict[TopicPartition, OffsetAndMetadata]


class _PartitionLost(Exception):
    """The group moved the partition elsewhere: stop working on it, commit nothing more."""


class _Abandoned(Exception):
    """A revoke or shutdown interrupted a retry; the committed plan lets the next owner replay it."""


def retry_delays(cfg: RetryConfig) -> Iterator[float]:
    """error_backoff's schedule, never given up (max_elapsed_time does not apply);
    disabled, initial_interval every time."""
    return backoff_delays(cfg, forever=True) if cfg.enabled else itertools.repeat(cfg.initial_interval)


@dataclass(frozen=True, eq=False)
class WorkerServices:
    """What the partition workers of one receiver share; the receiver builds it once."""

    batch_limits: KafkaBatchConfig
    error_backoff: RetryConfig
    # The pipelines of each topic's signal, and the batch type its messages decode to.
    consumers: dict[str, tuple[type[OtlpBatch[Any]], Consumer]]
    dlq: DeadLetterQueue
    metrics: KafkaReceiverMetrics
    log: Any
    retry_log: RateLimited  # one throttle for the retries of every partition
    # The receiver's current consumer; None once it is closed.
    consumer: Callable[[], AIOKafkaConsumer | None]
    # `KafkaReceiver._commit`: every offset commit goes through it (tests override it).
    commit: Callable[[PartitionWorker, int, str], Awaitable[None]]
    # Committed offsets with their metadata; None when they cannot be read now.
    read_plans: Callable[[list[TopicPartition]], Awaitable[CommittedOffsets | None]]
    # Called when a worker starts or stops retrying a refused batch (the receiver's status).
    retrying_changed: Callable[[bool, str | None], None]


class PartitionWorker:
    """One assigned partition: its pending messages, and the task that batches and commits them."""

    def __init__(self, tp: TopicPartition, services: WorkerServices):
        self.tp = tp
        self.batch_type, self._next = services.consumers[tp.topic]
        self.batcher = PartitionBatcher(tp.topic, tp.partition, services.batch_limits)
        self.committed: int | None = None
        self.loaded = False  # committed offset and plan read back
        self.busy = False  # a batch is between its plan commit and its final commit
        self.retrying = False
        self.paused = False
        self.wake = asyncio.Event()
        self.closing = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self._services = services
        self._log = services.log

    # -- driven by the receiver --------------------------------------------------------
    def start(self, name: str) -> None:
        self.task = asyncio.create_task(self._work(), name=name)

    def close(self) -> None:
        """Cut no new batch; the one in flight (if any) goes on to its final commit."""
        self.closing.set()
        self.wake.set()

    def load_plan(self, plans: CommittedOffsets) -> None:
        """Take the committed offset and, if a batch was in flight, its plan."""
        committed = plans.get(self.tp)
        if committed is not None and committed.offset >= 0:
            self.committed = committed.offset
            end = parse_plan(committed.metadata)
            if end is not None and end >= committed.offset:
                self.batcher.plan_end = end
        self.loaded = True

    def add(self, messages: list[ConsumedRecord]) -> None:
        """Fetched messages, in offset order."""
        self.batcher.add(messages)
        self.wake.set()
        self.update_pause()

    def update_pause(self) -> None:
        """Stop fetching a partition that is retrying or already has a whole batch waiting."""
        want = self.retrying or self.batcher.full
        consumer = self._services.consumer()
        if want == self.paused or consumer is None or self.closing.is_set():
            return
        try:
            if want:
                consumer.pause(self.tp)
            else:
                consumer.resume(self.tp)
        except (IllegalStateError, AssertionError):  # not assigned any more
            return
        self.paused = want

    def report_lag(self) -> None:
        base = self.committed if self.committed is not None else self.batcher.first_seen
        self._services.metrics.set_lag(self._services.consumer(), self.tp, base)

    # -- the task --------------------------------------------------------------------
    async def _work(self) -> None:
        try:
            await self._ensure_loaded()
            while True:
                cut = await self._next_cut()
                if cut is None:
                    return
                self.busy = True
                try:
                    await self._process_until_done(cut)
                finally:
                    self.busy = False
        except _Abandoned:
            return
        except _PartitionLost as exc:
            self._log.warning("partition lost to a rebalance; leaving it to its new owner",
                              partition=self.tp.partition, error=str(exc))

    async def _ensure_loaded(self) -> None:
        delays = self._delays()
        while not self.loaded:
            plans = await self._services.read_plans([self.tp])
            if plans is not None:
                self.load_plan(plans)
            else:
                await self._backoff_sleep(next(delays))

    async def _next_cut(self) -> PartitionBatch | None:
        while not self.closing.is_set():
            wait = self.batcher.wait_time(time.monotonic())
            if wait == 0:
                cut = self.batcher.cut()
                self.update_pause()
                if cut is not None:
                    return cut
                continue
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), wait)
            except TimeoutError:
                pass
        return None

    async def _process_until_done(self, cut: PartitionBatch) -> None:
        delays = self._delays()
        while True:
            try:
                await self._process(cut)
                return
            except (_Abandoned, _PartitionLost):
                raise
            except Exception as exc:  # a bug somewhere: never skip the batch, retry it
                delay = next(delays)
                self._log.exception("unexpected error while handling a batch; retrying it", token=cut.token,
                                    error=str(exc), retry_in_s=round(delay, 2))
                await self._backoff_sleep(delay)

    async def _process(self, cut: PartitionBatch) -> None:
        t0 = time.monotonic()
        await self._services.commit(self, cut.first, plan_metadata(cut.last))
        refused = 0
        for msg in cut.messages:
            if msg.clean is None:
                await self._dead_letter(msg, "decode_error", msg.error)
                refused += 1
        good = [m for m in cut.messages if m.clean is not None]
        for run in tenant_runs(good):
            refused += await self._deliver(run)
        await self._services.commit(self, cut.last + 1, "")
        self.committed = cut.last + 1
        self._services.metrics.batch_done(self.tp.topic, len(cut.messages) - refused, time.monotonic() - t0)
        self.report_lag()

    async def _deliver(self, messages: list[ConsumedRecord]) -> int:
        """Hand the messages on; returns how many were refused permanently (and dead-lettered)."""
        try:
            await self._consume(messages)
            return 0
        except PermanentError as exc:
            if len(messages) == 1:
                await self._dead_letter(messages[0], "permanent_error", str(exc))
                return 1
            # Halves keep consecutive offsets, so their tokens are as deterministic as the batch's.
            mid = len(messages) // 2
            self._log.warning("pipeline refused a batch permanently; bisecting to the refused messages",
                              token=batch_token(self.tp.topic, self.tp.partition, messages[0].offset,
                                                messages[-1].offset), error=str(exc))
            return await self._deliver(messages[:mid]) + await self._deliver(messages[mid:])

    async def _consume(self, messages: list[ConsumedRecord]) -> None:
        delays = self._delays()
        while True:
            batch = build_batch(self.tp.topic, self.tp.partition, messages, self.batch_type)
            if batch.item_count == 0:
                return
            try:
                await self._next.consume(batch)
            except PermanentError:
                raise
            except Exception as exc:  # retryable, or unexpected: either way, never drop the batch
                delay = next(delays)
                if isinstance(exc, RetryableError) and exc.retry_after:
                    delay = max(delay, exc.retry_after)
                self._set_retrying(True, str(exc))
                self._services.retry_log(self._log.warning, "pipeline refused a batch; retrying the same batch",
                                         token=batch_token(self.tp.topic, self.tp.partition, messages[0].offset,
                                                           messages[-1].offset),
                                         error=str(exc) or type(exc).__name__, retry_in_s=round(delay, 2))
                await self._backoff_sleep(delay)
                continue
            self._set_retrying(False)
            self._services.metrics.accepted(batch.signal, batch.item_count)
            return

    async def _dead_letter(self, msg: ConsumedRecord, reason: str, error: str) -> None:
        tp = self.tp
        sent = await self._services.dlq.send(msg, tp.topic, tp.partition, reason, error, self._delays(),
                                             self._backoff_sleep)
        self._services.metrics.dead_letter(tp.topic, reason, sent)

    async def commit(self, offset: int, metadata: str) -> None:
        """Commit this partition's offset; retried until done, the partition is lost, or abandoned."""
        delays = self._delays()
        while True:
            consumer = self._services.consumer()
            if consumer is None:
                raise _PartitionLost("the consumer is closed")
            try:
                await consumer.commit({self.tp: OffsetAndMetadata(offset, metadata)})
                return
            except (CommitFailedError, IllegalStateError) as exc:
                raise _PartitionLost(str(exc)) from exc
            except KafkaError as exc:
                delay = next(delays)
                self._services.retry_log(self._log.warning, "offset commit failed; retrying",
                                         partition=self.tp.partition, offset=offset,
                                         error=str(exc) or type(exc).__name__, retry_in_s=round(delay, 2))
                await self._backoff_sleep(delay)

    # -- pacing and pausing ----------------------------------------------------------
    def _delays(self) -> Iterator[float]:
        return retry_delays(self._services.error_backoff)

    async def _backoff_sleep(self, delay: float) -> None:
        """Wait `delay`; raise `_Abandoned` at once if the partition is being closed."""
        try:
            await asyncio.wait_for(self.closing.wait(), delay)
        except TimeoutError:
            return
        raise _Abandoned()

    def _set_retrying(self, retrying: bool, error: str | None = None) -> None:
        if self.retrying == retrying:
            return
        self.retrying = retrying
        self.update_pause()
        self._services.retrying_changed(retrying, error)
