"""Overload: with the exporter blocked, receivers refuse retryably and memory stays bounded.

The exporter points at a ClickHouse server that does not answer, so admitted requests
sit in the pipeline retrying. Once the memory limiter's in-flight budget is used up,
HTTP answers 429 + Retry-After and gRPC RESOURCE_EXHAUSTED with RetryInfo (which OTLP
clients need to retry it); the admitted requests end with a retryable 503 at their
deadline. Nothing is acknowledged that was not stored.
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import grpc
import httpx
import pytest
import yaml
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from allinone import ALL_IN_ONE, AllInOne

pytestmark = pytest.mark.integration
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
PB = {"content-type": "application/x-protobuf"}


def request(spans: int, seed: int, payload: int = 0) -> bytes:
    content = AnyValue(string_value="x" * payload)
    scope = ScopeSpans(spans=[
        Span(trace_id=seed.to_bytes(16, "big"), span_id=(i + 1).to_bytes(8, "big"), name="chat",
             attributes=[KeyValue(key="gen_ai.input.messages", value=content)] if payload else [])
        for i in range(spans)
    ])
    return ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[scope])]).SerializeToString()


@pytest.fixture(scope="module")
def blocked(tmp_path_factory: pytest.TempPathFactory):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    config = yaml.safe_load(ALL_IN_ONE.read_text())
    config["receivers"]["otlp"]["protocols"]["http"]["request_timeout"] = "1500ms"
    config["processors"]["memory_limiter"] = {"max_in_flight_spans": 500, "max_in_flight_mib": 16,
                                              "retry_after": "2s"}
    config["exporters"]["clickhouse"].update(endpoint=f"http://127.0.0.1:{dead_port}", timeout="1s",
                                             retry_on_failure={"initial_interval": "100ms", "max_elapsed_time": "60s"})
    # The query API keeps its embedded engine: readiness does not depend on the exporter.
    workdir = Path(tmp_path_factory.mktemp("overload"))
    path = workdir / "overload.yaml"
    path.write_text(yaml.safe_dump(config))
    server = AllInOne(workdir, config=path).start()
    yield server
    assert server.stop() == 0


async def test_http_refuses_with_429_and_retry_after_once_the_limit_is_reached(blocked: AllInOne) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        url = f"{blocked.otlp_http}/v1/traces"
        calls = [client.post(url, content=request(100, seed=i + 1), headers=PB) for i in range(20)]
        responses = await asyncio.gather(*calls)
    codes = sorted(r.status_code for r in responses)
    # 5 x 100 spans fill the budget; they time out retryably, the rest are refused at once.
    assert codes.count(503) == 5 and codes.count(429) == 15, codes
    for r in responses:
        assert r.headers["retry-after"] in ("1", "2", "5"), r.headers
    refused = [r for r in responses if r.status_code == 429]
    assert refused[0].headers["retry-after"] == "2"


async def test_grpc_refuses_with_resource_exhausted_and_retry_info(blocked: AllInOne) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        url = f"{blocked.otlp_http}/v1/traces"
        # Fill the in-flight budget over HTTP, then try gRPC while it is full.
        fill = [asyncio.create_task(client.post(url, content=request(100, seed=100 + i), headers=PB))
                for i in range(5)]
        await asyncio.sleep(0.5)
        async with grpc.aio.insecure_channel(blocked.otlp_grpc) as channel:
            export = channel.unary_unary(EXPORT, request_serializer=None, response_deserializer=None)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await export(request(10, seed=999), timeout=10)
        await asyncio.gather(*fill)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    status = rpc_status.from_call(err.value)
    assert status is not None
    delays = []
    for detail in status.details:
        info = error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            delays.append(info.retry_delay.seconds)
    assert delays == [2]


async def test_memory_stays_bounded_under_sustained_overload(blocked: AllInOne) -> None:
    """Bounded means a plateau: after warm-up, offering more data adds no memory."""
    baseline = blocked.rss_bytes()
    body = request(200, seed=7, payload=5_000)  # ~1 MB per request
    codes: list[int] = []
    started = time.monotonic()
    samples: list[tuple[float, int]] = []

    async def worker(client: httpx.AsyncClient, url: str) -> None:
        while time.monotonic() - started < 12:
            codes.append((await client.post(url, content=body, headers=PB)).status_code)

    async def sampler() -> None:
        while time.monotonic() - started < 12:
            samples.append((time.monotonic() - started, blocked.rss_bytes()))
            await asyncio.sleep(0.25)

    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=16)) as client:
        url = f"{blocked.otlp_http}/v1/traces"
        await asyncio.gather(sampler(), *(worker(client, url) for _ in range(16)))
    offered = len(body) * len(codes)
    assert offered > 300 * 1024 * 1024
    assert set(codes) <= {429, 503}, "nothing may be acknowledged while the exporter cannot write"
    assert codes.count(429) > codes.count(503)
    mib = 2**20
    after_warmup = max(rss for t, rss in samples if t <= 6)
    peak = max(rss for _, rss in samples)
    # The second half of the run, with as much again offered, grows memory by almost nothing...
    assert peak - after_warmup < 32 * mib, f"RSS kept growing: {after_warmup / mib:.0f} -> {peak / mib:.0f} MiB"
    # ...and the total stays far below what was offered (16 MiB in flight + bodies being read).
    assert peak - baseline < 200 * mib, f"RSS grew {(peak - baseline) / mib:.0f} MiB of {offered / mib:.0f} offered"
