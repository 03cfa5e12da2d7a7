"""The `kafka` receiver's batch cutting and config, without a broker (pure logic)."""

from __future__ import annotations

import pytest
import yaml

from otlp_fixtures import load_batch
from tracehouse.core.config import load_config_dict
from tracehouse.core.errors import ConfigError
from tracehouse.core.pdata import RecordRange
from tracehouse.ingest.kafka.config import KafkaBatchConfig, KafkaReceiverConfig
from tracehouse.ingest.kafka.partition import (
    PartitionBatcher,
    build_batch,
    decode,
    parse_plan,
    plan_metadata,
)

PAYLOAD = load_batch("openinference/http-protobuf.pb").to_bytes()  # 6 spans


def batcher(max_spans: int = 100, max_bytes: int = 1 << 20, timeout: float = 1.0,
            plan_end: int | None = None) -> PartitionBatcher:
    return PartitionBatcher("otlp_spans", 2, KafkaBatchConfig(max_spans=max_spans, max_bytes=max_bytes,
                                                               timeout=timeout), plan_end)


def messages(first: int, count: int, arrived: float = 0.0, value: bytes = PAYLOAD) -> list:
    return [decode(o, None, value, (), arrived) for o in range(first, first + count)]


def test_plan_metadata_round_trips_and_rejects_foreign_metadata() -> None:
    assert parse_plan(plan_metadata(41)) == 41
    assert parse_plan("") is None and parse_plan(None) is None and parse_plan("tracehouse:end=x") is None
    assert parse_plan("someone-else's=3") is None


def test_a_cut_is_due_at_the_span_limit_and_takes_the_longest_prefix_within_it() -> None:
    b = batcher(max_spans=15)
    b.add(messages(10, 2))
    assert b.wait_time(0.0) == pytest.approx(1.0)  # 12 spans: wait for the timeout
    b.add(messages(12, 2))
    assert b.wait_time(0.0) == 0.0 and b.full
    cut = b.cut()
    assert cut is not None and (cut.first, cut.last) == (10, 11) and cut.token == "otlp_spans/2/10-11"
    assert [m.offset for m in b.pending] == [12, 13] and b.spans == 12 and not b.full


def test_a_cut_is_due_when_the_first_message_has_waited_the_timeout() -> None:
    b = batcher(timeout=0.5)
    b.add(messages(0, 1, arrived=100.0))
    b.add(messages(1, 1, arrived=100.4))
    assert b.wait_time(100.2) == pytest.approx(0.3)
    assert b.wait_time(100.5) == 0.0
    cut = b.cut()
    assert cut is not None and (cut.first, cut.last) == (0, 1)
    assert b.wait_time(100.5) is None


def test_a_message_over_the_limits_is_cut_alone_rather_than_stuck() -> None:
    b = batcher(max_spans=2, max_bytes=10)
    b.add(messages(0, 2))
    first = b.cut()
    assert first is not None and (first.first, first.last) == (0, 0)


def test_a_planned_range_is_cut_exactly_whatever_the_limits() -> None:
    b = batcher(max_spans=6, plan_end=13)
    b.add(messages(10, 3))
    assert b.wait_time(0.0) == pytest.approx(1.0), "the plan's last offset has not arrived yet"
    b.add(messages(13, 3))
    assert b.wait_time(0.0) == 0.0
    cut = b.cut()
    assert cut is not None and cut.planned and (cut.first, cut.last) == (10, 13)
    assert b.plan_end is None
    after = b.cut()
    assert after is not None and not after.planned and (after.first, after.last) == (14, 14)


def test_a_plan_whose_records_are_gone_is_dropped() -> None:
    b = batcher(plan_end=5)
    b.add(messages(9, 1))  # offsets up to 5 were deleted by retention
    b.wait_time(0.0)
    assert b.plan_end is None


def test_refetched_offsets_are_not_added_twice() -> None:
    b = batcher()
    b.add(messages(0, 3))
    b.add(messages(1, 4))
    assert [m.offset for m in b.pending] == [0, 1, 2, 3, 4]


def test_decode_keeps_valid_spans_and_marks_garbage() -> None:
    bad = decode(7, b"k", b"\x0a\xff\x01", (("h", b"v"),), 0.0)
    assert bad.clean is None and "malformed" in bad.error and bad.headers == (("h", b"v"),)
    good = decode(8, None, PAYLOAD, (), 0.0)
    assert good.spans == 6 and good.clean is PAYLOAD and good.invalid_spans == 0


def test_a_batch_is_built_fresh_and_tagged_with_its_range() -> None:
    msgs = messages(3, 2) + [decode(5, None, b"garbage!", (), 0.0)]
    batch = build_batch("otlp_spans", 0, msgs)
    assert batch.span_count == 12 and batch.origin == RecordRange("otlp_spans", 0, 3, 5) and batch.origin.token == "otlp_spans/0/3-5"
    assert build_batch("otlp_spans", 0, msgs) is not batch


def test_config_defaults_round_trip_and_errors_name_their_path() -> None:
    default = KafkaReceiverConfig()
    assert (default.topic, default.group_id, default.dead_letter_topic) == ("otlp_spans", "tracehouse-writer",
                                                                           "otlp_spans_dlq")
    assert KafkaReceiverConfig.model_validate(yaml.safe_load(yaml.safe_dump(default.model_dump(mode="json")))) \
        == default

    def load(receiver: dict) -> None:
        load_config_dict({"receivers": {"kafka": receiver}, "exporters": {"debug": {}},
                          "service": {"pipelines": {"traces": {"receivers": ["kafka"], "exporters": ["debug"]}}}})

    load({"batch": {"timeout": "250ms"}, "drain_timeout": "5s", "brokers": "a:9092,b:9092"})
    with pytest.raises(ConfigError, match=r"receivers::kafka::producer::compression"):
        load({"producer": {"compression": "brotli"}})
    with pytest.raises(ConfigError, match=r"receivers::kafka::batch::max_spans"):
        load({"batch": {"max_spans": 0}})
    with pytest.raises(ConfigError, match="dead_letter_topic must differ"):
        load({"topic": "t", "dead_letter_topic": "t"})
    with pytest.raises(ConfigError, match="rebalance_timeout must be longer"):
        load({"drain_timeout": "90s"})
    with pytest.raises(ConfigError, match="not a valid Kafka topic"):
        load({"topic": "spans with spaces"})
