"""The `kafka` receiver on a real Kafka-protocol broker (tansu) writing into the real
ClickHouse engine (chDB). The only doubles are neighbouring pipeline components.

Input is what the Collector's kafkaexporter writes (`otlp_proto`): serialized
ExportTraceServiceRequest values, one per trace keyed by its 32-hex trace id
(`partition_traces_by_id`), and whole requests without a key.
"""

from __future__ import annotations

import asyncio
import inspect
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from genai_helpers import batch_of, span
from kafka_testing import create_topic
from otlp_fixtures import FIXTURES, fixture_payloads, load_batch
from rollups import assert_rollups_match_spans
from tracehouse.core.component import ComponentID, Kind, Settings, Status, TracesConsumer
from tracehouse.core.config import load_config_dict
from tracehouse.core.errors import PermanentError, RetryableError
from tracehouse.core.fanout import TracesFanout
from tracehouse.core.pdata import TraceBatch
from tracehouse.core.service import Service
from tracehouse.core.testing import TestHost, TracesSink
from tracehouse.ingest.kafka import dlq
from tracehouse.ingest.kafka.config import KafkaReceiverConfig
from tracehouse.ingest.kafka.receiver import KafkaReceiver
from tracehouse.sinks.clickhouse.config import ClickHouseExporterConfig
from tracehouse.sinks.clickhouse.exporter import ClickHouseExporter

pytestmark = pytest.mark.integration

# tansu joins a group in ~3 s; with these settings a rebalance takes ~3-4 s.
FAST: dict[str, Any] = {
    "session_timeout": "3s", "heartbeat_interval": "300ms", "rebalance_timeout": "4s", "drain_timeout": "2s",
    "producer": {"enable_idempotence": False},  # tansu answers InitProducerId with an error
    "error_backoff": {"initial_interval": "100ms", "max_interval": "500ms", "randomization_factor": 0},
}
T0 = 1_795_000_000_000_000_000


# -- helpers ---------------------------------------------------------------------------

@dataclass
class Names:
    topic: str
    group: str
    dlq: str


@pytest.fixture
def names() -> Names:
    run = uuid.uuid4().hex[:10]
    return Names(f"spans_{run}", f"writer_{run}", f"spans_{run}_dlq")


def receiver_config(bootstrap: str, names: Names, **overrides: Any) -> dict[str, Any]:
    return {"brokers": [bootstrap], "topic": names.topic, "group_id": names.group, "dead_letter_topic": names.dlq,
            **FAST, **overrides}


async def produce(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]],
                  headers: dict[int, list[tuple[str, bytes]]] | None = None) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    await producer.start()
    try:
        for i, (key, value) in enumerate(messages):
            await producer.send_and_wait(topic, value, key=key, headers=(headers or {}).get(i))
    finally:
        await producer.stop()


def per_trace(batch: TraceBatch) -> list[tuple[bytes | None, bytes]]:
    """One message per trace keyed by its hex id, as the kafkaexporter's partition_traces_by_id writes."""
    out: list[tuple[bytes | None, bytes]] = []
    for trace_id in dict.fromkeys(s.trace_id for _, _, s in batch.iter_spans()):
        request = ExportTraceServiceRequest()
        request.CopyFrom(batch.request)
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                keep = [s for s in ss.spans if s.trace_id == trace_id]
                del ss.spans[:]
                ss.spans.extend(keep)
        out.append((trace_id.hex().encode(), request.SerializeToString()))
    return out


def fixture_messages() -> tuple[list[tuple[bytes | None, bytes]], list[tuple[str, str]]]:
    """Every captured payload: alternately split per trace (keyed) and whole (unkeyed); and its span keys."""
    messages: list[tuple[bytes | None, bytes]] = []
    keys: list[tuple[str, str]] = []
    for i, path in enumerate(fixture_payloads()):
        batch = load_batch(str(path.relative_to(FIXTURES)))
        keys += [(s.trace_id.hex(), s.span_id.hex()) for _, _, s in batch.iter_spans()]
        messages += per_trace(batch) if i % 2 == 0 else [(None, batch.to_bytes())]
    return messages, keys


