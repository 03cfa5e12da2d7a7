"""Reads against ingestion: how much the query API's reads slow ingestion's acknowledgements.

Issue 17, item 6: "reading never pushes ingestion's p99 above 2x its unloaded value (reads
and writes each have their own budget)". Starts an all-in-one (`deploy/config/bench.yaml`,
embedded chDB) unpinned (`--server-cores 0`: both cores, like a laptop) on free ports,
pre-loads `--preload-spans` spans of the bench's GenAI traffic (or reuses `--store`), then:

1. ingestion alone: one OTLP/HTTP client sends `--spans-per-request` span requests one at a
   time, `--rate` per second (a modest, unsaturating pace), for `--seconds`; each request's
   latency from send to acknowledgement (the all-in-one acknowledges once stored);
2. the same while `--readers` clients (in a process of their own, so their work does not
   delay the ingest client's clock) loop over the query API's reads of the last 24 hours:
   the trace list's default page, a model filter, the page sorted by cost, GenAI metrics by
   model, and one trace's page.

Reported: both phases' p50/p99 and their ratio, reads/s and each read's latency, and the
machine's load average beside each phase (other work on the machine shows there).
`--query-api key=value` overrides a `query_api` setting of the config (the server reads a
copy), so a before/after pair needs no config edit.

    python -m tracehouse.bench.run_reads_vs_ingest --preload-spans 300000 --readers 4 --json-out out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

from tracehouse.bench.loadgen import LoadConfig, report
from tracehouse.bench.run_all_in_one import (
    ServerInfo,
    cpu_model,
    server_command,
    split_cores,
    start_server,
    stop_server,
    wait_ready,
)
from tracehouse.bench.run_trace_list import load
from tracehouse.bench.tansu import free_port
from tracehouse.bench.traffic import Payload, pregenerate

DAY_S = 86_400
# The reads a user's explorer makes (name, path, parameters); `{trace_id}` is a loaded trace.
READS: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("list", "/api/v1/traces", {"limit": "50"}),
    ("model", "/api/v1/traces", {"limit": "50", "model": "gpt-4o-mini"}),
    ("sort_cost", "/api/v1/traces", {"limit": "50", "sort": "cost"}),
    ("metrics_by_model", "/api/v1/metrics/genai", {"group_by": "model", "step": "1h"}),
    ("trace", "/api/v1/traces/{trace_id}", {}),
)


def _percentile(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    pos = (len(ordered) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _ms(samples: Sequence[float]) -> dict[str, Any]:
    if not samples:
        return {"count": 0}
    return {"count": len(samples), "p50_ms": round(_percentile(samples, 50) * 1000, 1),
            "p99_ms": round(_percentile(samples, 99) * 1000, 1), "max_ms": round(max(samples) * 1000, 1)}


def _load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# --------------------------------------------------------------------------- ingestion


async def ingest(endpoint: str, payloads: Sequence[Payload], rate: float) -> dict[str, Any]:
    """Send `payloads` one at a time, one every 1/`rate` s (at once when the last took longer)."""
    latencies: list[float] = []
    failed = 0
    async with httpx.AsyncClient(trust_env=False, timeout=60,
                                 headers={"Content-Type": "application/x-protobuf"}) as client:
        t_start = time.perf_counter()
        for i, payload in enumerate(payloads):
            delay = t_start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            t0 = time.perf_counter()
            response = await client.post(f"{endpoint}/v1/traces", content=payload.body)
            elapsed = time.perf_counter() - t0
            if response.status_code == 200:
                latencies.append(elapsed)
            else:
                failed += 1
        wall = time.perf_counter() - t_start
    spans = sum(p.span_count for p in payloads)
    return {**_ms(latencies), "failed_requests": failed, "spans_per_s": round(spans / wall), "wall_s": round(wall, 1)}


# --------------------------------------------------------------------------- readers


async def _reader(client: httpx.AsyncClient, query_url: str, trace_id: str, offset: int, deadline: float,
                  samples: dict[str, list[float]], refused: dict[str, int]) -> None:
    i = offset
    while time.monotonic() < deadline:
        name, path, params = READS[i % len(READS)]
        i += 1
        end = time.time()
        window = {"start": f"{end - DAY_S:.3f}", "end": f"{end:.3f}"} if path == "/api/v1/traces" or "metrics" in path else {}
        t0 = time.perf_counter()
        response = await client.get(query_url + path.format(trace_id=trace_id), params={**window, **params})
        elapsed = time.perf_counter() - t0
        if response.status_code == 200:
            samples[name].append(elapsed)
        elif response.status_code in (429, 503):  # the read budget said no: counted, not timed
            refused[name] += 1
            await asyncio.sleep(0.05)
        else:
            raise RuntimeError(f"GET {path}: HTTP {response.status_code}: {response.text[:200]}")


async def _read_loop(query_url: str, trace_id: str, readers: int, seconds: float) -> dict[str, Any]:
    samples: dict[str, list[float]] = {name: [] for name, _, _ in READS}
    refused = dict.fromkeys(samples, 0)
    deadline = time.monotonic() + seconds
    clients = [httpx.AsyncClient(trust_env=False, timeout=120) for _ in range(readers)]
    t0 = time.perf_counter()
    try:
        await asyncio.gather(*(_reader(c, query_url, trace_id, i, deadline, samples, refused)
                               for i, c in enumerate(clients)))
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    wall = time.perf_counter() - t0
    done = sum(len(s) for s in samples.values())
    return {"reads": done, "reads_per_s": round(done / wall, 1), "refused": refused,
            **{f"read_{name}": _ms(s) for name, s in samples.items()}}


def read_process(query_url: str, trace_id: str, readers: int, seconds: float, out: Any) -> None:
    """Entry point of the readers' process: its figures go to the queue `out`."""
    out.put(asyncio.run(_read_loop(query_url, trace_id, readers, seconds)))


