"""One batch's delivery to Kafka: its messages, which of them Kafka acknowledged, and
what to do with each error (split, give up, or send again)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import errors as kafka_errors

from tracehouse.core.component import Signal
from tracehouse.core.errors import PermanentError, RetryableError
from tracehouse.core.exporterhelper import ExportRequest
from tracehouse.sinks.kafka.marshal import ProducedRecord, message_size, split_message
from tracehouse.sinks.kafka.producer import ProducerLink, describe

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


@dataclass(slots=True)
class _Slot:
    record: ProducedRecord
    future: asyncio.Future[Any] | None = None  # of the latest send; None = (re)send
    send_error: BaseException | None = None


@dataclass(slots=True)
class KafkaDelivery(ExportRequest):
    """The records of one batch that Kafka has not acknowledged yet.

    A record is sent again only after its previous send failed; one still awaiting its
    answer is waited on, not duplicated, so retries never write a record twice."""

    link: ProducerLink
    topic: str
    slots: list[_Slot]
    item_count: int = 0
    acked_items: int = 0
    rejected: list[tuple[ProducedRecord, str]] = field(default_factory=list)
    headers: list[tuple[str, bytes]] | None = None  # on every record (the batch's tenant)
    signal: Signal = Signal.TRACES  # what the records hold (how to split one)

    @classmethod
    def of(cls, link: ProducerLink, topic: str, records: list[ProducedRecord],
           headers: list[tuple[str, bytes]] | None = None, signal: Signal = Signal.TRACES) -> KafkaDelivery:
        return cls(link, topic, [_Slot(r) for r in records], item_count=sum(r.item_count for r in records),
                   headers=headers, signal=signal)

    @property
    def delivered_items(self) -> int:
        return self.acked_items

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

    async def send(self) -> None:
        """Send what needs sending, wait for Kafka's answers, and keep only the records
        still unacknowledged. Raises while any are left. Cancelled by the exporter's
        timeout, it leaves the answers in flight to be collected by the next attempt."""
        producer = self.link.require()
        self._settle(producer)  # answers that came after the previous attempt's timeout
        for slot in self.slots:
            if slot.future is not None:
                continue
            try:
                slot.future = await producer.send(self.topic, slot.record.value, key=slot.record.key,
                                                  headers=self.headers)
            except kafka_errors.KafkaError as exc:
                slot.send_error = exc
        waiting = [s.future for s in self.slots if s.future is not None and not s.future.done()]
        if waiting:
            await asyncio.wait(waiting)
        error = self._settle(producer)
        if self.slots:
            raise RetryableError(f"{len(self.slots)} Kafka message(s) not acknowledged: {error}")
        if self.rejected:
            _, reason = self.rejected[0]
            items = self.signal.items
            raise PermanentError(f"Kafka rejected {len(self.rejected)} message(s) ({self.rejected_items} {items}; "
                                 f"{self.acked_items} {items} were delivered): {reason}")

    @property
    def rejected_items(self) -> int:
        return sum(r.item_count for r, _ in self.rejected)

    def _settle(self, producer: Any) -> str | None:
        """Sort each record into acked, rejected, or left to (re)send; the last retryable error."""
        left: list[_Slot] = []
        last_error: str | None = None
        for slot in self.slots:
            fut, error = slot.future, slot.send_error
            slot.send_error = None
            if error is None:
                if fut is None or not fut.done():
                    left.append(slot)  # not sent yet, or still awaiting its answer
                    continue
                error = kafka_errors.KafkaError("send cancelled") if fut.cancelled() else fut.exception()
                if error is None:
                    self.acked_items += slot.record.item_count
                    continue
            slot.future = None
            if isinstance(error, _TOO_LARGE):
                try:
                    # The broker's limit is below ours: halve until it takes them.
                    parts = split_message(slot.record, max(1024, message_size(slot.record.key,
                                                                              slot.record.value) // 2), self.signal)
                except PermanentError as exc:
                    self.rejected.append((slot.record, f"{describe(error)}; {exc}"))
                    continue
                left.extend(_Slot(p) for p in parts)
                last_error = f"message too large for the broker, split into {len(parts)}"
            elif isinstance(error, _PERMANENT):
                self.rejected.append((slot.record, describe(error)))
            else:
                if isinstance(error, _PRODUCER_DEAD):
                    self.link.reset(producer, describe(error))
                left.append(slot)
                last_error = describe(error)
        self.slots = left
        return last_error
