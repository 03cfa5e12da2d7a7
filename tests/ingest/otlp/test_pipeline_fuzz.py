"""Fuzzing beyond "no crash": hostile requests go through the whole all-in-one pipeline
(OTLP/HTTP -> genai_normalize -> genai_tokens -> genai_cost -> batch -> ClickHouse on chDB)
next to a valid request, and the valid request is acknowledged and stored intact, every
time. The hostile one gets a 2xx or a 4xx, never a 5xx (bad data is never "retry later"),
and whatever it was acknowledged for is stored."""

from __future__ import annotations

import asyncio
import gzip
import threading
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from otlp_fixtures import FIXTURES
from tracehouse.core.component import ComponentID, Kind, Settings
from tracehouse.core.pdata import TraceBatch
from tracehouse.core.testing import TestHost
from tracehouse.ingest.otlp.config import HttpConfig, OtlpReceiverConfig, ProtocolsConfig
from tracehouse.ingest.otlp.receiver import OtlpReceiver
from tracehouse.ingest.otlp.validate import drop_invalid_spans
from tracehouse.processors.batch.config import BatchConfig
from tracehouse.processors.batch.processor import BatchProcessor
from tracehouse.processors.genai_cost.config import GenAICostConfig
from tracehouse.processors.genai_cost.processor import CostProcessor
from tracehouse.processors.genai_normalize.config import GenAINormalizeConfig
from tracehouse.processors.genai_normalize.processor import NormalizeProcessor
from tracehouse.processors.genai_tokens.config import GenAITokensConfig
from tracehouse.processors.genai_tokens.processor import TokensProcessor
from tracehouse.sinks.clickhouse.client import open_client
from tracehouse.sinks.clickhouse.config import ClickHouseExporterConfig
from tracehouse.sinks.clickhouse.exporter import ClickHouseExporter

pytestmark = pytest.mark.integration

T = TypeVar("T")
T0 = 1_795_000_000_000_000_000
PB = {"content-type": "application/x-protobuf"}
SEED_PB = (FIXTURES / "mlflow" / "http-protobuf.pb").read_bytes()


@dataclass
class Pipeline:
    loop: asyncio.AbstractEventLoop
    url: str
    client: Any
    database: str

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def stored(self, trace_hex: str) -> list[tuple[Any, ...]]:
        return self.client.query(
            f"SELECT SpanId, SpanName, toUnixTimestamp64Nano(Timestamp), Duration, GenAIInputTokens "
            f"FROM {self.database}.otel_traces WHERE TraceId = {{t:String}} ORDER BY SpanId",
            parameters={"t": trace_hex}).result_rows

    def stored_keys(self, trace_hexes: set[str]) -> set[tuple[str, str]]:
        rows = self.client.query(f"SELECT TraceId, SpanId FROM {self.database}.otel_traces "
                                 "WHERE TraceId IN {t:Array(String)}", parameters={"t": sorted(trace_hexes)})
        return {(r[0], r[1]) for r in rows.result_rows}


