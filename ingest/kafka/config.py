"""Config of the `kafka` receiver (keys follow the Collector's kafkareceiver)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import field_validator, model_validator

from tracehouse.core.component import ComponentConfig
from tracehouse.core.config import Duration
from tracehouse.net.kafka import KafkaClientConfig
from tracehouse.core.retry import RetryConfig

_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


def _check_topic(v: str) -> str:
    if not _TOPIC.match(v) or v in (".", ".."):
        raise ValueError(f"{v!r} is not a valid Kafka topic name (letters, digits, '.', '_', '-'; at most 249)")
    return v


class KafkaBatchConfig(ComponentConfig):
    """When a partition's pending messages are cut into one pipeline batch."""

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


class KafkaReceiverConfig(KafkaClientConfig):
    topic: str = "otlp_spans"
    # The Collector kafkaexporter's `otlp_proto`: one serialized ExportTraceServiceRequest per message.
    encoding: Literal["otlp_proto"] = "otlp_proto"
    group_id: str = "tracehouse-writer"
    # Where a group without a committed offset starts.
    initial_offset: Literal["earliest", "latest"] = "earliest"
    batch: KafkaBatchConfig = KafkaBatchConfig()
    # Undecodable and permanently refused messages go here; "" = log, count and skip them.
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

    _topic = field_validator("topic")(_check_topic)

    @field_validator("dead_letter_topic")
    @classmethod
    def _dlq_topic(cls, v: str) -> str:
        return v if v == "" else _check_topic(v)

    @field_validator("group_id")
    @classmethod
    def _group(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> KafkaReceiverConfig:
        if self.dead_letter_topic == self.topic:
            raise ValueError("dead_letter_topic must differ from topic (a poison message would loop forever)")
        if not 0 < self.heartbeat_interval < self.session_timeout:
            raise ValueError("heartbeat_interval must be greater than zero and less than session_timeout")
        if self.rebalance_timeout <= self.drain_timeout:
            raise ValueError("rebalance_timeout must be longer than drain_timeout")
        return self