def synthetic_messages(first_trace: int, traces: int) -> tuple[list[tuple[bytes | None, bytes]], list[tuple[str, str]]]:
    """`traces` messages of one two-span GenAI trace each, keyed by trace id."""
    llm = {"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o", "gen_ai.operation.name": "chat",
           "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 5}
    messages: list[tuple[bytes | None, bytes]] = []
    keys = []
    for t in range(first_trace, first_trace + traces):
        spans = [span(t, 1, T0 + t * 1000, {}, name="agent"), span(t, 2, T0 + t * 1000 + 10, llm, parent=1)]
        messages.append((t.to_bytes(16, "big").hex().encode(), batch_of(spans).to_bytes()))
        keys += [(t.to_bytes(16, "big").hex(), (i).to_bytes(8, "big").hex()) for i in (1, 2)]
    return messages, keys


async def until(predicate: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.1)


class Broker:
    """Reads what the group committed and what the topics hold, as an outside observer."""

    def __init__(self, bootstrap: str, group: str):
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)

    async def __aenter__(self) -> Broker:
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def committed(self, topic: str, partitions: int) -> dict[int, OffsetAndMetadata]:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        offsets = await self._consumer._coordinator.fetch_committed_offsets(tps)
        return {tp.partition: om for tp, om in offsets.items()}

    async def end_offsets(self, topic: str, partitions: int) -> dict[int, int]:
        ends = await self._consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
        return {tp.partition: offset for tp, offset in ends.items()}


async def read_all(bootstrap: str, topic: str, count: int, timeout: float = 20.0) -> list[Any]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    got: list[Any] = []
    try:
        deadline = time.monotonic() + timeout
        while len(got) < count and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                got.extend(records)
    finally:
        await consumer.stop()
    return got


@dataclass
class Recorder:
    """A neighbour double in front of the real downstream: notes each batch's token, then hands it on."""

    next: TracesConsumer
    tokens: list[str] = field(default_factory=list)
    tenants: list[str] = field(default_factory=list)
    on_consume: Callable[[TraceBatch], Awaitable[None]] | None = None

    async def consume(self, batch: TraceBatch) -> None:
        self.tokens.append(batch.origin.token if batch.origin else None)
        self.tenants.append(batch.tenant)
        if self.on_consume is not None:
            await self.on_consume(batch)
        await self.next.consume(batch)


@dataclass
class Writer:
    """kafka receiver -> Recorder -> clickhouse exporter, component by component."""

    receiver: KafkaReceiver
    recorder: Recorder
    exporter: ClickHouseExporter | None
    host: TestHost

    async def start(self) -> None:
        if self.exporter is not None:
            await self.exporter.start(self.host)
        await self.receiver.start(self.host)

    async def stop(self) -> None:
        await self.receiver.shutdown()
        if self.exporter is not None:
            await self.exporter.shutdown()

    def metric(self, name: str, **labels: str) -> float:
        return self.host.telemetry.registry.get_sample_value(name, {"receiver": "kafka", **labels}) or 0.0


def writer(config: dict[str, Any], *, chdb_endpoint: str | None = None, database: str = "",
           downstream: TracesConsumer | None = None, receiver_class: type[KafkaReceiver] = KafkaReceiver) -> Writer:
    exporter = None
    if downstream is None:
        exporter = ClickHouseExporter(Settings(ComponentID("clickhouse"), Kind.EXPORTER),
                                      ClickHouseExporterConfig(endpoint=chdb_endpoint, database=database), None)
        downstream = exporter
    recorder = Recorder(downstream)
    receiver = receiver_class(Settings(ComponentID("kafka"), Kind.RECEIVER, "traces"),
                              KafkaReceiverConfig.model_validate(config), recorder)
    return Writer(receiver, recorder, exporter, TestHost())



def stored_keys(client: Any, database: str) -> list[tuple[str, str]]:
    try:
        return sorted(client.query(f"SELECT TraceId, SpanId FROM {database}.otel_traces").result_rows)
    except Exception:  # the schema is not there yet
        return []


def token_range(token: str) -> tuple[int, int, int]:
    """`topic/partition/first-last` -> (partition, first, last)."""
    _, partition, offsets = token.rsplit("/", 2)
    first, last = offsets.split("-")
    return int(partition), int(first), int(last)


# -- the writer end to end ---------------------------------------------------------------

