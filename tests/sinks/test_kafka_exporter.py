"""The `kafka` exporter against a real Kafka-protocol broker (tansu; Apache Kafka where Docker runs).

Messages are the Collector's `otlp_proto`: one trace per message keyed by its hex id (or
the request as received), consume() answers only after Kafka acknowledged, and a broker
outage (a proxy cutting the line) is answered with retryable errors, never a false ack.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from kafka_testing import (
    ProxiedBroker,
    create_topic,
    exporter_config,
    metric,
    new_topic,
    parse,
    proxied_tansu,
    read_topic,
    running,
    span_ids,
    span_prints,
    traffic,
    wait_for,
)
from otlp_fixtures import fixture_payloads, load_batch
from tracehouse.core.component import Status
from tracehouse.core.config import load_config_dict
from tracehouse.core.errors import ConfigError, PayloadTooLargeError, PermanentError, RetryableError
from tracehouse.core.pdata import TraceBatch
from tracehouse.sinks.kafka.config import KafkaExporterConfig
from tracehouse.sinks.kafka.producer import producer_kwargs
from tracehouse.sinks.kafka.marshal import message_size, to_messages

FIXTURES = [str(p.relative_to(p.parents[1])) for p in fixture_payloads()]


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[ProxiedBroker]:
    """A broker of this test's own, reached through a proxy the test can cut."""
    with proxied_tansu(tmp_path) as broker:
        yield broker


_client_deadline: list[float | None] = [None]


def deadline_in(seconds: float) -> None:
    """The clients of the following requests stop waiting `seconds` from now."""
    _client_deadline[0] = time.monotonic() + seconds


def due(batch: TraceBatch) -> TraceBatch:
    """`batch` as a receiver hands it on: carrying its client's deadline."""
    batch.deadline = _client_deadline[0]
    return batch


# ---------------------------------------------------------------------------- config


def test_defaults_follow_the_collector_with_our_delivery_guarantees() -> None:
    cfg = KafkaExporterConfig()
    assert (cfg.brokers, cfg.topic, cfg.encoding, cfg.partition_traces_by_id, cfg.timeout) == (
        ["localhost:9092"], "otlp_spans", "otlp_proto", True, 5.0)
    p = cfg.producer
    assert (p.required_acks, p.compression, p.enable_idempotence, p.max_message_bytes, p.linger) == (
        "all", "zstd", True, 1_000_000, 0.005)
    q = cfg.sending_queue
    assert (q.enabled, q.queue_size, q.storage, q.max_storage_mib) == (True, 100_000, "", 1024)
    kwargs = producer_kwargs(cfg)
    assert {k: kwargs[k] for k in ("acks", "enable_idempotence", "compression_type", "max_request_size",
                                   "max_batch_size", "linger_ms", "request_timeout_ms", "bootstrap_servers")} == {
        "acks": "all", "enable_idempotence": True, "compression_type": "zstd", "max_request_size": 1_000_000,
        # A partition's records share a record batch up to the message limit, not aiokafka's 16 KB.
        "max_batch_size": 1_000_000,
        "linger_ms": 5, "request_timeout_ms": 5000, "bootstrap_servers": ["localhost:9092"]}
    plain = KafkaExporterConfig.model_validate(
        {"producer": {"compression": "none", "required_acks": 1, "enable_idempotence": False}})
    assert (producer_kwargs(plain)["compression_type"], producer_kwargs(plain)["acks"]) == (None, 1)


