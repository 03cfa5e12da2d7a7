"""Big trace reads against the event loop they share with ingest.

Stores one trace of `--spans` spans (GenAI attributes with a message each) in embedded
chDB, then, in one process and one event loop as in the all-in-one, reads it through the
query API: once alone, then `--readers` at once (different clients), while a probe
measures how long the loop takes to answer (`/healthz`, on the same loop the OTLP
receivers use). Prints wall times, the probe's latency and how often it got through, and
the process's peak RSS.

    python -m tracehouse.bench.run_trace_reads --spans 100000 --readers 4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from tracehouse.bench.loadgen import report
from tracehouse.core.component import ComponentID, Kind, Settings
from tracehouse.core.pdata import TraceBatch, key_values
from tracehouse.core.testing import TestHost
from tracehouse.query.app import create_app
from tracehouse.query.config import QueryClickHouseConfig
from tracehouse.query.store import TraceStore
from tracehouse.sinks.clickhouse.config import ClickHouseExporterConfig
from tracehouse.sinks.clickhouse.exporter import ClickHouseExporter

TRACE = 0xB16B16
CHUNK = 10_000


def _batch(first: int, count: int, t0: int) -> TraceBatch:
    messages = json.dumps([{"role": "user", "parts": [{"type": "text", "content": "hello " * 50}]}])
    spans = [Span(trace_id=TRACE.to_bytes(16, "big"), span_id=(i + 1).to_bytes(8, "big"),
                  parent_span_id=b"" if i == 0 else (1).to_bytes(8, "big"), name="chat",
                  start_time_unix_nano=t0 + i * 1000, end_time_unix_nano=t0 + i * 1000 + 500,
                  attributes=key_values({"gen_ai.request.model": "gpt-4o", "gen_ai.input.messages": messages}))
             for i in range(first, first + count)]
    rs = ResourceSpans(resource=Resource(attributes=key_values({"service.name": "bench"})),
                       scope_spans=[ScopeSpans(spans=spans)])
    return TraceBatch.from_request(ExportTraceServiceRequest(resource_spans=[rs]))


async def seed(dsn: str, spans: int) -> None:
    exporter = ClickHouseExporter(Settings(ComponentID("clickhouse"), Kind.EXPORTER),
                                  ClickHouseExporterConfig(endpoint=dsn, database="bench"))
    await exporter.start(TestHost())
    t0 = time.time_ns() - 600 * 10**9
    for first in range(0, spans, CHUNK):
        await exporter.consume(_batch(first, min(CHUNK, spans - first), t0))
    await exporter.shutdown()


class _Health:
    telemetry = TestHost().telemetry

    def healthy(self) -> bool:
        return True

    def ready(self) -> bool:
        return True

    def statuses(self) -> dict[str, Any]:
        return {}


async def measure(dsn: str, readers: int) -> dict[str, Any]:
    store = TraceStore(QueryClickHouseConfig(endpoint=dsn, database="bench"), max_workers=4)
    app = create_app(store, _Health())
    trace_id = format(TRACE, "032x")
    out: dict[str, Any] = {}
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://q", timeout=600) as api:
            t0 = time.perf_counter()
            one = await api.get(f"/api/v1/traces/{trace_id}")
            out["one_read_s"] = round(time.perf_counter() - t0, 2)
            out["body_mb"] = round(len(one.content) / 1e6, 1)
            latencies: list[float] = []
            stop = asyncio.Event()

            async def probe() -> None:
                while not stop.is_set():
                    t = time.perf_counter()
                    await api.get("/healthz")
                    latencies.append(time.perf_counter() - t)
                    await asyncio.sleep(0.05)

            task = asyncio.create_task(probe())
            t0 = time.perf_counter()
            await asyncio.gather(*(api.get(f"/api/v1/traces/{trace_id}", headers={"authorization": f"reader-{i}"})
                                   for i in range(readers)))
            out[f"{readers}_reads_s"] = round(time.perf_counter() - t0, 2)
            stop.set()
            await task
            out["probe_max_ms"] = round(max(latencies) * 1000, 1)
            out["probe_p50_ms"] = round(statistics.median(latencies) * 1000, 1)
            out["probes_answered"] = len(latencies)
    finally:
        await store.close()
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--json-out")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tracehouse-bench-reads-") as tmp:
        dsn = f"chdb://{tmp}/chdb"
        asyncio.run(seed(dsn, args.spans))
        figures = {"spans": args.spans, "readers": args.readers, **asyncio.run(measure(dsn, args.readers))}
    report(figures, args.json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
