"""Logs and metrics as Kafka messages (the Collector's `otlp_proto` on otlp_logs / otlp_metrics):
partitioning by resource attributes, size limits, the tenant, and the topic config. The
broker round trip is tests/integration/test_signals_kafka.py."""

from __future__ import annotations

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from signals_sdk import sdk_logs_request, sdk_metrics_request
from tracehouse.core.component import Signal
from tracehouse.core.config import load_config_dict
from tracehouse.core.errors import ConfigError, PermanentError
from tracehouse.core.pdata import LogBatch, MetricBatch
from tracehouse.ingest.kafka.config import KafkaReceiverConfig
from tracehouse.sinks.kafka.config import KafkaExporterConfig
from tracehouse.sinks.kafka.exporter import KafkaSender
from tracehouse.sinks.kafka.marshal import message_size, split_message, to_signal_messages


def two_services() -> LogBatch:
    a, b = sdk_logs_request("a", ["1", "2"]), sdk_logs_request("b", ["3"])
    return LogBatch.from_request(ExportLogsServiceRequest(resource_logs=[*a.resource_logs, *b.resource_logs,
                                                                         *a.resource_logs]))


def test_by_resource_each_message_holds_one_resource_keyed_by_its_attributes() -> None:
    batch = two_services()
    messages = to_signal_messages(batch, by_resource=True, max_bytes=1_000_000)
    assert [m.item_count for m in messages] == [4, 1]  # service a's two resource entries share one message
    assert len({m.key for m in messages}) == 2 and all(m.key and len(m.key) == 16 for m in messages)
    again = to_signal_messages(LogBatch.from_bytes(batch.to_bytes()), by_resource=True, max_bytes=1_000_000)
    assert [m.key for m in again] == [m.key for m in messages], "the same resource, the same key (and partition)"
    for message in messages:
        services = {kv.value.string_value for rl in ExportLogsServiceRequest.FromString(message.value).resource_logs
                    for kv in rl.resource.attributes if kv.key == "service.name"}
        assert len(services) == 1
    whole = to_signal_messages(batch, by_resource=False, max_bytes=1_000_000)
    assert len(whole) == 1 and whole[0].key is None and whole[0].value == batch.to_bytes()  # sent as received


def test_an_oversize_message_is_halved_by_items_and_a_single_oversize_item_is_permanent() -> None:
    batch = MetricBatch.from_bytes(sdk_metrics_request("svc").SerializeToString())
    limit = message_size(None, batch.to_bytes()) * 3 // 4
    parts = to_signal_messages(batch, by_resource=True, max_bytes=limit)
    assert len(parts) > 1 and all(p.size <= limit for p in parts)
    assert sum(p.item_count for p in parts) == batch.item_count == 6
    # What the delivery does when the broker's own limit is lower than ours.
    bigger = max(parts, key=lambda p: p.item_count)
    assert bigger.item_count > 1
    halves = split_message(bigger, bigger.size - 1, Signal.METRICS)
    assert len(halves) > 1 and sum(p.item_count for p in halves) == bigger.item_count
    huge = sdk_logs_request("svc", ["x" * 5000])
    with pytest.raises(PermanentError, match="a single log record is .* over producer.max_message_bytes"):
        to_signal_messages(LogBatch.from_request(huge), by_resource=False, max_bytes=2048)


def test_the_tenant_travels_as_a_resource_attribute_on_every_signal() -> None:
    sender = KafkaSender(KafkaExporterConfig(), log=None)
    for batch in (LogBatch.from_request(sdk_logs_request("svc", ["x"])),
                  MetricBatch.from_bytes(sdk_metrics_request("svc").SerializeToString())):
        batch.tenant = "shop"
        (record,) = sender.records(batch)
        back = type(batch).from_bytes(record.value)
        assert back.request.__class__ is batch.request.__class__ and back.item_count == batch.item_count
        attrs = {kv.key: kv.value.string_value for r in back.resources() for kv in r.resource.attributes}
        assert attrs["tracehouse.tenant"] == "shop"


def test_topics_default_to_the_collector_s_and_are_set_per_signal() -> None:
    exporter, receiver = KafkaExporterConfig(), KafkaReceiverConfig()
    for config in (exporter, receiver):
        assert [config.topic_of(s) for s in Signal] == ["otlp_spans", "otlp_logs", "otlp_metrics"]
    custom = KafkaExporterConfig.model_validate({"traces": {"topic": "t"}, "logs": {"topic": "l"},
                                                 "metrics": {"topic": "m", "encoding": "otlp_proto"}})
    assert [custom.topic_of(s) for s in Signal] == ["t", "l", "m"]
    assert KafkaExporterConfig(topic="legacy").topic_of(Signal.TRACES) == "legacy"


@pytest.mark.parametrize(("kafka", "words"), [
    ({"logs": {"topic": "otlp_spans"}}, "traces and logs share the topic 'otlp_spans'"),
    ({"topic": "a", "traces": {"topic": "b"}}, "both name the traces topic"),
    ({"metrics": {"encoding": "otlp_json"}}, "encoding 'otlp_json' is not supported"),
])
def test_bad_topic_settings_fail_at_start_naming_the_key(kafka: dict[str, object], words: str) -> None:
    config = {"receivers": {"otlp": {}}, "exporters": {"kafka": kafka},
              "service": {"pipelines": {"logs": {"receivers": ["otlp"], "exporters": ["kafka"]}}}}
    with pytest.raises(ConfigError) as err:
        load_config_dict(config)
    assert err.value.path.startswith("exporters::kafka") and words in str(err.value)


def test_the_receiver_s_dead_letter_topic_must_differ_from_every_signal_s_topic() -> None:
    with pytest.raises(ValueError, match="dead_letter_topic must differ from the logs topic"):
        KafkaReceiverConfig(dead_letter_topic="otlp_logs")
