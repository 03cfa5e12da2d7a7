"""Helpers for the Kafka exporter tests: a broker behind a cuttable proxy, topic set-up,
reading a topic back without a consumer group, and OTLP traffic with known spans."""

from __future__ import annotations

import asyncio
import copy
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import ConsumerRecord, TopicPartition
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from kafka_broker import TansuBroker
from tcp_proxy import TcpProxy
from tracehouse.core.component import ComponentID, Kind, Settings
from tracehouse.core.pdata import TraceBatch
from tracehouse.core.testing import TestHost
from tracehouse.sinks.kafka.config import KafkaExporterConfig
from tracehouse.sinks.kafka.exporter import KafkaExporter

Record: TypeAlias = "ConsumerRecord[bytes, bytes]"


# ---------------------------------------------------------------------------- broker behind a proxy


@dataclass
class ProxiedBroker:
    broker: TansuBroker
    proxy: TcpProxy

    @property
    def bootstrap(self) -> str:
        """What clients use: every connection, bootstrap and advertised, goes through the proxy."""
        return self.proxy.address

    def cut(self) -> None:
        self.proxy.cut()

    def restore(self) -> None:
        self.proxy.restore()


@contextmanager
def proxied_tansu(directory: Path) -> Iterator[ProxiedBroker]:
    proxy = TcpProxy().start()  # bound first: its port is what the broker advertises
    broker = TansuBroker(directory / "tansu.log", advertised_port=proxy.port).start()
    proxy.target_port = broker.port
    try:
        yield ProxiedBroker(broker, proxy)
    finally:
        proxy.close()
        broker.stop()


# ---------------------------------------------------------------------------- topics


def new_topic() -> str:
    return f"spans_{uuid.uuid4().hex[:12]}"


async def create_topic(bootstrap: str, topic: str, partitions: int = 4) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()


async def read_topic(bootstrap: str, topic: str, timeout: float = 15.0, **client: Any) -> list[Record]:
    """Every record in the topic now, from the start. No consumer group (joining one takes
    ~5 s on tansu): partitions are assigned by hand and read up to their end offsets.
    `client`: more AIOKafkaConsumer settings (TLS)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, **client)
    await consumer.start()
    try:
        await consumer.topics()  # refreshes metadata for every topic
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        got: list[Record] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            positions = {tp: await consumer.position(tp) for tp in tps}
            if all(positions[tp] >= ends[tp] for tp in tps):
                return got
            for records in (await consumer.getmany(*tps, timeout_ms=200)).values():
                got.extend(records)
        raise AssertionError(f"could not read {topic} to its end offsets {ends} within {timeout}s")
    finally:
        await consumer.stop()


# ---------------------------------------------------------------------------- exporters


def exporter_config(bootstrap: str, topic: str, **overrides: Any) -> KafkaExporterConfig:
    """Short timeouts for tests; idempotence off (tansu refuses InitProducerId)."""
    base: dict[str, Any] = {
        "brokers": [bootstrap], "topic": topic, "timeout": "2s",
        "producer": {"enable_idempotence": False, "linger": "1ms"},
        "retry_on_failure": {"initial_interval": "100ms", "max_interval": "300ms", "max_elapsed_time": "60s"},
    }
    return KafkaExporterConfig.model_validate(_merge(base, overrides))


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


@asynccontextmanager
async def running(config: KafkaExporterConfig, host: TestHost | None = None,
                  connect: bool = True) -> AsyncIterator[tuple[KafkaExporter, TestHost]]:
    host = host or TestHost()
    exporter = KafkaExporter(Settings(ComponentID("kafka"), Kind.EXPORTER, "traces"), config)
    await exporter.start(host)
    try:
        if connect:
            await wait_for(lambda: exporter.connected, 15, "exporter to connect")
        yield exporter, host
    finally:
        await exporter.shutdown()


async def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


def metric(host: TestHost, name: str, **labels: str) -> float:
    value = host.telemetry.registry.get_sample_value(name, {"exporter": "kafka", **labels})
    return value or 0.0


# ---------------------------------------------------------------------------- traffic


def trace_id(n: int, run: int = 0) -> bytes:
    return (run * 1_000_003 + n + 1).to_bytes(16, "big")


def traffic(traces: int = 24, spans_per_trace: int = 6, requests: int = 3, run: int = 0,
            attr_bytes: int = 0) -> list[TraceBatch]:
    """Requests whose traces are spread over every request, two resources and two scopes
    each, so keying has something to regroup. Every span has a unique id and attributes."""
    out = []
    for r in range(requests):
        request = ExportTraceServiceRequest()
        for service in ("checkout", "llm-gateway"):
            rs = request.resource_spans.add(resource=Resource(attributes=[_kv("service.name", service)]),
                                            schema_url="https://opentelemetry.io/schemas/1.26.0")
            for lib in ("openinference", "http"):
                ss = rs.scope_spans.add(scope=InstrumentationScope(name=lib, version="1.0"))
                for t in range(traces):
                    for s in range(spans_per_trace):
                        # Span s of trace t goes to exactly one (request, service, lib).
                        if (t + s) % requests != r or (s % 2 == 0) != (service == "checkout") \
                                or (s % 4 < 2) != (lib == "openinference"):
                            continue
                        n = (t * spans_per_trace + s)
                        ss.spans.append(Span(
                            trace_id=trace_id(t, run), span_id=(run * 1_000_003 + n + 1).to_bytes(8, "big"),
                            name=f"op-{s}", kind=Span.SPAN_KIND_CLIENT,
                            start_time_unix_nano=1_700_000_000_000_000_000 + n, end_time_unix_nano=1_700_000_000_000_005_000 + n,
                            attributes=[_kv("n", n), _kv("gen_ai.request.model", "gpt-4o"),
                                        _kv("pad", "x" * attr_bytes)]))
        out.append(TraceBatch.from_bytes(request.SerializeToString()))
    return out


def _kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


SpanPrint = tuple[bytes, bytes, bytes, bytes, bytes]


def span_prints(requests: Iterable[ExportTraceServiceRequest]) -> Counter[SpanPrint]:
    """Every span with its resource and scope, serialized: what 'the same spans' means."""
    out: Counter[SpanPrint] = Counter()
    for request in requests:
        for rs in request.resource_spans:
            resource = rs.resource.SerializeToString(deterministic=True) + rs.schema_url.encode()
            for ss in rs.scope_spans:
                scope = ss.scope.SerializeToString(deterministic=True) + ss.schema_url.encode()
                for span in ss.spans:
                    out[(span.trace_id, span.span_id, resource, scope, span.SerializeToString(deterministic=True))] += 1
    return out


def parse(value: bytes) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    request.ParseFromString(value)
    return request


def span_ids(requests: Iterable[ExportTraceServiceRequest]) -> set[bytes]:
    return {span.span_id for r in requests for rs in r.resource_spans for ss in rs.scope_spans for span in ss.spans}
