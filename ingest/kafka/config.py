"""Config of the `kafka` receiver (keys follow the Collector's kafkareceiver)."""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator, model_validator

from tracehouse.core.component import ComponentConfig, Signal
from tracehouse.core.config import Duration
from tracehouse.net.kafka import KafkaClientConfig, SignalTopics, check_topic
from tracehouse.core.retry import RetryConfig


class KafkaBatchConfig(ComponentConfig):
    """When a partition's pending messages are cut into one pipeline batch. `max_spans`
    counts the items of the partition's signal: spans, log records or data points."""

    max_spans: int = 8192
    max_bytes: int = 16 * 1024 * 1024
    # Counted from the first message of the batch, not from the last.
    timeout: Duration = 1.0

    @field_validator("max_spans", "max_bytes", "timeout")
    @classmethod
    def _positive(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("must be greater than zero")
        return v


class DeadLetterProducerConfig(ComponentConfig):
    """The dead-letter producer (the receiver's only producer)."""

    # Brokers that refuse InitProducerId (tansu) need false.
    enable_idempotence: bool = True
    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "none"


class KafkaReceiverConfig(SignalTopics, KafkaClientConfig):
    # Topics (SignalTopics): `topic` (traces, default otlp_spans) or `traces::topic`,
    # `logs::topic` (otlp_logs), `metrics::topic` (otlp_metrics); the receiver reads those of
    # the signals that have a pipeline naming it. Encoding: the Collector kafkaexporter's
    # `otlp_proto`, one serialized export request per message.
    group_id: str = "tracehouse-writer"
    # Where a group without a committed offset starts.
    initial_offset: Literal["earliest", "latest"] = "earliest"
    batch: KafkaBatchConfig = KafkaBatchConfig()
    # Undecodable and permanently refused messages of every signal go here (each names its
    # source topic in a header); "" = log, count and skip them.
    dead_letter_topic: str = "otlp_spans_dlq"
    # Pacing of retries of a failed batch (and of commits and dead-letter sends). Retries
    # never give up: max_elapsed_time does not apply, the delay grows to max_interval and
    # stays there.
    error_backoff: RetryConfig = RetryConfig()
    # How long a revoke or shutdown waits for an in-flight batch to be consumed and committed.
    drain_timeout: Duration = 30.0
    session_timeout: Duration = 10.0
    heartbeat_interval: Duration = 3.0
    # How long the group waits for members to rejoin; must cover drain_timeout, since the
    # revoke callback drains before this member rejoins.
    rebalance_timeout: Duration = 60.0
    producer: DeadLetterProducerConfig = DeadLetterProducerConfig()

    @field_validator("dead_letter_topic")
    @classmethod
    def _dlq_topic(cls, v: str) -> str:
        return v if v == "" else check_topic(v)

    @field_validator("group_id")
    @classmethod
    def _group(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> KafkaReceiverConfig:
        for signal in Signal:
            if self.dead_letter_topic == self.topic_of(signal):
                raise ValueError(f"dead_letter_topic must differ from the {signal.value} topic (a poison message "
                                 "would loop forever)")
        if not 0 < self.heartbeat_interval < self.session_timeout:
            raise ValueError("heartbeat_interval must be greater than zero and less than session_timeout")
        if self.rebalance_timeout <= self.drain_timeout:
            raise ValueError("rebalance_timeout must be longer than drain_timeout")
        return self