@pytest.fixture(scope="module")
def pipeline(chdb_endpoint: str) -> Iterator[Pipeline]:
    """The all-in-one's pipeline in a loop of its own (hypothesis drives it from the test thread)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    database = f"fz_{uuid.uuid4().hex[:10]}"

    def settings_of(name: str, kind: Kind) -> Settings:
        return Settings(ComponentID(name), kind, "traces")

    exporter = ClickHouseExporter(settings_of("clickhouse", Kind.EXPORTER),
                                  ClickHouseExporterConfig(endpoint=chdb_endpoint, database=database))
    batch = BatchProcessor(settings_of("batch", Kind.PROCESSOR), BatchConfig(timeout=0.05), exporter)
    cost = CostProcessor(settings_of("genai_cost", Kind.PROCESSOR), GenAICostConfig(), batch)
    tokens = TokensProcessor(settings_of("genai_tokens", Kind.PROCESSOR), GenAITokensConfig(), cost)
    normalize = NormalizeProcessor(settings_of("genai_normalize", Kind.PROCESSOR), GenAINormalizeConfig(), tokens)
    receiver = OtlpReceiver(settings_of("otlp", Kind.RECEIVER), OtlpReceiverConfig(protocols=ProtocolsConfig(
        http=HttpConfig(endpoint="127.0.0.1:0", request_timeout=20))), normalize)
    host = TestHost()
    components = [exporter, batch, cost, tokens, normalize, receiver]

    async def start() -> None:
        for component in components:
            await component.start(host)

    async def stop() -> None:
        for component in reversed(components):
            await component.shutdown()

    asyncio.run_coroutine_threadsafe(start(), loop).result(120)
    client = open_client(chdb_endpoint)
    try:
        yield Pipeline(loop, f"http://127.0.0.1:{receiver.http_port}/v1/traces", client, database)
    finally:
        client.close()
        asyncio.run_coroutine_threadsafe(stop(), loop).result(120)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


# --------------------------------------------------------------------------- hostile requests

EDGE_U64 = st.sampled_from([0, 1, 2**32, 2**53, 2**63 - 1, 2**63, 2**64 - 2, 2**64 - 1, T0, 4_294_967_296 * 10**9])
times = st.one_of(EDGE_U64, st.integers(0, 2**64 - 1))
ids = st.one_of(st.binary(min_size=0, max_size=20), st.sampled_from([bytes(16), bytes(8), b"\xff" * 16, b"\x01" * 8]))
numbers = st.one_of(st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from(["1e400", "99999999999999999999999999", "-5", "NaN", "0x10", " 12 ", "1e30"]))
token_keys = st.sampled_from(["gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "llm.token_count.prompt",
                              "llm.token_count.total", "gen_ai.usage.cost", "llm.cost.total",
                              "gen_ai.request.model", "gen_ai.operation.name", "gen_ai.input.messages"])


def any_value(v: object) -> AnyValue:
    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    return AnyValue(string_value=str(v))


@st.composite
def hostile_span(draw: st.DrawFn, trace_id: bytes) -> Span:
    span = Span(trace_id=draw(st.one_of(st.just(trace_id), ids)), span_id=draw(ids),
                parent_span_id=draw(st.one_of(st.just(b""), ids)), name=draw(st.text(max_size=30)),
                kind=draw(st.integers(0, 9)), start_time_unix_nano=draw(times), end_time_unix_nano=draw(times))
    for key, value in draw(st.lists(st.tuples(token_keys, numbers), max_size=5)):
        span.attributes.append(KeyValue(key=key, value=any_value(value)))
    if draw(st.booleans()):
        span.attributes.append(KeyValue(key="gen_ai.operation.name", value=AnyValue(string_value="chat")))
        span.attributes.append(KeyValue(key="gen_ai.request.model", value=AnyValue(string_value="gpt-4o")))
    for t in draw(st.lists(times, max_size=3)):
        span.events.add(time_unix_nano=t, name="e")
    span.status.code = draw(st.integers(0, 5))
    return span


@st.composite
def hostile_request(draw: st.DrawFn) -> tuple[bytes, dict[str, str], ExportTraceServiceRequest | None]:
    """(body, headers, the request when it is well-formed protobuf)."""
    kind = draw(st.sampled_from(["structured", "structured", "structured", "corrupted", "bytes", "gzip"]))
    if kind in ("corrupted", "bytes"):
        if kind == "bytes":
            return draw(st.binary(max_size=512)), PB, None
        offset = draw(st.integers(0, len(SEED_PB) - 1))
        garbage = draw(st.binary(min_size=1, max_size=8))
        return SEED_PB[:offset] + garbage + SEED_PB[offset + len(garbage):], PB, None
    trace_id = uuid.uuid4().bytes
    spans = draw(st.lists(hostile_span(trace_id), min_size=1, max_size=6))
    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])])
    body = request.SerializeToString()
    if kind == "gzip":
        members = draw(st.integers(1, 3))
        # Members concatenate into one message: the request repeated.
        whole = ExportTraceServiceRequest.FromString(body * members)
        return b"".join(gzip.compress(body) for _ in range(members)), {**PB, "content-encoding": "gzip"}, whole
    return body, PB, request


def valid_request() -> tuple[str, bytes, list[tuple[str, str, int, int, int | None]]]:
    trace = uuid.uuid4().bytes
    spans = []
    for i in range(3):
        span = Span(trace_id=trace, span_id=(i + 1).to_bytes(8, "big"), name=f"valid-{i}",
                    start_time_unix_nano=T0 + i * 1000, end_time_unix_nano=T0 + i * 1000 + 500)
        span.attributes.append(KeyValue(key="gen_ai.usage.input_tokens", value=AnyValue(int_value=10 + i)))
        span.attributes.append(KeyValue(key="gen_ai.request.model", value=AnyValue(string_value="gpt-4o")))
        spans.append(span)
    body = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(
        spans=spans)])]).SerializeToString()
    expected = [((i + 1).to_bytes(8, "big").hex(), f"valid-{i}", T0 + i * 1000, 500, 10 + i) for i in range(3)]
    return trace.hex(), body, expected


async def send_both(url: str, valid: bytes, hostile: bytes, headers: dict[str, str]
                    ) -> tuple[httpx.Response, httpx.Response]:
    async with httpx.AsyncClient(timeout=30) as http:
        a, b = await asyncio.gather(http.post(url, content=valid, headers=PB),
                                    http.post(url, content=hostile, headers=headers))
    return a, b


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(hostile_request())
def test_a_valid_request_next_to_a_hostile_one_is_acknowledged_and_stored_intact(
        pipeline: Pipeline, hostile: tuple[bytes, dict[str, str], ExportTraceServiceRequest | None]) -> None:
    body, headers, request = hostile
    trace, valid, expected = valid_request()
    ok, other = pipeline.run(send_both(pipeline.url, valid, body, headers))

    assert ok.status_code == 200, ok.content
    assert not ExportTraceServiceResponse.FromString(ok.content).HasField("partial_success")
    assert pipeline.stored(trace) == expected

    assert other.status_code < 500, (other.status_code, other.content[:300])
    if other.status_code == 200 and request is not None:
        # Acknowledged means stored: every span the receiver did not reject is in ClickHouse.
        kept = TraceBatch.from_request(request)
        rejected, _ = drop_invalid_spans(kept)
        reply = ExportTraceServiceResponse.FromString(other.content)
        assert reply.partial_success.rejected_spans == rejected
        keys = {(s.trace_id.hex(), s.span_id.hex()) for _, _, s in kept.iter_spans()}
        if keys:
            assert pipeline.stored_keys({t for t, _ in keys}) >= keys
