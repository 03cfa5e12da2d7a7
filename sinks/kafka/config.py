"""Config of the `kafka` exporter (keys follow the Collector's kafkaexporter)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from tracehouse.core.component import ComponentConfig
from tracehouse.core.config import Duration
from tracehouse.net.kafka import KafkaClientConfig
from tracehouse.core.exporterhelper.config import ExporterHelperConfig, SendingQueueConfig

SUPPORTED_ENCODING = "otlp_proto"
__all__ = ["KafkaExporterConfig", "ProducerConfig", "SendingQueueConfig"]
_TOPIC_RE = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


def _parse_acks(value: Any) -> Any:
    # The Collector writes acks as numbers (-1 = all); we also accept the word.
    text = str(value).strip().lower()
    if text in ("all", "-1"):
        return "all"
    if text == "1":
        return 1
    if text == "0":
        raise ValueError("required_acks 0 (fire and forget) is not supported: the sidecar answers its client "
                         "only once Kafka holds the spans; use all (default) or 1")
    raise ValueError(f"required_acks must be all (or -1) or 1, got {value!r}")


RequiredAcks = Annotated[Literal["all", 1], BeforeValidator(_parse_acks)]


class ProducerConfig(ComponentConfig):
    # `all`: every in-sync replica has the message before the client is answered.
    required_acks: RequiredAcks = "all"
    compression: Literal["none", "gzip", "lz4", "zstd"] = "zstd"
    # Retried batches are not duplicated by the broker. Needs a broker that grants
    # InitProducerId (tansu does not; set false there).
    enable_idempotence: bool = True
    max_message_bytes: int = Field(default=1_000_000, gt=1024)
    linger: Duration = 0.005

    @model_validator(mode="after")
    def _idempotence_needs_all(self) -> ProducerConfig:
        if self.enable_idempotence and self.required_acks != "all":
            raise ValueError("enable_idempotence needs required_acks: all (or set enable_idempotence: false)")
        return self


class KafkaExporterConfig(KafkaClientConfig, ExporterHelperConfig):
    topic: str = "otlp_spans"
    encoding: str = SUPPORTED_ENCODING
    # One message per trace, keyed by the hex trace id: a trace's spans share a
    # partition, so one writer sees the whole trace.
    partition_traces_by_id: bool = True
    producer: ProducerConfig = ProducerConfig()

    @field_validator("topic")
    @classmethod
    def _check_topic(cls, v: str) -> str:
        if not _TOPIC_RE.match(v) or v in (".", ".."):
            raise ValueError(f"{v!r} is not a valid Kafka topic name (letters, digits, '.', '_', '-'; at most 249)")
        return v

    @field_validator("encoding")
    @classmethod
    def _check_encoding(cls, v: str) -> str:
        if v != SUPPORTED_ENCODING:
            raise ValueError(f"encoding {v!r} is not supported; the supported value is {SUPPORTED_ENCODING}")
        return v


