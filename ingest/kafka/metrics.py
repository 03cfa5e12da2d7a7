"""The `kafka` receiver's metrics (README.md, "Metrics"), labelled with the receiver's id.

Every method is a no-op until the receiver has started: the telemetry comes from the host.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from aiokafka import AIOKafkaConsumer, TopicPartition

from tracehouse.core.component import Signal
from tracehouse.core.telemetry import Telemetry
from tracehouse.ingest.kafka.partition import ConsumedRecord

_TRANSPORT = "kafka"


class KafkaReceiverMetrics:
    def __init__(self, receiver_id: str, telemetry: Callable[[], Telemetry | None]):
        self._id = receiver_id
        self._telemetry = telemetry  # the host's, once the receiver has started

    def invalid(self, signal: Signal, messages: Iterable[ConsumedRecord]) -> None:
        """Items dropped on arrival for invalid ids or times."""
        invalid = sum(m.invalid_spans for m in messages)
        telemetry = self._telemetry()
        if invalid and telemetry is not None:
            telemetry.of(signal).receiver_refused.labels(self._id, _TRANSPORT, "invalid").inc(invalid)

    def accepted(self, signal: Signal, count: int) -> None:
        """Items the pipeline took."""
        telemetry = self._telemetry()
        if telemetry is not None:
            telemetry.of(signal).receiver_accepted.labels(self._id, _TRANSPORT).inc(count)

    def batch_done(self, topic: str, accepted_messages: int, seconds: float) -> None:
        """A batch committed: its messages the pipeline took, and the time from plan commit to final commit."""
        telemetry = self._telemetry()
        if telemetry is None:
            return
        if accepted_messages > 0:
            telemetry.kafka_receiver_messages.labels(self._id, topic, "accepted").inc(accepted_messages)
        telemetry.kafka_receiver_batch_duration.labels(self._id).observe(seconds)

    def dead_letter(self, topic: str, reason: str, sent: bool) -> None:
        """A message the pipeline cannot take: dead-lettered if `sent`, else skipped (no topic)."""
        telemetry = self._telemetry()
        if telemetry is None:
            return
        if sent:
            telemetry.kafka_receiver_dead_letters.labels(self._id, topic, reason).inc()
        telemetry.kafka_receiver_messages.labels(self._id, topic, "dead_lettered" if sent else "skipped").inc()

    def set_lag(self, consumer: AIOKafkaConsumer | None, tp: TopicPartition, base: int | None) -> None:
        """Lag = high watermark - `base` (the committed offset: what a restart would read again)."""
        telemetry = self._telemetry()
        if telemetry is None or consumer is None:
            return
        try:
            highwater = consumer.highwater(tp)
        except Exception:  # not assigned any more
            return
        if highwater is None or base is None:
            return
        telemetry.kafka_receiver_offset_lag.labels(self._id, tp.topic, str(tp.partition)).set(max(0, highwater - base))

    def remove_lag(self, tp: TopicPartition) -> None:
        """Drop a revoked partition's lag series."""
        telemetry = self._telemetry()
        if telemetry is None:
            return
        try:
            telemetry.kafka_receiver_offset_lag.remove(self._id, tp.topic, str(tp.partition))
        except KeyError:
            pass
