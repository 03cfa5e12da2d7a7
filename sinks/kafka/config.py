"""Config of the `kafka` exporter (keys follow the Collector's kafkaexporter)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from tracehouse.core.component import ComponentConfig
from tracehouse.core.config import Duration
from tracehouse.net.kafka import SUPPORTED_ENCODING, KafkaClientConfig, SignalTopics
from tracehouse.core.exporterhelper.config import ExporterHelperConfig, SendingQueueConfig

__all__ = ["SUPPORTED_ENCODING", "KafkaExporterConfig", "ProducerConfig", "SendingQueueConfig"]


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


class KafkaExporterConfig(SignalTopics, KafkaClientConfig, ExporterHelperConfig):
    # One message per trace, keyed by the hex trace id: a trace's spans share a
    # partition, so one writer sees the whole trace.
    partition_traces_by_id: bool = True
    # One message per resource, keyed by a hash of its attributes (the Collector's keys; on
    # by default here, as partition_traces_by_id): an instance's logs and metrics, and a
    # client's retry of them, keep to one partition and so to one writer.
    partition_logs_by_resource_attributes: bool = True
    partition_metrics_by_resource_attributes: bool = True
    producer: ProducerConfig = ProducerConfig()


