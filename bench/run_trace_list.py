"""How fast the trace explorer's list opens over a day holding many spans.

Starts an all-in-one (`deploy/config/bench.yaml`, embedded chDB) on one core, loads
`--spans` spans of the bench's GenAI agent traffic over OTLP/HTTP (the same load generator
as `run_all_in_one`, without its queryability wait), then measures on the other core:

- the API: `GET /api/v1/traces` for the last 24 hours, 50 rows (what the list page asks
  for), newest first, by cost, and newest first narrowed to one model, `--rounds` times each;
- the page: headless Chromium (Debian's, through Playwright) opening `/?since=24h` until
  the first rows are in the table, `--rounds` times.

    python -m tracehouse.bench.run_trace_list --spans 1000000 --json-out bench-results-trace-list.json
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from tracehouse.bench.loadgen import DEFAULT_QUERY_URL, LoadConfig, report, run_load
from tracehouse.bench.run_all_in_one import (
    ServerInfo,
    cpu_model,
    server_command,
    split_cores,
    start_server,
    stop_server,
    wait_ready,
)
from tracehouse.bench.traffic import pregenerate

CHUNK_SPANS = 100_000  # generated and sent a chunk at a time, so the bodies never all sit in memory
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"median_ms": round(statistics.median(ordered) * 1000, 1),
            "p90_ms": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))] * 1000, 1),
            "max_ms": round(ordered[-1] * 1000, 1)}


async def load(base: LoadConfig, spans: int, seed: int) -> int:
    sent = 0
    chunk = 0
    while sent < spans:
        payloads = pregenerate(seed + chunk, min(CHUNK_SPANS, spans - sent), base.spans_per_request)
        result = await run_load(replace(base, spans=sum(p.span_count for p in payloads)), payloads)
        if result.failed_requests or result.spans < result.spans_offered:
            raise RuntimeError(f"{result.failed_requests} requests failed while loading; "
                               f"{result.spans:,} of {result.spans_offered:,} spans accepted")
        sent += result.spans
        chunk += 1
        print(f"loaded {sent:,} spans", file=sys.stderr)
    return sent


# What the list asks for: newest first, by cost, and narrowed by a span-level filter (which
# picks its traces from the spans table before the per-trace rollup sums them).
API_CASES = {"api_sort_time": {"sort": "time"}, "api_sort_cost": {"sort": "cost"},
             "api_model_filter": {"sort": "time", "model": "gpt-4o-mini"}}


def measure_api(query_url: str, rounds: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with httpx.Client(trust_env=False, timeout=60) as client:
        for name, params in API_CASES.items():
            samples = []
            body: dict[str, Any] = {}
            for _ in range(rounds):
                end = time.time()
                t0 = time.perf_counter()
                response = client.get(f"{query_url}/api/v1/traces",
                                      params={"start": f"{end - 86400:.3f}", "end": f"{end:.3f}", "limit": 50,
                                              **params})
                samples.append(time.perf_counter() - t0)
                response.raise_for_status()
                body = response.json()
            out[name] = {**_ms(samples), "traces_matched": body["totals"]["traces"]}
    return out


def measure_page(query_url: str, rounds: int) -> dict[str, Any]:
    chromium = shutil.which("chromium")
    if chromium is None:
        return {"page": "skipped: no chromium on PATH (apt-get install chromium)"}
    from playwright.sync_api import sync_playwright

    samples = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            for _ in range(rounds):
                page = browser.new_page(viewport={"width": 1280, "height": 860})
                t0 = time.perf_counter()
                page.goto(f"{query_url}/?since=24h")
                page.wait_for_selector("table.traces tbody tr", timeout=60_000)
                samples.append(time.perf_counter() - t0)
                page.close()
        finally:
            browser.close()
    return {"page_first_rows": _ms(samples)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    server_cores, load_cores = split_cores(1)
    data_dir = tempfile.mkdtemp(prefix="tracehouse-bench-list-")
    info = ServerInfo(cmd=server_command(None, args.config), config=args.config, data_dir=data_dir,
                      cores=server_cores, loadgen_cores=load_cores)
    log_path = Path(data_dir) / "server.log"
    env = dict(os.environ, TRACEHOUSE_CLICKHOUSE_DSN=f"chdb://{data_dir}/chdb")
    proc = start_server(info, env, log_path)
    try:
        os.sched_setaffinity(0, load_cores)
        wait_ready(proc, args.query_url, 120, log_path)
        base = LoadConfig(protocol="http", spans_per_request=500, concurrency=args.concurrency,
                          query_url=args.query_url, skip_query=True, server_pid=proc.pid)
        t0 = time.monotonic()
        spans = asyncio.run(load(base, args.spans, args.seed))
        load_s = time.monotonic() - t0
        time.sleep(5)  # let the last inserts' merges settle, as a user's day would have
        figures = {"spans": spans, "load_s": round(load_s, 1), **measure_api(args.query_url, args.rounds),
                   **measure_page(args.query_url, args.rounds), "rounds": args.rounds,
                   "server_cores": server_cores, "cpu": cpu_model()}
    finally:
        stop_server(proc, info, 60)
        shutil.rmtree(data_dir, ignore_errors=True)
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--config", default="deploy/config/bench.yaml")
    parser.add_argument("--query-url", default=DEFAULT_QUERY_URL)
    parser.add_argument("--json-out")
    args = parser.parse_args(argv)
    figures = run(args)
    report(figures, args.json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