async def test_captured_payloads_from_kafka_land_in_clickhouse_exactly_once(
        kafka_bootstrap: str, names: Names, chdb_endpoint: str, database: str, client: Any) -> None:
    await create_topic(kafka_bootstrap, names.topic, 3)
    messages, keys = fixture_messages()
    await produce(kafka_bootstrap, names.topic, messages)

    service = Service(load_config_dict({
        "receivers": {"kafka": receiver_config(kafka_bootstrap, names, batch={"max_spans": 5, "timeout": "200ms"})},
        "processors": {"genai_normalize": {}, "genai_tokens": {}, "genai_cost": {}},
        "exporters": {"clickhouse": {"endpoint": chdb_endpoint, "database": database}},
        "service": {"shutdown_timeout": "20s", "pipelines": {"traces": {
            "receivers": ["kafka"], "processors": ["genai_normalize", "genai_tokens", "genai_cost"],
            "exporters": ["clickhouse"]}}},
    }))
    await service.start()
    try:
        await until(lambda: len(stored_keys(client, database)) >= len(keys), "every span stored")
        async with Broker(kafka_bootstrap, names.group) as broker:
            ends = await broker.end_offsets(names.topic, 3)
            await until(lambda: _committed_to(broker, names.topic, ends), "offsets committed to the end")
    finally:
        await service.shutdown()

    assert stored_keys(client, database) == sorted(keys), "every input span, once"
    assert_rollups_match_spans(client, database)
    genai = client.query(f"""
        SELECT ScopeName, countIf(GenAIProvider != '' AND GenAIRequestModel != ''),
               countIf(GenAIInputTokens > 0 AND GenAITotalCostUSD > 0)
        FROM {database}.otel_traces WHERE GenAISpanKind = 'llm' GROUP BY ScopeName""").result_rows
    assert len(genai) >= 3, f"LLM spans of several libraries: {genai}"
    assert all(with_model > 0 for _, with_model, _ in genai), genai
    assert sum(priced for *_, priced in genai) > 0
    telemetry = service.telemetry.registry
    assert telemetry.get_sample_value("tracehouse_kafka_receiver_messages_total", {
        "receiver": "kafka", "topic": names.topic, "outcome": "accepted"}) == len(messages)
    assert telemetry.get_sample_value("tracehouse_receiver_accepted_spans_total", {
        "receiver": "kafka", "transport": "kafka"}) == len(keys)


async def _committed_to(broker: Broker, topic: str, ends: dict[int, int]) -> bool:
    committed = await broker.committed(topic, len(ends))
    return all(committed.get(p) is not None and committed[p].offset == end for p, end in ends.items() if end)


async def run_until_committed(w: Writer, bootstrap: str, names: Names, ends: dict[int, int], what: str) -> None:
    """Start the writer, wait until its group committed `ends` (partition -> offset), stop it."""
    await w.start()
    try:
        async with Broker(bootstrap, names.group) as broker:
            await until(lambda: _committed_to(broker, names.topic, ends), what)
    finally:
        await w.stop()


# -- crash and replay ----------------------------------------------------------------------

class CrashingReceiver(KafkaReceiver):
    """Loses every commit from the final commit of batch `crash_at` on: a process that died
    right after ClickHouse acknowledged that batch, before Kafka heard of it."""

    crash_at = 3

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.final_commits = 0
        self.crashed = asyncio.Event()

    async def _commit(self, state: Any, offset: int, metadata: str) -> None:
        if self.crashed.is_set():
            return
        if metadata == "":
            self.final_commits += 1
            if self.final_commits == self.crash_at:
                self.crashed.set()
                return
        await super()._commit(state, offset, metadata)


async def crash_then_restart(kafka_bootstrap: str, names: Names, chdb_endpoint: str, database: str,
                             client: Any, restart_batch: dict[str, Any]) -> tuple[Writer, Writer, list[tuple[str, str]]]:
    await create_topic(kafka_bootstrap, names.topic, 1)
    messages, keys = fixture_messages()
    await produce(kafka_bootstrap, names.topic, messages)

    first = writer(receiver_config(kafka_bootstrap, names, batch={"max_spans": 4, "timeout": "200ms"}),
                   chdb_endpoint=chdb_endpoint, database=database, receiver_class=CrashingReceiver)
    crashing = first.receiver
    assert isinstance(crashing, CrashingReceiver)
    await first.start()
    try:
        await asyncio.wait_for(crashing.crashed.wait(), 30)
    finally:
        await first.stop()
    assert len(first.recorder.tokens) >= CrashingReceiver.crash_at

    second = writer(receiver_config(kafka_bootstrap, names, batch=restart_batch),
                    chdb_endpoint=chdb_endpoint, database=database)
    await run_until_committed(second, kafka_bootstrap, names, {0: len(messages)}, "the restart caught up")
    return first, second, keys