def a_trace_id(query_url: str) -> str:
    end = time.time()
    with httpx.Client(trust_env=False, timeout=120) as client:
        response = client.get(f"{query_url}/api/v1/traces",
                              params={"start": f"{end - DAY_S:.3f}", "end": f"{end:.3f}", "limit": 1})
        response.raise_for_status()
        return str(response.json()["traces"][0]["trace_id"])


# --------------------------------------------------------------------------- server


def server_config(base: str, overrides: Sequence[str], directory: Path) -> str:
    """`base`, or a copy of it with `query_api` settings overridden (`key=value`, YAML values)."""
    if not overrides:
        return base
    config = yaml.safe_load(Path(base).read_text())
    query_api = config["extensions"]["query_api"]
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--query-api {item!r}: expected key=value")
        query_api[key] = yaml.safe_load(value)
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return str(path)


def _phase(args: argparse.Namespace, http_url: str, seed: int, query_url: str, trace_id: str,
           readers: int) -> dict[str, Any]:
    spans = round(args.rate * args.seconds) * args.spans_per_request
    payloads = pregenerate(seed, spans, args.spans_per_request)  # timestamps: now
    load_before = _load_average()
    reads: dict[str, Any] = {}
    proc = None
    queue: Any = None
    if readers:
        ctx = multiprocessing.get_context("spawn")
        queue = ctx.Queue()
        proc = ctx.Process(target=read_process, args=(query_url, trace_id, readers, args.seconds + 2, queue))
        proc.start()
        time.sleep(2)  # the readers up and reading before the first timed request
    figures = asyncio.run(ingest(http_url, payloads, args.rate))
    if proc is not None:
        reads = queue.get(timeout=300)
        proc.join(60)
    return {"ingest": figures, **reads, "load_average": {"before": load_before, "after": _load_average()}}


def _server(args: argparse.Namespace, config: str, chdb: Path, log_path: Path
            ) -> tuple[subprocess.Popen[bytes], ServerInfo, str, str]:
    server_cores, load_cores = split_cores(args.server_cores)
    info = ServerInfo(cmd=server_command(args.server_cmd, config), config=config, data_dir=str(chdb),
                      cores=server_cores, loadgen_cores=load_cores)
    query_port, http_port, grpc_port = free_port(), free_port(), free_port()
    query_url, http_url = f"http://127.0.0.1:{query_port}", f"http://127.0.0.1:{http_port}"
    env = dict(os.environ, TRACEHOUSE_CLICKHOUSE_DSN=f"chdb://{chdb}", TRACEHOUSE_QUERY_PORT=str(query_port),
               TRACEHOUSE_OTLP_HTTP_PORT=str(http_port), TRACEHOUSE_OTLP_GRPC_PORT=str(grpc_port))
    proc = start_server(info, env, log_path)
    os.sched_setaffinity(0, load_cores)
    wait_ready(proc, query_url, 600, log_path)
    return proc, info, query_url, http_url


