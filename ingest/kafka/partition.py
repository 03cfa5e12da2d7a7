"""One partition's pending messages and the rule that cuts them into batches.

No I/O here. A batch is a run of consecutive offsets [first, last]; its identity, the
token `topic/partition/first-last`, travels to ClickHouse as the insert's deduplication
token. The cut itself depends on timing (a timeout), so before a batch is consumed the
receiver commits `first` with the metadata `tracehouse:end=<last>` (the batch's *plan*).
After a crash between insert and commit, the next owner reads that plan back and cuts
exactly [first, last] again, so ClickHouse sees the same token and drops the replay.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tracehouse.core.auth import TENANT_HEADER
from tracehouse.core.pdata import DEFAULT_TENANT, OtlpBatch, RecordRange, TraceBatch
from tracehouse.ingest.kafka.config import KafkaBatchConfig
from tracehouse.ingest.otlp.validate import drop_invalid

_PLAN_PREFIX = "tracehouse:end="
_PLAN_RE = re.compile(r"^tracehouse:end=(\d+)$")


def plan_metadata(last: int) -> str:
    return f"{_PLAN_PREFIX}{last}"


def parse_plan(metadata: str | None) -> int | None:
    """The planned last offset from commit metadata, or None (no batch was in flight)."""
    m = _PLAN_RE.match(metadata or "")
    return int(m[1]) if m else None


def batch_token(topic: str, partition: int, first: int, last: int) -> str:
    return RecordRange(topic, partition, first, last).token


@dataclass(slots=True)
class ConsumedRecord:
    """One Kafka record, decoded once on arrival to learn its item count.

    The parsed request is not kept (it is many times the wire size); `clean` holds the
    valid items serialized, which is the record's own value when nothing was dropped.
    `spans` and `invalid_spans` count the items of the topic's signal (spans, log records
    or data points).
    """

    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    arrived: float
    spans: int = 0
    invalid_spans: int = 0
    clean: bytes | None = None  # None: undecodable, see `error`
    error: str = ""
    tenant: str = DEFAULT_TENANT  # from the record's tracehouse-tenant header

    @property
    def nbytes(self) -> int:
        return len(self.value) if self.value else 0


def decode(offset: int, key: bytes | None, value: bytes | None, headers: Iterable[tuple[str, bytes]],
           arrived: float, batch_type: type[OtlpBatch[Any]] = TraceBatch) -> ConsumedRecord:
    msg = ConsumedRecord(offset, key, value, tuple(headers), arrived)
    for name, header in msg.headers:
        if name == TENANT_HEADER:
            msg.tenant = header.decode("utf-8", "replace")
    try:
        batch = batch_type.from_bytes(value or b"")
    except Exception as exc:  # BadRequestError from protobuf, or anything a hostile payload triggers
        msg.error = str(exc) or type(exc).__name__
        return msg
    msg.invalid_spans, _ = drop_invalid(batch)
    msg.spans = batch.item_count
    msg.clean = batch.to_bytes()
    return msg


@dataclass(slots=True)
class PartitionBatch:
    """Consecutive records of one partition, cut to be delivered as one batch.

    `planned`: cut again from the plan a crashed owner committed, so it is the same range."""

    topic: str
    partition: int
    messages: list[ConsumedRecord]
    planned: bool = False

    @property
    def first(self) -> int:
        return self.messages[0].offset

    @property
    def last(self) -> int:
        return self.messages[-1].offset

    @property
    def range(self) -> RecordRange:
        return RecordRange(self.topic, self.partition, self.first, self.last)

    @property
    def token(self) -> str:
        return self.range.token


def build_batch(topic: str, partition: int, messages: Sequence[ConsumedRecord],
                batch_type: type[OtlpBatch[Any]] = TraceBatch) -> OtlpBatch[Any]:
    """A fresh batch (of the topic's signal) of the decodable messages, tagged with the records' range.

    Serialized requests concatenate into their merge, so this is one parse. Built anew
    for every attempt: processors may change the batch they are given.
    """
    batch = batch_type.from_bytes(b"".join(m.clean for m in messages if m.clean is not None))
    batch.origin = RecordRange(topic, partition, messages[0].offset, messages[-1].offset)
    batch.tenant = messages[0].tenant
    return batch


def tenant_runs(messages: Sequence[ConsumedRecord]) -> list[list[ConsumedRecord]]:
    """Consecutive records of one tenant: a batch is one tenant's, and each run keeps
    consecutive offsets, so its token is as deterministic as the cut's."""
    runs: list[list[ConsumedRecord]] = []
    for msg in messages:
        if runs and runs[-1][-1].tenant == msg.tenant:
            runs[-1].append(msg)
        else:
            runs.append([msg])
    return runs


class PartitionBatcher:
    """Pending (fetched, not yet cut) messages of one partition.

    Unplanned cuts: due when the pending spans or bytes reach a limit, or when the oldest
    pending message has waited `timeout`; the cut takes the longest prefix within both
    limits (at least one message). A planned cut (`plan_end`, read back from the
    committed metadata) takes exactly the offsets up to `plan_end`, whatever the limits.
    """

    def __init__(self, topic: str, partition: int, limits: KafkaBatchConfig, plan_end: int | None = None):
        self.topic = topic
        self.partition = partition
        self.limits = limits
        self.plan_end = plan_end
        self.pending: deque[ConsumedRecord] = deque()
        self.spans = 0
        self.nbytes = 0
        self.first_seen: int | None = None  # first offset fetched since assignment
        self._next_offset: int | None = None

    def __len__(self) -> int:
        return len(self.pending)

    def add(self, messages: Iterable[ConsumedRecord]) -> None:
        for msg in messages:
            if self._next_offset is not None and msg.offset < self._next_offset:
                continue  # already pending (a re-fetch after pause/seek)
            if self.first_seen is None:
                self.first_seen = msg.offset
            self._next_offset = msg.offset + 1
            self.pending.append(msg)
            self.spans += msg.spans
            self.nbytes += msg.nbytes

    @property
    def full(self) -> bool:
        """At least one whole batch is waiting: time to stop fetching this partition."""
        return self.spans >= self.limits.max_spans or self.nbytes >= self.limits.max_bytes

    def wait_time(self, now: float) -> float | None:
        """Seconds until a cut is due: 0 = now, None = nothing pending."""
        if not self.pending:
            return None
        if self.plan_end is not None:
            if self.pending[0].offset > self.plan_end:  # the planned records are gone (retention)
                self.plan_end = None
            elif self.pending[-1].offset >= self.plan_end:
                return 0.0
        elif self.full:
            return 0.0
        return max(0.0, self.pending[0].arrived + self.limits.timeout - now)

    def cut(self) -> PartitionBatch | None:
        if not self.pending:
            return None
        if self.plan_end is not None and self.pending[0].offset > self.plan_end:
            self.plan_end = None
        taken: list[ConsumedRecord] = []
        planned = self.plan_end is not None
        if planned:
            # A planned range may miss its tail only if records vanished; the timeout then cuts what exists.
            while self.pending and self.pending[0].offset <= self.plan_end:  # type: ignore[operator]
                taken.append(self._pop())
            self.plan_end = None
        else:
            spans = nbytes = 0
            while self.pending:
                head = self.pending[0]
                if taken and (spans + head.spans > self.limits.max_spans
                              or nbytes + head.nbytes > self.limits.max_bytes):
                    break
                taken.append(self._pop())
                spans += head.spans
                nbytes += head.nbytes
        return PartitionBatch(self.topic, self.partition, taken, planned)

    def _pop(self) -> ConsumedRecord:
        msg = self.pending.popleft()
        self.spans -= msg.spans
        self.nbytes -= msg.nbytes
        return msg