async def test_a_crash_between_insert_and_commit_replays_without_duplicates(
        kafka_bootstrap: str, names: Names, chdb_endpoint: str, database: str, client: Any) -> None:
    first, second, keys = await crash_then_restart(kafka_bootstrap, names, chdb_endpoint, database, client,
                                                   {"max_spans": 4, "timeout": "200ms"})
    crashed_batch = token_range(first.recorder.tokens[CrashingReceiver.crash_at - 1])
    # The plan commit left the group at the crashed batch's first offset: the restart
    # re-reads exactly from there, so the stored batch is replayed...
    assert token_range(second.recorder.tokens[0])[1] == crashed_batch[1]
    assert second.exporter is not None and second.exporter.skipped_duplicates > 0
    # ...and written once, in the spans table and in every rollup.
    assert stored_keys(client, database) == sorted(keys)
    assert client.query(f"SELECT sum(Spans) FROM {database}.otel_traces_trace_rollup").result_rows[0][0] == len(keys)
    assert_rollups_match_spans(client, database)


async def broker_keeps_commit_metadata(bootstrap: str) -> bool:
    """Kafka keeps offset-commit metadata; tansu 0.6 answers OffsetFetch with it empty."""
    run = uuid.uuid4().hex[:8]
    topic = f"probe_{run}"
    await produce(bootstrap, topic, [(None, b"")])
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=f"probe_{run}", enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.commit({tp: OffsetAndMetadata(1, "tracehouse:end=1")})
        kept = await consumer._coordinator.fetch_committed_offsets([tp])
        return bool(kept[tp].metadata == "tracehouse:end=1")
    finally:
        await consumer.stop()


async def test_a_restart_cuts_the_crashed_batch_again_with_the_same_token(
        kafka_bootstrap: str, names: Names, chdb_endpoint: str, database: str, client: Any) -> None:
    if not await broker_keeps_commit_metadata(kafka_bootstrap):
        pytest.skip("this broker drops offset-commit metadata (tansu 0.6 does), so the batch plan cannot be read "
                    "back; exactly-once after a crash then rests on the exporter's retry gate, which "
                    "test_a_crash_between_insert_and_commit_replays_without_duplicates covers")
    # Different limits on restart: the same range can only come from the committed plan.
    first, second, keys = await crash_then_restart(kafka_bootstrap, names, chdb_endpoint, database, client,
                                                   {"max_spans": 1000, "timeout": "1s"})
    assert second.recorder.tokens[0] == first.recorder.tokens[CrashingReceiver.crash_at - 1]
    assert stored_keys(client, database) == sorted(keys)
    assert_rollups_match_spans(client, database)


# -- bad input -------------------------------------------------------------------------------

POISON = [b"not protobuf at all", b"\x0a\xff\x01"]


async def test_undecodable_messages_are_dead_lettered_and_never_block_the_partition(
        kafka_bootstrap: str, names: Names, chdb_endpoint: str, database: str, client: Any) -> None:
    await create_topic(kafka_bootstrap, names.topic, 1)
    good, keys = synthetic_messages(1, 3)
    messages = [good[0], (b"poison-key", POISON[0]), good[1], (None, POISON[1]), good[2]]
    await produce(kafka_bootstrap, names.topic, messages, headers={1: [("traceparent", b"00-abc")]})

    w = writer(receiver_config(kafka_bootstrap, names, batch={"max_spans": 3, "timeout": "200ms"}),
               chdb_endpoint=chdb_endpoint, database=database)
    await run_until_committed(w, kafka_bootstrap, names, {0: len(messages)}, "committed past the poison")

    assert stored_keys(client, database) == sorted(keys)
    letters = sorted(await read_all(kafka_bootstrap, names.dlq, 2), key=lambda r: int(dict(r.headers)[
        dlq.SOURCE_OFFSET]))
    assert [(r.key, r.value) for r in letters] == [(b"poison-key", POISON[0]), (None, POISON[1])]
    for record, offset in zip(letters, (1, 3), strict=True):
        headers = dict(record.headers)
        assert headers[dlq.REASON] == b"decode_error"
        assert b"malformed OTLP protobuf" in headers[dlq.ERROR]
        assert (headers[dlq.SOURCE_TOPIC], headers[dlq.SOURCE_PARTITION], headers[dlq.SOURCE_OFFSET]) == (
            names.topic.encode(), b"0", str(offset).encode())
    assert dict(letters[0].headers)["traceparent"] == b"00-abc", "the original headers travel along"
    assert w.metric("tracehouse_kafka_receiver_dead_letter_messages_total", topic=names.topic,
                    reason="decode_error") == 2
    assert w.metric("tracehouse_kafka_receiver_messages_total", topic=names.topic, outcome="dead_lettered") == 2
    assert w.metric("tracehouse_kafka_receiver_messages_total", topic=names.topic, outcome="accepted") == 3


