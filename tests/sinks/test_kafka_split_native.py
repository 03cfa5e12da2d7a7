"""The Kafka exporter's C pieces. Its one-message-per-trace split read in C from the request's bytes
(_otlpwire.split_by_trace) gives the messages the Python walk gives: same keys, same span
counts, same order, and each message the same request once parsed. Captured payloads, the
seed flows, bench traffic and generated requests; received bytes that repeat a span's
trace_id, and resource and scope fields the split must carry as they came. Its partitioner
hashes keys as aiokafka's (the Java client's) does."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from client_flows import FLOWS, load_flow
from otlp_fixtures import FIXTURES, fixture_payloads, load_batch
from otlp_strategies import requests
from tracehouse.bench import traffic
from tracehouse.core.native import otlpwire
from tracehouse.core.pdata import TraceBatch
from tracehouse.sinks.kafka import marshal
from tracehouse.sinks.kafka.marshal import ProducedRecord, to_messages

pytestmark = pytest.mark.skipif(otlpwire is None, reason="the C extension is not built")

LIMIT = 1_000_000


def python_messages(batch: TraceBatch, monkeypatch: pytest.MonkeyPatch) -> list[ProducedRecord]:
    with monkeypatch.context() as m:
        m.setattr(marshal, "otlpwire", None)
        return to_messages(batch, by_trace_id=True, max_bytes=LIMIT)


def parsed(record: ProducedRecord) -> tuple[bytes | None, int, ExportTraceServiceRequest]:
    return record.key, record.item_count, ExportTraceServiceRequest.FromString(record.value)


def assert_same_messages(batch: TraceBatch, monkeypatch: pytest.MonkeyPatch) -> int:
    expected = python_messages(batch, monkeypatch)
    got = to_messages(batch, by_trace_id=True, max_bytes=LIMIT)
    assert [parsed(r) for r in got] == [parsed(r) for r in expected]
    assert sum(r.item_count for r in got) == batch.span_count
    return len(got)


@pytest.mark.parametrize("path", fixture_payloads(), ids=lambda p: str(p.relative_to(FIXTURES)))
def test_captured_payloads(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert assert_same_messages(load_batch(str(path.relative_to(FIXTURES))), monkeypatch) > 0


@pytest.mark.parametrize("flow", FLOWS)
def test_seed_flows_merged_as_the_batch_processor_does(flow: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert assert_same_messages(TraceBatch.merge(load_flow(flow)), monkeypatch) > 0


def test_bench_traffic_many_traces_a_request(monkeypatch: pytest.MonkeyPatch) -> None:
    payloads = traffic.pregenerate(seed=5, total_spans=3_000, spans_per_request=500)
    merged = TraceBatch.merge([TraceBatch.from_bytes(p.body) for p in payloads])
    assert assert_same_messages(merged, monkeypatch) > 100


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(requests(), min_size=1, max_size=3))
def test_generated_requests(parts: list[ExportTraceServiceRequest]) -> None:
    batch = TraceBatch.merge([TraceBatch.from_request(r) for r in parts])
    if batch.span_count == 0:
        return
    with pytest.MonkeyPatch.context() as m:
        assert_same_messages(batch, m)


def test_a_repeated_trace_id_counts_its_last_value_and_heads_travel_as_they_came() -> None:
    """Received bytes may repeat a singular field; protobuf takes the last, so must the key.
    A resource's and a scope's other fields (schema_url after the spans, unknown fields) go
    into every trace's message that has spans under them."""
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add(schema_url="https://opentelemetry.io/schemas/1.26.0")
    rs.resource.attributes.add(key="service.name").value.string_value = "checkout"
    ss = rs.scope_spans.add(schema_url="scope-schema")
    ss.scope.name = "openai"
    first = ss.spans.add(trace_id=b"\x01" * 16, span_id=b"\x0a" * 8, name="first")
    ss.spans.add(trace_id=b"\x02" * 16, span_id=b"\x0b" * 8, name="second")
    # `first` again, its bytes followed by a second trace_id field: the span is in trace 3.
    moved = first.SerializeToString() + b"\x0a\x10" + b"\x03" * 16
    unknown = b"\xa8\x06\x2a"  # field 101, varint 42: kept by the parser as an unknown field
    body = request.SerializeToString() + b"\x0a" + _len(  # a second ResourceSpans
        b"\x0a" + _len(rs.resource.SerializeToString()) + b"\x12" + _len(b"\x12" + _len(moved)) + unknown)
    traces = otlpwire.split_by_trace(body)
    assert [(trace_id, count) for trace_id, _, count in traces] == [
        (b"\x01" * 16, 1), (b"\x02" * 16, 1), (b"\x03" * 16, 1)]
    third = ExportTraceServiceRequest.FromString(traces[2][1])
    [span] = third.resource_spans[0].scope_spans[0].spans
    assert (span.trace_id, span.name) == (b"\x03" * 16, "first")
    assert third.resource_spans[0].resource == rs.resource
    assert unknown in traces[2][1]
    second = ExportTraceServiceRequest.FromString(traces[1][1])
    assert second.resource_spans[0].schema_url == "https://opentelemetry.io/schemas/1.26.0"
    assert (second.resource_spans[0].scope_spans[0].schema_url,
            second.resource_spans[0].scope_spans[0].scope.name) == ("scope-schema", "openai")


def test_a_malformed_body_is_a_value_error_and_the_exporter_walks_instead(monkeypatch: pytest.MonkeyPatch) -> None:
    good = load_batch("mlflow/http-protobuf.pb").to_bytes()
    with pytest.raises(ValueError, match="malformed OTLP protobuf"):
        otlpwire.split_by_trace(good + good[: len(good) // 2])

    class Refusing:
        @staticmethod
        def split_by_trace(body: bytes) -> list[tuple[bytes, bytes, int]]:
            raise ValueError("malformed OTLP protobuf: truncated varint")

    batch = TraceBatch.merge([load_batch("mlflow/http-protobuf.pb"), load_batch("openinference/http-protobuf.pb")])
    expected = python_messages(batch, monkeypatch)
    monkeypatch.setattr(marshal, "otlpwire", Refusing)
    assert [parsed(r) for r in to_messages(batch, by_trace_id=True, max_bytes=LIMIT)] == \
        [parsed(r) for r in expected]


def _len(payload: bytes) -> bytes:
    """A length prefix (varint) and the payload."""
    n, out = len(payload), bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out) + payload


@settings(max_examples=300, deadline=None)
@given(key=st.binary(max_size=40), partitions=st.integers(1, 64))
def test_keys_land_on_the_partitions_aiokafka_s_partitioner_picks(key: bytes, partitions: int) -> None:
    """The C murmur2 partitioner puts every key where the Java client and aiokafka put it:
    a trace stays on the partition it had before, whichever producer sent it."""
    from aiokafka.partitioner import DefaultPartitioner

    from tracehouse.sinks.kafka.producer import key_partition, producer_kwargs
    from tracehouse.sinks.kafka.config import KafkaExporterConfig

    all_partitions = list(range(partitions))
    assert key_partition(key, all_partitions, all_partitions) == DefaultPartitioner()(key, all_partitions, all_partitions)
    assert key_partition(None, all_partitions, [3 % partitions]) == 3 % partitions  # no key: an available one
    assert producer_kwargs(KafkaExporterConfig())["partitioner"] is key_partition
