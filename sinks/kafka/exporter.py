"""The `kafka` exporter: the sidecar's hand-off of OTLP traces, logs and metrics to Kafka,
each signal to its own topic (otlp_spans, otlp_logs, otlp_metrics by default).

Without `sending_queue.storage`, `consume()` returns once Kafka acknowledged every
message of the batch (acks=all by default): that is when the app's OTLP client is
answered. With a storage directory, `consume()` returns once the batch is fsynced in a
write-ahead queue there, and a replayer sends queued batches to Kafka, deleting each
only after Kafka acknowledged it. Queue, retries, timeouts and counters are the exporter
helper's (core/exporterhelper); this module is the Kafka side: the producer link
(producer.py) and one batch's delivery (delivery.py).

Only the standard library, aiokafka, protobuf and tracehouse.core are imported here: the
sidecar runs in every application pod and must stay small (no ClickHouse, no
tokenizer).
"""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tracehouse.core.auth import TENANT_ATTRIBUTE, TENANT_HEADER
from tracehouse.core.component import Host, Settings, Signal
from tracehouse.core.errors import RetryableError
from tracehouse.core.exporterhelper import Exporter, Health
from tracehouse.core.pdata import OtlpBatch, TraceBatch
from tracehouse.sinks.kafka.config import KafkaExporterConfig
from tracehouse.sinks.kafka.delivery import KafkaDelivery
from tracehouse.sinks.kafka.marshal import ProducedRecord, to_messages, to_signal_messages, with_resource_attribute
from tracehouse.sinks.kafka.producer import ProducerLink


class KafkaSender:
    """Kafka's side of the exporter: the producer link and batch -> records."""

    name = "Kafka"
    mutates_data = False  # only serializes

    def __init__(self, config: KafkaExporterConfig, log: Any):
        self._config = config
        self._log = log
        self.link: ProducerLink | None = None
        self._topics = {signal: config.topic_of(signal) for signal in Signal}
        self._by_resource = {Signal.LOGS: config.partition_logs_by_resource_attributes,
                             Signal.METRICS: config.partition_metrics_by_resource_attributes}

    async def start(self, host: Host, health: Health) -> None:
        cfg = self._config
        self.link = ProducerLink(cfg, self._log, health.failing, health.ok)
        self.link.start()
        self._log.info("kafka exporter started", brokers=list(cfg.brokers),
                       topics={signal.value: topic for signal, topic in self._topics.items()},
                       queue="disk" if cfg.sending_queue.storage else "memory",
                       partition_traces_by_id=cfg.partition_traces_by_id)

    async def shutdown(self) -> None:
        if self.link is not None:
            await self.link.close()
        self._log.info("kafka exporter stopped")

    def records(self, batch: OtlpBatch[Any]) -> list[ProducedRecord]:
        cfg = self._config
        max_bytes = cfg.producer.max_message_bytes
        if isinstance(batch, TraceBatch):
            records = to_messages(batch, by_trace_id=cfg.partition_traces_by_id, max_bytes=max_bytes)
        else:
            records = to_signal_messages(batch, by_resource=self._by_resource[batch.signal], max_bytes=max_bytes)
        if batch.tenant:
            # The tenant travels in the data too, for consumers that read no headers.
            attribute = KeyValue(key=TENANT_ATTRIBUTE, value=AnyValue(string_value=batch.tenant)).SerializeToString()
            records = [ProducedRecord(r.key, with_resource_attribute(r.value, attribute), r.item_count) for r in records]
        return records

    def request(self, batch: OtlpBatch[Any]) -> KafkaDelivery:
        link = self.link
        assert link is not None
        if link.producer is None:
            raise RetryableError(f"not connected to Kafka ({link.error}); reconnecting in the background",
                                 retry_after=link.retry_after())
        headers = [(TENANT_HEADER, batch.tenant.encode())] if batch.tenant else None
        return KafkaDelivery.of(link, self._topics[batch.signal], self.records(batch), headers, batch.signal)

    def check(self, batch: OtlpBatch[Any]) -> None:
        if batch.nbytes > self._config.producer.max_message_bytes:
            self.records(batch)  # raises PermanentError for an item that can never fit

    async def ready(self) -> None:
        assert self.link is not None
        await self.link.connected.wait()

    def retry_after(self) -> float | None:
        link = self.link
        return link.retry_after() if link is not None and link.producer is None else None


class KafkaExporter(Exporter):
    def __init__(self, settings: Settings, config: KafkaExporterConfig, _next: Any = None):
        self._kafka = KafkaSender(config, settings.logger)
        super().__init__(settings, config, self._kafka)

    @property
    def connected(self) -> bool:
        """Whether a producer is connected (sends can still fail while brokers are away)."""
        link = self._kafka.link
        return link is not None and link.producer is not None