async def test_without_a_dead_letter_topic_poison_is_counted_and_skipped(kafka_bootstrap: str, names: Names) -> None:
    await create_topic(kafka_bootstrap, names.topic, 1)
    good, keys = synthetic_messages(1, 2)
    messages = [good[0], (None, POISON[0]), good[1]]
    await produce(kafka_bootstrap, names.topic, messages)

    sink = TracesSink()
    w = writer(receiver_config(kafka_bootstrap, names, dead_letter_topic="", batch={"timeout": "200ms"}),
               downstream=sink)
    await run_until_committed(w, kafka_bootstrap, names, {0: len(messages)}, "committed past the poison")
    assert sorted((s.trace_id.hex(), s.span_id.hex()) for b in sink.batches for _, _, s in b.iter_spans()) == \
        sorted(keys)
    assert w.metric("tracehouse_kafka_receiver_messages_total", topic=names.topic, outcome="skipped") == 1
    assert w.metric("tracehouse_kafka_receiver_dead_letter_messages_total", topic=names.topic,
                    reason="decode_error") == 0


async def test_a_dead_letter_topic_that_refuses_writes_holds_the_partition_instead_of_skipping(
        kafka_bootstrap: str, names: Names) -> None:
    # The failure is the broker's own: tansu answers InitProducerId with an error, so an
    # idempotent dead-letter producer never starts there (Kafka starts one in well under 3 s).
    probe = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True)
    try:
        await asyncio.wait_for(probe.start(), 3)
    except (Exception, TimeoutError):
        pass
    else:
        pytest.skip("this broker accepts idempotent producers; no real way here to make the dead-letter topic fail")
    finally:
        await probe.stop()

    await create_topic(kafka_bootstrap, names.topic, 1)
    good, _ = synthetic_messages(1, 3)
    # max_spans 2: batches [0] and [1, 2] (the poison has no spans), then [3].
    await produce(kafka_bootstrap, names.topic, [good[0], good[1], (None, POISON[0]), good[2]])
    sink = TracesSink()
    w = writer(receiver_config(kafka_bootstrap, names, producer={"enable_idempotence": True},
                               batch={"max_spans": 2, "timeout": "200ms"}), downstream=sink)
    await w.start()
    try:
        async with Broker(kafka_bootstrap, names.group) as broker:
            await until(lambda: sink.span_count == 2, "the batch before the poison")
            await asyncio.sleep(2.0)  # dead-letter attempts keep failing
            committed = (await broker.committed(names.topic, 1))[0]
    finally:
        await w.stop()
    assert committed.offset == 1 and committed.metadata in ("", "tracehouse:end=2"), \
        f"the poison's batch stays uncommitted while its dead letter cannot be written: {committed}"
    assert sink.span_count == 2, "nothing of the poison's batch, nor after it, was handed on"
    assert w.metric("tracehouse_kafka_receiver_messages_total", topic=names.topic, outcome="skipped") == 0
    assert w.metric("tracehouse_kafka_receiver_messages_total", topic=names.topic, outcome="dead_lettered") == 0


@dataclass
class RefuseSpanNamed:
    """A neighbour that refuses, permanently, any batch holding a span with this name."""

    name: str
    next: TracesConsumer
    refusals: int = 0

    async def consume(self, batch: TraceBatch) -> None:
        if any(s.name == self.name for _, _, s in batch.iter_spans()):
            self.refusals += 1
            raise PermanentError(f"span {self.name!r} can never be stored")
        await self.next.consume(batch)