def preload(args: argparse.Namespace, store: Path, log_path: Path) -> dict[str, Any]:
    """`--preload-spans` spans into `store`/chdb, once: `loaded.json` marks a store as loaded."""
    loaded = store / "loaded.json"
    if loaded.exists():
        stored: dict[str, Any] = json.loads(loaded.read_text())
        return stored
    proc, info, query_url, http_url = _server(args, args.config, store / "chdb", log_path)
    try:
        base = LoadConfig(protocol="http", endpoint=http_url, spans_per_request=500, concurrency=16,
                          query_url=query_url, skip_query=True)
        t0 = time.monotonic()
        stored = {"preloaded_spans": asyncio.run(load(base, args.preload_spans, args.seed)),
                  "preload_s": round(time.monotonic() - t0, 1)}
    finally:
        stop_server(proc, info, 120)
    loaded.write_text(json.dumps(stored))
    return stored


def run(args: argparse.Namespace) -> dict[str, Any]:
    store = Path(args.store or tempfile.mkdtemp(prefix="tracehouse-bench-rw-store-"))
    store.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="tracehouse-bench-rw-"))
    log_path = work / "server.log"
    try:
        stored = preload(args, store, log_path)
        # Measured on a copy: every run (before, after) starts from the same pre-loaded data.
        shutil.copytree(store / "chdb", work / "chdb", symlinks=True)  # the Atomic databases link relatively
        config = server_config(args.config, args.query_api, work)
        proc, info, query_url, http_url = _server(args, config, work / "chdb", log_path)
        try:
            time.sleep(args.settle)  # the server's start-up settles before the clock starts
            trace_id = a_trace_id(query_url)
            # Each phase's own seed: the server never receives the same trace ids twice.
            seed = args.seed + 1000 + int(time.time()) % 100_000
            alone = _phase(args, http_url, seed, query_url, trace_id, 0)
            print(f"alone: {alone}", file=sys.stderr)
            reading = _phase(args, http_url, seed + 1, query_url, trace_id, args.readers)
            print(f"reading: {reading}", file=sys.stderr)
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with code {proc.returncode} during the run")
        finally:
            stop_server(proc, info, 120)
    finally:
        if not args.store:
            shutil.rmtree(store, ignore_errors=True)
        if args.keep_log:
            shutil.rmtree(work / "chdb", ignore_errors=True)
        else:
            shutil.rmtree(work, ignore_errors=True)
    ratios = {f"{q}_ratio": round(reading["ingest"][f"{q}_ms"] / alone["ingest"][f"{q}_ms"], 2)
              if alone["ingest"].get(f"{q}_ms") and reading["ingest"].get(f"{q}_ms") else None for q in ("p50", "p99")}
    return {**stored, "query_api": args.query_api, "readers": args.readers, "rate": args.rate,
            "spans_per_request": args.spans_per_request, "seconds": args.seconds,
            **ratios,
            "alone": alone, "reading": reading, "server_cores": info.cores, "cpu": cpu_model(),
            "cpu_count": os.cpu_count()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preload-spans", type=int, default=300_000)
    parser.add_argument("--store", help="keep the pre-loaded store in this directory; a later run with the same "
                                        "one measures a copy of it without pre-loading (the reads cover the "
                                        "last 24 h: a store loaded over a day ago reads little)")
    parser.add_argument("--seconds", type=float, default=30.0, help="of each phase")
    parser.add_argument("--rate", type=float, default=3.0, help="ingest requests per second (one at a time)")
    parser.add_argument("--spans-per-request", type=int, default=512)
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--server-cores", type=int, default=0, help="CPUs the server is pinned to (0: no pinning)")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds between loading and measuring")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--config", default="deploy/config/bench.yaml")
    parser.add_argument("--query-api", action="append", default=[], metavar="KEY=VALUE",
                        help="override a query_api setting of --config (repeatable)")
    parser.add_argument("--server-cmd", help="the server command, {config} and {python} filled in (default: "
                                             "tracehouse run --config {config}); e.g. under `setpriv "
                                             "--inh-caps=-sys_nice --bounding-set=-sys_nice` as an unprivileged user")
    parser.add_argument("--keep-log", action="store_true", help="keep the server's log and config")
    parser.add_argument("--json-out")
    args = parser.parse_args(argv)
    figures = run(args)
    report(figures, args.json_out)
    p99_ratio = figures["p99_ratio"]
    return 0 if p99_ratio is not None else 1


if __name__ == "__main__":
    sys.exit(main())
