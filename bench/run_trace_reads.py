"""Big trace reads against the event loop they share with ingest.

Stores one trace of `--spans` spans (GenAI attributes with a message each) in embedded
chDB, then, in one process and one event loop as in the all-in-one, reads it through the
query API: once alone, then `--readers` at once (different clients), while a probe
measures how long the loop takes to answer (`/healthz`, on the same loop the OTLP
receivers use). Prints wall times, the probe's latency and how often it got through, and
the process's peak RSS.

    python -m tracehouse.bench.run_trace_reads --spans 100000 --readers 4

With `--trace-spans N`: how long one read of one realistic trace takes. The trace is the
bench traffic's agent run (bench/traffic.py: chat spans with ~1 KB of messages, tool and
retrieval spans) of N spans, stored through the GenAI processors and the exporter in
requests of 500 spans among `--other-spans` spans of other traces in the same minutes (so
the read has to narrow by time and skip granules), then read `--rounds` times (after one
unmeasured read): the full body received, median / p95 / max.

    python -m tracehouse.bench.run_trace_reads --trace-spans 10000 --other-spans 200000 --rounds 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
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

from tracehouse.bench.genai_processors import Processors
from tracehouse.bench.loadgen import report
from tracehouse.bench.run_all_in_one import cpu_model
from tracehouse.bench.traffic import iter_payloads, make_request
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


# --trace-spans: one realistic trace among others ------------------------------------------

REQUEST_SPANS = 500  # spans per stored request, as the bench traffic sends them


def _requests(trace: ExportTraceServiceRequest) -> list[ExportTraceServiceRequest]:
    """The trace's spans in requests of REQUEST_SPANS, as an SDK's batches would send them."""
    (rs,) = trace.resource_spans
    (scope,) = rs.scope_spans
    out = []
    for first in range(0, len(scope.spans), REQUEST_SPANS):
        part = ScopeSpans(scope=scope.scope, spans=scope.spans[first:first + REQUEST_SPANS])
        out.append(ExportTraceServiceRequest(resource_spans=[ResourceSpans(resource=rs.resource,
                                                                           scope_spans=[part])]))
    return out


async def seed_trace(dsn: str, trace: ExportTraceServiceRequest, other_spans: int, now_ns: int) -> None:
    """The trace's requests spread evenly among the other traffic's, each through the GenAI
    processors (as the all-in-one's pipeline) into the exporter."""
    processors = Processors()
    for component in (processors.cost, processors.tokens, processors.normalize):
        await component.start(TestHost())
    exporter = ClickHouseExporter(Settings(ComponentID("clickhouse"), Kind.EXPORTER),
                                  ClickHouseExporterConfig(endpoint=dsn, database="bench"))
    await exporter.start(TestHost())
    others = iter_payloads(7, other_spans, REQUEST_SPANS, now_ns=now_ns) if other_spans else iter(())
    mine = _requests(trace)
    every = max(1, (other_spans // REQUEST_SPANS) // max(1, len(mine)))
    for i, other in enumerate(others):
        if i % every == 0 and mine:
            await _store(exporter, processors, TraceBatch.from_request(mine.pop(0)))
        await _store(exporter, processors, TraceBatch.from_bytes(other.body))
    for request in mine:
        await _store(exporter, processors, TraceBatch.from_request(request))
    await exporter.shutdown()


async def _store(exporter: ClickHouseExporter, processors: Processors, batch: TraceBatch) -> None:
    processors.chain(batch)
    await exporter.consume(batch)


def _ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"median_ms": round(statistics.median(ordered) * 1000, 1),
            "p95_ms": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] * 1000, 1),
            "max_ms": round(ordered[-1] * 1000, 1)}


async def measure_one(dsn: str, trace_id: str, rounds: int) -> dict[str, Any]:
    """One read at a time, `rounds` times after one unmeasured read; the body received whole."""
    store = TraceStore(QueryClickHouseConfig(endpoint=dsn, database="bench"), max_workers=4)
    app = create_app(store, _Health())
    samples: list[float] = []
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://q", timeout=600) as api:
            first = await api.get(f"/api/v1/traces/{trace_id}")
            first.raise_for_status()
            body = first.json()
            for _ in range(rounds):
                t0 = time.perf_counter()
                response = await api.get(f"/api/v1/traces/{trace_id}")
                content = response.content
                samples.append(time.perf_counter() - t0)
                if len(content) != len(first.content):
                    raise RuntimeError("a read answered differently from the first")
    finally:
        await store.close()
    return {"spans_read": len(body["spans"]), "body_mb": round(len(first.content) / 1e6, 1),
            "one_read": _ms(samples)}


def trace_read(args: argparse.Namespace, dsn: str) -> dict[str, Any]:
    now_ns = time.time_ns()
    # The traffic's trace sizes vary by up to 2 spans: built 2 over, then cut to the size.
    trace, _ = make_request(random.Random(17), 1, args.trace_spans + 2, now_ns=now_ns - 60 * 10**9)
    spans = trace.resource_spans[0].scope_spans[0].spans
    del spans[args.trace_spans:]
    trace_id = spans[0].trace_id.hex()
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    asyncio.run(seed_trace(dsn, trace, args.other_spans, now_ns))
    seeded_s = round(time.perf_counter() - t0, 1)
    figures = asyncio.run(measure_one(dsn, trace_id, args.rounds))
    return {"trace_spans": args.trace_spans, "other_spans": args.other_spans, "rounds": args.rounds, "seed_s": seeded_s,
            **figures, "cpu": cpu_model(), "cores": os.cpu_count(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()]}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--trace-spans", type=int, default=0,
                        help="instead: the time of one read of a realistic trace of this many spans")
    parser.add_argument("--other-spans", type=int, default=200_000,
                        help="with --trace-spans: spans of other traces stored around it")
    parser.add_argument("--rounds", type=int, default=20, help="with --trace-spans: reads measured")
    parser.add_argument("--json-out")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tracehouse-bench-reads-") as tmp:
        dsn = f"chdb://{tmp}/chdb"
        if args.trace_spans:
            report(trace_read(args, dsn), args.json_out)
            return 0
        asyncio.run(seed(dsn, args.spans))
        figures = {"spans": args.spans, "readers": args.readers, **asyncio.run(measure(dsn, args.readers))}
    report(figures, args.json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