async def test_a_batch_refused_permanently_is_bisected_down_to_the_refused_message(
        kafka_bootstrap: str, names: Names) -> None:
    await create_topic(kafka_bootstrap, names.topic, 1)
    messages, keys = synthetic_messages(1, 8)
    refused = batch_of([span(99, 1, T0, {}, name="refuse-me")]).to_bytes()
    messages.insert(5, (b"refused-key", refused))
    await produce(kafka_bootstrap, names.topic, messages)

    sink = TracesSink()
    gate = RefuseSpanNamed("refuse-me", sink)
    w = writer(receiver_config(kafka_bootstrap, names, batch={"max_spans": 1000, "timeout": "300ms"}),
               downstream=gate)
    await run_until_committed(w, kafka_bootstrap, names, {0: len(messages)}, "committed to the end")

    got = sorted((s.trace_id.hex(), s.span_id.hex()) for b in sink.batches for _, _, s in b.iter_spans())
    assert got == sorted(keys), "every other span went through, once"
    assert gate.refusals >= 2, "the whole batch first, then the halves holding the refused message"
    [letter] = await read_all(kafka_bootstrap, names.dlq, 1)
    assert (letter.key, letter.value) == (b"refused-key", refused)
    assert dict(letter.headers)[dlq.REASON] == b"permanent_error"
    assert dict(letter.headers)[dlq.SOURCE_OFFSET] == b"5"


# -- failures downstream ---------------------------------------------------------------------

async def test_a_retryable_failure_retries_the_same_batch_paused_and_uncommitted(
        kafka_bootstrap: str, names: Names, chdb_endpoint: str, database: str, client: Any) -> None:
    await create_topic(kafka_bootstrap, names.topic, 1)
    messages, keys = fixture_messages()
    await produce(kafka_bootstrap, names.topic, messages)
    tp = TopicPartition(names.topic, 0)

    seen: list[tuple[str, int | None, bool, Status]] = []
    w = writer(receiver_config(kafka_bootstrap, names, batch={"timeout": "300ms"}),
               chdb_endpoint=chdb_endpoint, database=database)
    async with Broker(kafka_bootstrap, names.group) as broker:
        async def fail_three_times(batch: TraceBatch) -> None:
            committed = (await broker.committed(names.topic, 1)).get(0)
            status = w.host.status.get("receiver/kafka", (Status.STARTING, None))[0]
            seen.append((batch.origin.token if batch.origin else None, committed.offset if committed else None,
                         tp in w.receiver.paused_partitions(), status))
            if len(seen) <= 3:
                raise RetryableError("ClickHouse is restarting", retry_after=0.2)

        w.recorder.on_consume = fail_three_times
        await w.start()
        try:
            await until(lambda: _committed_to(broker, names.topic, {0: len(messages)}), "committed after the retries")
        finally:
            await w.stop()

    assert len(seen) == 4 and len({token for token, *_ in seen}) == 1, f"one batch, one token: {seen}"
    assert seen[0][0] == f"{names.topic}/0/0-{len(messages) - 1}"
    assert all(offset == 0 for _, offset, _, _ in seen), "only the plan (first offset) committed until success"
    assert [paused for *_, paused, _ in seen] == [False, True, True, True], "paused while retrying"
    assert seen[-1][3] is Status.RECOVERABLE_ERROR and w.host.status["receiver/kafka"][0] is Status.OK
    assert stored_keys(client, database) == sorted(keys)
    assert_rollups_match_spans(client, database)


async def test_the_lag_gauge_shows_the_backlog_then_falls_to_zero(kafka_bootstrap: str, names: Names) -> None:
    await create_topic(kafka_bootstrap, names.topic, 1)
    messages, _ = synthetic_messages(1, 40)
    await produce(kafka_bootstrap, names.topic, messages)

    lags: list[float] = []
    sink = TracesSink()
    w = writer(receiver_config(kafka_bootstrap, names, batch={"max_spans": 8, "timeout": "200ms"}),
               downstream=sink)

    def lag() -> float | None:
        return w.host.telemetry.registry.get_sample_value(
            "tracehouse_kafka_receiver_offset_lag", {"receiver": "kafka", "topic": names.topic, "partition": "0"})

    async def note_lag(batch: TraceBatch) -> None:
        lags.append(lag() or 0.0)

    w.recorder.on_consume = note_lag
    await w.start()
    try:
        await until(lambda: lag() == 0 and sink.span_count == 80, "caught up")
    finally:
        await w.stop()
    assert lags[0] == 40, "the whole backlog before the first commit"
    assert lags == sorted(lags, reverse=True) and lags[-1] > 0 and len(lags) >= 10  # 8 spans, 4 messages a batch
    assert lag() is None, "the series goes away with the partition"