def _exporter_error(settings: dict[str, object]) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        load_config_dict({"receivers": {"otlp": None}, "exporters": {"kafka/spans": settings},
                          "service": {"pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["kafka/spans"]}}}})
    return err.value


@pytest.mark.parametrize(("settings", "path", "says"), [
    ({"encoding": "otlp_json"}, "exporters::kafka/spans::encoding", "the supported value is otlp_proto"),
    ({"producer": {"required_acks": 0}}, "exporters::kafka/spans::producer::required_acks", "fire and forget"),
    ({"producer": {"required_acks": 1}}, "exporters::kafka/spans::producer", "enable_idempotence needs required_acks"),
    ({"producer": {"compression": "snappy"}}, "exporters::kafka/spans::producer::compression", "zstd"),
    ({"producer": {"linger": "soon"}}, "exporters::kafka/spans::producer::linger", "invalid duration"),
    ({"sending_queue": {"enabled": False, "storage": "/tmp/q"}}, "exporters::kafka/spans::sending_queue",
     "storage needs the sending queue"),
    ({"topic": "bad topic"}, "exporters::kafka/spans::topic", "not a valid Kafka topic name"),
    ({"brokers": "kafka:9092,nohost"}, "exporters::kafka/spans::brokers", "not host:port"),
    ({"retries": 3}, "exporters::kafka/spans::retries", "unknown key"),
])
def test_config_errors_name_the_key(settings: dict[str, object], path: str, says: str) -> None:
    err = _exporter_error(settings)
    assert err.path == path and says in err.reason, str(err)


def test_acks_accept_the_collectors_numbers() -> None:
    def acks(producer: dict[str, object]) -> object:
        return KafkaExporterConfig.model_validate({"producer": producer}).producer.required_acks

    assert acks({"required_acks": -1}) == "all"
    assert acks({"required_acks": "1", "enable_idempotence": False}) == 1


# ---------------------------------------------------------------------------- encoding (no broker)


def test_keyed_messages_hold_one_trace_each_and_every_span_once() -> None:
    batches = traffic(traces=30, requests=1)
    batch = batches[0]
    messages = to_messages(batch, by_trace_id=True, max_bytes=1_000_000)
    assert len(messages) == 30
    for m in messages:
        request = parse(m.value)
        trace_ids = {s.trace_id for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans}
        assert len(trace_ids) == 1 and m.key == trace_ids.pop().hex().encode()
        assert m.key is not None and len(m.key) == 32 and m.key == m.key.lower()
        assert m.item_count == sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
        # One ResourceSpans per resource that had spans of this trace (not one per scope).
        assert len({rs.resource.SerializeToString() for rs in request.resource_spans}) == len(request.resource_spans)
    assert span_prints(parse(m.value) for m in messages) == span_prints([batch.request])


def test_a_single_trace_request_and_unkeyed_mode_send_the_received_bytes() -> None:
    one_trace = TraceBatch.from_bytes(traffic(traces=1, requests=1)[0].to_bytes())
    [keyed] = to_messages(one_trace, by_trace_id=True, max_bytes=1_000_000)
    assert keyed.value is one_trace.raw and keyed.key == (1).to_bytes(16, "big").hex().encode()
    many = traffic(traces=5, requests=1)[0]
    [unkeyed] = to_messages(many, by_trace_id=False, max_bytes=1_000_000)
    assert unkeyed.value is many.raw and unkeyed.key is None


def test_a_zero_trace_id_gives_an_empty_key_like_the_collector() -> None:
    request = ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.extend(
        [Span(trace_id=b"\0" * 16, span_id=b"\1" * 8), Span(trace_id=b"\2" * 16, span_id=b"\3" * 8)])
    messages = to_messages(TraceBatch.from_request(request), by_trace_id=True, max_bytes=10_000)
    assert sorted(m.key for m in messages if m.key is not None) == [b"", b"02" * 16]


@pytest.mark.parametrize("keyed", [True, False])
def test_an_oversized_message_is_split_until_every_part_fits(keyed: bool) -> None:
    batch = traffic(traces=3, spans_per_trace=40, requests=1, attr_bytes=300)[0]
    limit = 6000
    assert batch.nbytes > 4 * limit
    messages = to_messages(batch, by_trace_id=keyed, max_bytes=limit)
    assert all(message_size(m.key, m.value) <= limit for m in messages)
    assert len(messages) > (3 if keyed else 4)
    assert span_prints(parse(m.value) for m in messages) == span_prints([batch.request])
    if keyed:
        for m in messages:
            request = parse(m.value)
            assert {s.trace_id.hex().encode() for rs in request.resource_spans for ss in rs.scope_spans
                    for s in ss.spans} == {m.key}


def test_a_span_too_large_for_any_message_is_a_permanent_error() -> None:
    batch = traffic(traces=1, spans_per_trace=1, requests=1, attr_bytes=20_000)[0]
    with pytest.raises(PermanentError, match=r"single span is \d+ bytes .* over producer.max_message_bytes \(10000\)"):
        to_messages(batch, by_trace_id=True, max_bytes=10_000)


# ---------------------------------------------------------------------------- against the broker

@pytest.mark.integration
async def test_every_trace_is_one_keyed_message_on_one_partition(kafka_bootstrap: str) -> None:
    """Generated traffic plus every captured payload: one trace per message, key = hex
    trace id, a trace's messages share a partition, and the topic holds exactly the spans sent."""
    topic = new_topic()
    await create_topic(kafka_bootstrap, topic, partitions=4)
    batches = traffic(traces=40, requests=4) + [load_batch(f) for f in FIXTURES]
    async with running(exporter_config(kafka_bootstrap, topic)) as (exporter, host):
        deadline_in(10)
        for batch in batches:
            await exporter.consume(due(batch))
        assert metric(host, "tracehouse_exporter_sent_spans_total") == sum(b.span_count for b in batches)
        assert metric(host, "tracehouse_exporter_queue_size") == 0

    records = await read_topic(kafka_bootstrap, topic)
    partitions_by_key: dict[bytes, set[int]] = {}
    for record in records:
        request = parse(record.value)  # a plain ExportTraceServiceRequest
        traces = {s.trace_id for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans}
        assert len(traces) == 1
        assert record.key == traces.pop().hex().encode()
        partitions_by_key.setdefault(record.key, set()).add(record.partition)
    assert all(len(p) == 1 for p in partitions_by_key.values()), "a trace's spans share one partition"
    assert len({p for ps in partitions_by_key.values() for p in ps}) > 1, "keys spread over partitions"
    spread = [k for k in partitions_by_key if sum(r.key == k for r in records) > 1]
    assert len(spread) >= 40, "traces sent in several requests arrive as several messages"
    assert span_prints(parse(r.value) for r in records) == span_prints(b.request for b in batches)


@pytest.mark.integration
async def test_unkeyed_mode_sends_each_request_as_received(kafka_bootstrap: str) -> None:
    topic = new_topic()
    batches = [load_batch(f) for f in FIXTURES] + traffic(requests=2)
    async with running(exporter_config(kafka_bootstrap, topic, partition_traces_by_id=False)) as (exporter, _):
        deadline_in(10)
        for batch in batches:
            await exporter.consume(due(batch))
    records = await read_topic(kafka_bootstrap, topic)
    assert all(r.key is None for r in records)
    assert sorted(r.value for r in records) == sorted(b.to_bytes() for b in batches)
    # The protobuf fixtures went out byte for byte as they arrived.
    pb = [f for f in FIXTURES if f.endswith(".pb")]
    values = {r.value for r in records}
    assert pb and all((Path(__file__).parents[1] / "fixtures" / "otlp" / f).read_bytes() in values for f in pb)


@pytest.mark.integration
@pytest.mark.parametrize("compression", ["none", "gzip", "lz4", "zstd"])
async def test_every_compression_round_trips(kafka_bootstrap: str, compression: str) -> None:
    topic = new_topic()
    batches = traffic(traces=10, requests=2, attr_bytes=200)
    config = exporter_config(kafka_bootstrap, topic, producer={"compression": compression})
    async with running(config) as (exporter, _):
        deadline_in(10)
        for batch in batches:
            await exporter.consume(due(batch))
    records = await read_topic(kafka_bootstrap, topic)
    assert span_prints(parse(r.value) for r in records) == span_prints(b.request for b in batches)


@pytest.mark.integration
async def test_oversized_requests_are_split_on_the_way_to_the_broker(kafka_bootstrap: str) -> None:
    topic = new_topic()
    batch = traffic(traces=2, spans_per_trace=60, requests=1, attr_bytes=400)[0]
    config = exporter_config(kafka_bootstrap, topic, producer={"max_message_bytes": 8000})
    async with running(config) as (exporter, host):
        deadline_in(10)
        await exporter.consume(due(batch))
        too_big = traffic(traces=1, spans_per_trace=1, requests=1, run=7, attr_bytes=9000)[0]
        with pytest.raises(PermanentError, match="max_message_bytes"):
            await exporter.consume(due(too_big))
        assert metric(host, "tracehouse_exporter_send_failed_spans_total") == 1
    records = await read_topic(kafka_bootstrap, topic)
    assert len(records) > 2 and all(len(r.value) <= 8000 for r in records)
    assert span_prints(parse(r.value) for r in records) == span_prints([batch.request])


@pytest.mark.integration
async def test_consume_returns_only_after_kafka_acknowledged(proxied: ProxiedBroker) -> None:
    topic = new_topic()
    async with running(exporter_config(proxied.bootstrap, topic)) as (exporter, host):
        before, during, after = traffic(run=1), traffic(run=2), traffic(run=3)
        deadline_in(10)
        await exporter.consume(due(before[0]))

        proxied.cut()
        deadline_in(1.5)
        t0 = time.monotonic()
        with pytest.raises(RetryableError) as err:
            await exporter.consume(due(during[0]))
        elapsed = time.monotonic() - t0
        assert 1.0 < elapsed < 2.5, "answered within the client's deadline, after trying until then"
        assert err.value.retry_after and not err.value.overload
        assert "not acknowledged" in str(err.value)
        assert metric(host, "tracehouse_exporter_send_failed_spans_total") == during[0].span_count
        assert host.status["exporter/kafka"][0] is Status.RECOVERABLE_ERROR

        proxied.restore()
        deadline_in(10)
        await exporter.consume(due(after[0]))
        assert host.status["exporter/kafka"][0] is Status.OK
    records = await read_topic(proxied.bootstrap, topic)
    got = span_ids(parse(r.value) for r in records)
    assert span_ids([before[0].request, after[0].request]) <= got
    # What was refused may arrive anyway (at-least-once), but nothing else does.
    assert got <= span_ids([before[0].request, during[0].request, after[0].request])


@pytest.mark.integration
async def test_start_never_waits_for_the_broker(proxied: ProxiedBroker) -> None:
    proxied.cut()
    topic = new_topic()
    t0 = time.monotonic()
    async with running(exporter_config(proxied.bootstrap, topic), connect=False) as (exporter, host):
        assert time.monotonic() - t0 < 1.0
        await wait_for(lambda: "exporter/kafka" in host.status, 5, "a status report")
        status, error = host.status["exporter/kafka"]
        assert status is Status.RECOVERABLE_ERROR and "cannot connect" in (error or "")
        t1 = time.monotonic()
        with pytest.raises(RetryableError, match="not connected to Kafka") as err:
            await exporter.consume(due(traffic()[0]))
        assert time.monotonic() - t1 < 0.1, "refused at once, not after the deadline"
        assert err.value.retry_after is not None and err.value.retry_after >= 1.0

        proxied.restore()
        await wait_for(lambda: exporter.connected, 10, "the background reconnect")
        assert host.status["exporter/kafka"][0] is Status.OK
        deadline_in(10)
        await exporter.consume(due(traffic()[0]))
    assert len(await read_topic(proxied.bootstrap, topic)) > 0


async def test_a_tls_file_gone_after_load_is_a_recoverable_error(tmp_path: Path) -> None:
    # A file missing when the config loads is a config error (tests/net/test_tls_config.py); one
    # that goes away later (a Secret being re-mounted) is retried like a broker that is down.
    ca = tmp_path / "missing-ca.pem"
    ca.write_bytes(trustme.CA().cert_pem.bytes())
    config = exporter_config("127.0.0.1:9", new_topic(), tls={"ca_file": str(ca)})
    ca.unlink()
    async with running(config, connect=False) as (exporter, host):
        await wait_for(lambda: "exporter/kafka" in host.status, 5, "a status report")
        status, error = host.status["exporter/kafka"]
        assert status is Status.RECOVERABLE_ERROR and "missing-ca.pem" in (error or "")
        with pytest.raises(RetryableError, match="missing-ca.pem"):
            await exporter.consume(due(traffic()[0]))


@pytest.mark.integration
async def test_a_full_memory_queue_refuses_with_overload(proxied: ProxiedBroker) -> None:
    topic = new_topic()
    first, second = traffic(traces=4, spans_per_trace=3, requests=2)  # 6 spans each
    config = exporter_config(proxied.bootstrap, topic, sending_queue={"queue_size": 10})
    async with running(config) as (exporter, host):
        assert metric(host, "tracehouse_exporter_queue_capacity") == 10
        proxied.cut()  # the first batch now waits for its acks and holds its room
        deadline_in(20)
        pending = asyncio.create_task(exporter.consume(due(first)))
        await wait_for(lambda: metric(host, "tracehouse_exporter_queue_size") == 6, 2, "the queue gauge")
        t0 = time.monotonic()
        with pytest.raises(RetryableError) as err:
            await exporter.consume(due(second))
        assert err.value.overload and err.value.retry_after and time.monotonic() - t0 < 0.1
        assert metric(host, "tracehouse_exporter_enqueue_failed_spans_total") == 6
        with pytest.raises(PayloadTooLargeError, match="queue_size = 10"):
            await exporter.consume(due(traffic(traces=11, spans_per_trace=1, requests=1)[0]))

        proxied.restore()
        await pending  # delivered once the broker is back, within the deadline
        assert metric(host, "tracehouse_exporter_queue_size") == 0
        await exporter.consume(due(second))
    records = await read_topic(proxied.bootstrap, topic)
    assert span_prints(parse(r.value) for r in records) == span_prints([first.request, second.request])


@pytest.mark.integration
async def test_tansu_refusing_idempotence_is_explained(kafka_bootstrap: str, request: pytest.FixtureRequest) -> None:
    if request.node.callspec.params["kafka_bootstrap"] != "tansu":
        pytest.skip("Apache Kafka grants idempotent producers; see test_idempotent_producer_on_kafka")
    config = exporter_config(kafka_bootstrap, new_topic(), producer={"enable_idempotence": True})
    async with running(config, connect=False) as (exporter, host):
        await wait_for(lambda: "exporter/kafka" in host.status, 10, "a status report")
        status, error = host.status["exporter/kafka"]
        assert status is Status.RECOVERABLE_ERROR
        assert "set producer.enable_idempotence: false" in (error or "")
        with pytest.raises(RetryableError, match="enable_idempotence: false"):
            await exporter.consume(due(traffic()[0]))


@pytest.mark.integration
async def test_idempotent_producer_on_kafka(kafka_bootstrap: str, request: pytest.FixtureRequest) -> None:
    if request.node.callspec.params["kafka_bootstrap"] == "tansu":
        pytest.skip("tansu answers InitProducerId with an error: idempotence needs the Docker Kafka broker")
    topic = new_topic()
    await create_topic(kafka_bootstrap, topic, partitions=3)
    batches = traffic(requests=3)
    config = exporter_config(kafka_bootstrap, topic, producer={"enable_idempotence": True})
    async with running(config) as (exporter, host):
        deadline_in(20)
        for batch in batches:
            await exporter.consume(due(batch))
        assert host.status.get("exporter/kafka", (Status.OK, None))[0] is Status.OK
    records = await read_topic(kafka_bootstrap, topic)
    assert span_prints(parse(r.value) for r in records) == span_prints(b.request for b in batches)


@pytest.mark.integration
async def test_a_broker_limit_below_ours_is_met_by_splitting(kafka_bootstrap: str,
                                                           request: pytest.FixtureRequest) -> None:
    """Kafka refuses batches over its message.max.bytes (~1 MiB by default) with
    MessageSizeTooLarge; the exporter halves the message and sends the parts."""
    if request.node.callspec.params["kafka_bootstrap"] == "tansu":
        pytest.skip("tansu has no message size limit to run into")
    topic = new_topic()
    batch = traffic(traces=1, spans_per_trace=400, requests=1, attr_bytes=5000)[0]  # one trace, ~2 MB
    assert batch.nbytes > 1_500_000
    config = exporter_config(kafka_bootstrap, topic, producer={"max_message_bytes": 8_000_000})
    async with running(config) as (exporter, _):
        deadline_in(30)
        await exporter.consume(due(batch))
    records = await read_topic(kafka_bootstrap, topic)
    assert len(records) >= 2
    assert span_prints(parse(r.value) for r in records) == span_prints([batch.request])


def test_the_exporter_never_loads_clickhouse_or_the_tokenizer(tmp_path: Path) -> None:
    """The sidecar runs in every app pod: building and running the exporter stays light."""
    script = textwrap.dedent("""
        import asyncio, sys
        from tracehouse.core.component import ComponentID, Kind, Settings
        from tracehouse.core.registry import get_factory
        from tracehouse.core.testing import TestHost

        async def main():
            factory = get_factory(Kind.EXPORTER, "kafka")
            config = factory.config_type.model_validate({"brokers": ["127.0.0.1:9"], "timeout": "1s"})
            exporter = factory.create(Settings(ComponentID("kafka"), Kind.EXPORTER), config, None)
            await exporter.start(TestHost())
            await asyncio.sleep(0.2)
            await exporter.shutdown()
            import tracehouse.sinks.kafka.exporter, tracehouse.core.exporterhelper.queue, tracehouse.sinks.kafka.marshal
            heavy = sorted(m for m in sys.modules
                           if m.split(".")[0] in ("chdb", "clickhouse_connect", "bpe_openai")
                           or m.startswith(("tracehouse.sinks.clickhouse", "tracehouse.processors")))
            print("HEAVY", heavy)
            assert "aiokafka" in sys.modules

        asyncio.run(main())
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout, result.stdout
