"""The all-in-one (a real `tracehouse run`, chDB underneath) against issue 14's hostile
clients, with a valid client alongside each: the valid one is always acknowledged and its
spans stored and readable; the process stays responsive; its JSON log stays one record a line."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from allinone import ALL_IN_ONE, AllInOne

pytestmark = pytest.mark.integration
PB = {"content-type": "application/x-protobuf"}
NOW = time.time_ns()
Y2200 = 7_258_118_400 * 10**9


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AllInOne]:
    config = yaml.safe_load(ALL_IN_ONE.read_text())
    # The limits are config keys; shortened here so the test waits seconds, not minutes.
    config["receivers"]["otlp"]["protocols"]["http"].update(read_timeout="2s", read_header_timeout="2s")
    workdir = Path(tmp_path_factory.mktemp("hostile"))
    path = workdir / "hostile.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = AllInOne(workdir, config=path).start()
    yield proc
    code = proc.stop()
    assert code == 0, proc.log_tail()
    # Every line of the service's log is one JSON record, tracebacks included.
    for line in proc.log_path.read_text().splitlines():
        json.loads(line)


def request(trace: bytes, *spans: Span, attrs: dict[str, object] | None = None) -> bytes:
    for span in spans:
        span.trace_id = trace
        for key, value in (attrs or {}).items():
            v = AnyValue(int_value=value) if isinstance(value, int) else AnyValue(string_value=str(value))
            span.attributes.append(KeyValue(key=key, value=v))
    rs = ResourceSpans(resource=Resource(attributes=[KeyValue(key="service.name",
                                                              value=AnyValue(string_value="hostile"))]),
                       scope_spans=[ScopeSpans(spans=list(spans))])
    return ExportTraceServiceRequest(resource_spans=[rs]).SerializeToString()


def span(span_id: int, start: int = NOW, end: int | None = None, name: str = "op") -> Span:
    return Span(span_id=span_id.to_bytes(8, "big"), name=name, start_time_unix_nano=start,
                end_time_unix_nano=start + 1000 if end is None else end)


async def trace_spans(server: AllInOne, trace: bytes) -> list[str]:
    async with httpx.AsyncClient(timeout=10) as http:
        resp = await http.get(f"{server.query}/api/v1/traces/{trace.hex()}")
    return [] if resp.status_code == 404 else sorted(s["span_id"] for s in resp.json()["spans"])


async def test_poisoned_and_valid_requests_at_once(server: AllInOne) -> None:
    valid, poisoned = uuid.uuid4().bytes, uuid.uuid4().bytes
    async with httpx.AsyncClient(timeout=60) as http:
        url = f"{server.otlp_http}/v1/traces"
        t0 = time.monotonic()
        ok, bad = await asyncio.gather(
            http.post(url, content=request(valid, span(1), span(2)), headers=PB),
            http.post(url, content=request(poisoned, span(1), span(2, start=2**64 - 1, end=2**64 - 1),
                                           attrs={"gen_ai.usage.input_tokens": "9" * 30,
                                                  "gen_ai.request.model": "gpt-4o"}), headers=PB))
        assert time.monotonic() - t0 < 10
    assert ok.status_code == 200, ok.content
    assert bad.status_code == 200, bad.content
    partial = ExportTraceServiceResponse.FromString(bad.content).partial_success
    assert partial.rejected_spans == 1 and "start_time_unix_nano" in partial.error_message
    assert await trace_spans(server, valid) == ["0000000000000001", "0000000000000002"]
    assert await trace_spans(server, poisoned) == ["0000000000000001"]  # its count dropped, the span kept


async def test_stalled_bodies_while_a_valid_post_succeeds(server: AllInOne) -> None:
    port = server.http_port
    stalled = []
    for _ in range(140):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
                     b"Content-Length: 50000\r\n\r\n" + b"\x0a")
        stalled.append((reader, writer))
    await asyncio.sleep(0.3)
    trace = uuid.uuid4().bytes
    async with httpx.AsyncClient(timeout=10) as http:
        resp = await http.post(f"{server.otlp_http}/v1/traces", content=request(trace, span(1)), headers=PB)
    assert resp.status_code == 200, resp.content
    # Within read_timeout (2s here) every stalled client is answered 408 and dropped.
    for reader, writer in stalled:
        async with asyncio.timeout(10):
            first = await reader.readline()
        assert first.startswith(b"HTTP/1.1 408"), first
        writer.close()
    assert await trace_spans(server, trace) == ["0000000000000001"]


async def test_64_mib_of_headers_is_431(server: AllInOne) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.http_port)
    writer.write(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nX-Huge: ")
    reply = asyncio.create_task(reader.readline())
    try:
        for _ in range(64):
            if reply.done():
                break
            writer.write(b"a" * (1 << 20))
            await writer.drain()
    except (ConnectionResetError, BrokenPipeError):
        pass
    async with asyncio.timeout(10):
        first = await reply
    assert first.startswith(b"HTTP/1.1 431"), first
    writer.close()


async def test_gzip_of_two_members_and_a_span_after_2106_are_stored_and_readable(server: AllInOne) -> None:
    one, two, future = uuid.uuid4().bytes, uuid.uuid4().bytes, uuid.uuid4().bytes
    body = gzip.compress(request(one, span(1))) + gzip.compress(request(two, span(2)))
    async with httpx.AsyncClient(timeout=30) as http:
        resp = await http.post(f"{server.otlp_http}/v1/traces", content=body,
                               headers={**PB, "content-encoding": "gzip"})
        assert resp.status_code == 200, resp.content
        resp = await http.post(f"{server.otlp_http}/v1/traces", content=request(future, span(7, start=Y2200)),
                               headers=PB)
        assert resp.status_code == 200, resp.content
    assert await trace_spans(server, one) == ["0000000000000001"]
    assert await trace_spans(server, two) == ["0000000000000002"]
    assert await trace_spans(server, future) == ["0000000000000007"]


async def test_a_span_resent_with_a_shifted_start_is_counted_once(server: AllInOne) -> None:
    trace = uuid.uuid4().bytes
    async with httpx.AsyncClient(timeout=30) as http:
        url = f"{server.otlp_http}/v1/traces"
        for start in (NOW - 10**9, NOW + 3600 * 10**9):
            assert (await http.post(url, content=request(trace, span(1, start=start)), headers=PB)).status_code == 200
        listed = await http.get(f"{server.query}/api/v1/traces", params={
            "service": "hostile", "start": str((NOW - 7200 * 10**9) // 10**9), "end": str((NOW + 7200 * 10**9) // 10**9),
            "limit": 200})
    rows = [t for t in listed.json()["traces"] if t["trace_id"] == trace.hex()]
    assert len(rows) == 1 and rows[0]["span_count"] == 1, rows


async def test_healthz_answers_while_huge_messages_are_tokenized(server: AllInOne) -> None:
    content = "".join(chr(48 + (i * 7919) % 75) for i in range(200_000))
    spans = [span(i + 1) for i in range(10)]
    body = request(uuid.uuid4().bytes, *spans, attrs={
        "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
        "gen_ai.input.messages": json.dumps([{"role": "user", "content": content}])})
    async with httpx.AsyncClient(timeout=30) as http:
        await http.get(f"{server.query}/healthz")
        post = asyncio.create_task(http.post(f"{server.otlp_http}/v1/traces", content=body, headers=PB))
        latencies = []
        while not post.done():
            t0 = time.perf_counter()
            assert (await http.get(f"{server.query}/healthz")).status_code == 200
            latencies.append(time.perf_counter() - t0)
            await asyncio.sleep(0.02)
        assert (await post).status_code == 200
    assert max(latencies) < 0.2, f"slowest /healthz {max(latencies) * 1000:.0f} ms"