# -- consumer group ----------------------------------------------------------------------------

async def test_two_writers_split_the_partitions_and_a_rebalance_loses_and_duplicates_nothing(
        kafka_bootstrap: str, names: Names, chdb_endpoint: str, database: str, client: Any) -> None:
    partitions = 4
    await create_topic(kafka_bootstrap, names.topic, partitions)
    messages, keys = synthetic_messages(1, 240)
    config = receiver_config(kafka_bootstrap, names, batch={"max_spans": 16, "timeout": "200ms"})
    a = writer(config, chdb_endpoint=chdb_endpoint, database=database)
    b = writer(config, chdb_endpoint=chdb_endpoint, database=database)

    async def trickle() -> None:  # a steady stream for ~15 s, across both rebalances
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=False)
        await producer.start()
        try:
            for i in range(0, len(messages), 6):
                for key, value in messages[i:i + 6]:
                    await producer.send_and_wait(names.topic, value, key=key)
                await asyncio.sleep(0.3)
        finally:
            await producer.stop()

    await a.start()
    producing = asyncio.create_task(trickle())
    try:
        await until(lambda: len(a.receiver.assigned_partitions()) == partitions, "a owns every partition")
        await b.start()  # joins mid-stream: the group rebalances
        await until(lambda: len(a.receiver.assigned_partitions()) == len(b.receiver.assigned_partitions()) == 2,
                    "a and b share the partitions")
        assert not a.receiver.assigned_partitions() & b.receiver.assigned_partitions()
        await until(lambda: len(b.recorder.tokens) >= 3 and len(a.recorder.tokens) >= 3, "both write")
        await a.stop()  # leaves mid-stream: b takes everything over
        await until(lambda: len(b.receiver.assigned_partitions()) == partitions, "b owns every partition")
        await producing
        async with Broker(kafka_bootstrap, names.group) as broker:
            ends = await broker.end_offsets(names.topic, partitions)
            assert sum(ends.values()) == len(messages)
            await until(lambda: _committed_to(broker, names.topic, ends), "every partition committed to its end")
    finally:
        producing.cancel()
        await a.stop()
        await b.stop()

    assert stored_keys(client, database) == sorted(keys), "nothing lost, nothing twice"
    assert_rollups_match_spans(client, database)
    a_parts = {token_range(t)[0] for t in a.recorder.tokens}
    b_parts = {token_range(t)[0] for t in b.recorder.tokens}
    assert len(a_parts) == partitions and len(b_parts) == partitions, "each owned all partitions at some point"
    ranges = sorted(token_range(t) for t in a.recorder.tokens + b.recorder.tokens)
    for (p1, _, last), (p2, first, _) in zip(ranges, ranges[1:], strict=False):
        assert p1 != p2 or first == last + 1, f"batches tile each partition without overlap: {ranges}"
    assert a.exporter is not None and b.exporter is not None
    assert a.exporter.skipped_duplicates + b.exporter.skipped_duplicates == 0, "the drain left nothing to replay"


# -- a writer pipeline with two exporters -------------------------------------------------

async def test_a_writer_pipeline_with_two_clickhouse_exporters_hands_both_the_batch_token(
        kafka_bootstrap: str, names: Names, chdb_endpoint: str, client: Any) -> None:
    await create_topic(kafka_bootstrap, names.topic, 2)
    messages, keys = synthetic_messages(1, 12)
    await produce(kafka_bootstrap, names.topic, messages)
    databases = [f"two_a_{uuid.uuid4().hex[:8]}", f"two_b_{uuid.uuid4().hex[:8]}"]
    exporters = [ClickHouseExporter(Settings(ComponentID("clickhouse", str(i)), Kind.EXPORTER),
                                    ClickHouseExporterConfig(endpoint=chdb_endpoint, database=db), None)
                 for i, db in enumerate(databases)]
    branches = [Recorder(e) for e in exporters]
    w = writer(receiver_config(kafka_bootstrap, names, batch={"max_spans": 6, "timeout": "200ms"}),
               downstream=TracesFanout(branches))
    for exporter in exporters:
        await exporter.start(w.host)
    try:
        async with Broker(kafka_bootstrap, names.group) as broker:
            ends = await broker.end_offsets(names.topic, 2)
        await run_until_committed(w, kafka_bootstrap, names, ends, "both partitions committed")
    finally:
        for exporter in exporters:
            await exporter.shutdown()

    assert w.recorder.tokens and None not in w.recorder.tokens
    assert branches[0].tokens == branches[1].tokens == w.recorder.tokens, "each exporter got the batch's token"
    assert stored_keys(client, databases[0]) == stored_keys(client, databases[1]) == sorted(keys)


@pytest.fixture(autouse=True)
async def _no_stray_tasks() -> AsyncIterator[None]:
    yield
    await asyncio.sleep(0)
    stray = [t for t in asyncio.all_tasks() if t.get_name().startswith("kafka-") and not t.done()]
    assert not stray, f"tasks left running after shutdown: {stray}"


# -- tenants -------------------------------------------------------------------------------

async def test_each_batch_keeps_its_tenant_from_the_sidecar_through_kafka_into_clickhouse(
        kafka_bootstrap: str, names: Names, chdb_endpoint: str, database: str, client: Any) -> None:
    from kafka_testing import exporter_config, read_topic, running

    await create_topic(kafka_bootstrap, names.topic, 2)
    shop = load_batch("mlflow/http-protobuf.pb")
    shop.tenant = "shop"
    lab = load_batch("openinference/http-protobuf.pb")
    lab.tenant = "lab"
    anonymous = batch_of([span(0xA11, 1, time.time_ns(), {})], service="no-key-app")
    # The same span ids under another tenant: neither tenant's copy hides the other's.
    shop_twin = load_batch("mlflow/http-protobuf.pb")
    shop_twin.tenant = "lab"
    async with running(exporter_config(kafka_bootstrap, names.topic)) as (exporter, _):
        for batch in (shop, lab, anonymous, shop_twin):
            await exporter.consume(batch.clone())

    records = await read_topic(kafka_bootstrap, names.topic)
    tenants = {dict(r.headers or ()).get("tracehouse-tenant") for r in records}
    assert tenants == {b"shop", b"lab", None}  # the default tenant carries no header
    for record in records:
        request = ExportTraceServiceRequest()
        request.ParseFromString(record.value)
        header = dict(record.headers or ()).get("tracehouse-tenant")
        claimed = {kv.value.string_value for rs in request.resource_spans for kv in rs.resource.attributes
                   if kv.key == "tracehouse.tenant"}
        assert claimed == ({header.decode()} if header else set())  # and the resource attribute

    w = writer(receiver_config(kafka_bootstrap, names, batch={"max_spans": 1000, "timeout": "200ms"}),
               chdb_endpoint=chdb_endpoint, database=database)
    await w.start()
    total = shop.span_count + lab.span_count + anonymous.span_count + shop_twin.span_count
    try:
        await until(lambda: len(stored_keys(client, database)) >= total, "every tenant's spans stored")
    finally:
        await w.stop()
    assert set(w.recorder.tenants) == {"shop", "lab", ""}  # one tenant per batch
    rows = client.query(f"SELECT Tenant, count(), uniqExact(TraceId, SpanId), "
                        f"countIf(mapContains(ResourceAttributes, 'tracehouse.tenant')) "
                        f"FROM {database}.otel_traces GROUP BY Tenant ORDER BY Tenant").result_rows
    assert rows == [("", anonymous.span_count, anonymous.span_count, 0),
                    ("lab", lab.span_count + shop_twin.span_count, lab.span_count + shop_twin.span_count, 0),
                    ("shop", shop.span_count, shop.span_count, 0)]
    rollup = dict(client.query(f"SELECT Tenant, sum(Spans) FROM {database}.otel_traces_trace_rollup "
                               "GROUP BY Tenant").result_rows)
    assert rollup == {"": anonymous.span_count, "lab": lab.span_count + shop_twin.span_count,
                      "shop": shop.span_count}
