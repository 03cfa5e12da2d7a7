"""How fast the trace explorer's list opens, and trace search answers, over a day holding
many spans.

Starts an all-in-one (`deploy/config/bench.yaml`, embedded chDB) on one core, on free ports
(so it can run beside another server), loads `--spans` spans of the bench's GenAI agent
traffic over OTLP/HTTP (the same load generator as `run_all_in_one`, without its
queryability wait), then measures on the other core:

- the API: `GET /api/v1/traces` for the last 24 hours, 50 rows (what the list page asks
  for), `--rounds` times each: every sort in both orders; the trace-level filters the
  per-trace rollup answers (bounds, session, user); the span-level ones that read the spans
  (model, span kind, attributes with each operator, a rare attribute value the bloom
  filters skip to); and `GET /api/v1/metrics/genai` by model (the usage rollup) and by user
  (the spans);
- the page: headless Chromium (Debian's, through Playwright) opening `/?since=24h` until
  the first rows are in the table, `--rounds` times.

The machine's load average is recorded before and after: other work on the machine shows.

    python -m tracehouse.bench.run_trace_list --spans 1000000 --json-out bench-results-trace-list.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from tracehouse.bench.loadgen import LoadConfig, report, run_load
from tracehouse.bench.run_all_in_one import (
    ServerInfo,
    cpu_model,
    server_command,
    split_cores,
    start_server,
    stop_server,
    wait_ready,
)
from tracehouse.bench.tansu import free_port
from tracehouse.bench.traffic import pregenerate

CHUNK_SPANS = 100_000  # generated and sent a chunk at a time, so the bodies never all sit in memory
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)] * 1000, 1)


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


# Search cases: (name, path, parameters). `{session}` and `{response_id}` are values taken
# from the loaded data (discover()): a conversation id and one chat span's response id.
API_CASES: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("sort_time", "/api/v1/traces", {"sort": "time"}),
    ("sort_time_asc", "/api/v1/traces", {"sort": "time", "order": "asc"}),
    ("sort_cost", "/api/v1/traces", {"sort": "cost"}),
    ("sort_cost_asc", "/api/v1/traces", {"sort": "cost", "order": "asc"}),
    ("sort_tokens", "/api/v1/traces", {"sort": "tokens"}),
    ("sort_tokens_asc", "/api/v1/traces", {"sort": "tokens", "order": "asc"}),
    ("sort_duration", "/api/v1/traces", {"sort": "duration"}),
    ("sort_duration_asc", "/api/v1/traces", {"sort": "duration", "order": "asc"}),
    # trace-level: the per-trace rollup
    ("bounds_cost_tokens_duration", "/api/v1/traces",
     {"min_cost_usd": "0.01", "max_tokens": "20000", "min_duration_ms": "5000", "sort": "cost"}),
    ("session", "/api/v1/traces", {"session": "{session}"}),
    ("user", "/api/v1/traces", {"user": "nobody"}),
    ("status_error", "/api/v1/traces", {"status": "error"}),
    # span-level: the spans table
    ("model", "/api/v1/traces", {"model": "gpt-4o-mini"}),
    ("span_kind_tool", "/api/v1/traces", {"span_kind": "tool"}),
    ("service_and_kind", "/api/v1/traces", {"service": "support-agent", "span_kind": "llm"}),
    ("attr_eq_rare", "/api/v1/traces", {"attr.gen_ai.response.id": "{response_id}"}),
    ("attr_eq_common", "/api/v1/traces", {"attr.gen_ai.tool.name": "run_sql"}),
    ("attr_ne", "/api/v1/traces", {"attr.gen_ai.tool.name": "ne:run_sql"}),
    ("attr_gt", "/api/v1/traces", {"attr.gen_ai.usage.input_tokens": "gt:1800"}),
    ("attr_exists_rare_key", "/api/v1/traces", {"attr.error.type": "exists"}),
    ("attr_exists_missing_key", "/api/v1/traces", {"attr.no.such.key": "exists"}),
    ("attr_contains", "/api/v1/traces", {"attr.gen_ai.data_source.id": "contains:catalog"}),
    ("attr_contains_messages", "/api/v1/traces", {"attr.gen_ai.output.messages": "contains:refund"}),
    ("model_sorted_by_cost", "/api/v1/traces", {"model": "gpt-4o-mini", "sort": "cost"}),
    ("attr_gt_and_kind_sorted_asc", "/api/v1/traces",
     {"attr.gen_ai.usage.input_tokens": "gt:1800", "span_kind": "llm", "sort": "cost", "order": "asc"}),
    # metrics: the usage rollup, and the spans (by user)
    ("metrics_by_model", "/api/v1/metrics/genai", {"group_by": "model", "step": "1h"}),
    ("metrics_by_user", "/api/v1/metrics/genai", {"group_by": "user", "step": "1h"}),
    # (one series per conversation, and the bench's traces each have their own: narrowed to one
    # service and model, or the day's series outgrow a response)
    ("metrics_by_session", "/api/v1/metrics/genai",
     {"group_by": "session", "step": "1d", "service": "sql-copilot", "model": "o3-mini"}),
)


def discover(client: httpx.Client, query_url: str, start: float, end: float) -> dict[str, str]:
    """A session id and a chat span's response id from the loaded data."""
    day = {"start": f"{start:.3f}", "end": f"{end:.3f}"}
    sessions = client.get(f"{query_url}/api/v1/sessions", params={**day, "limit": 1}).json()["sessions"]
    trace_id = client.get(f"{query_url}/api/v1/traces", params={**day, "limit": 1,
                                                                 "span_kind": "llm"}).json()["traces"][0]["trace_id"]
    spans = client.get(f"{query_url}/api/v1/traces/{trace_id}").json()["spans"]
    response_id = next(s["attributes"]["gen_ai.response.id"] for s in spans if "gen_ai.response.id" in s["attributes"])
    return {"session": sessions[0]["session_id"], "response_id": response_id}


def _matched(body: dict[str, Any]) -> int:
    if "totals" in body and isinstance(body["totals"], dict) and "traces" in body["totals"]:
        return int(body["totals"]["traces"])
    return len(body.get("series", []))


def measure_api(query_url: str, rounds: int, cases: Sequence[str] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with httpx.Client(trust_env=False, timeout=120) as client:
        now = time.time()
        values = discover(client, query_url, now - 86400, now)
        for name, path, params in API_CASES:
            if cases and name not in cases:
                continue
            filled = {k: v.format(**values) for k, v in params.items()}
            samples = []
            body: dict[str, Any] = {}
            for _ in range(rounds):
                end = time.time()
                day = {"start": f"{end - 86400:.3f}", "end": f"{end:.3f}"}
                t0 = time.perf_counter()
                response = client.get(f"{query_url}{path}",
                                      params={**day, **({"limit": 50} if path == "/api/v1/traces" else {}), **filled})
                samples.append(time.perf_counter() - t0)
                if response.is_error:  # recorded, and the other cases still measured
                    body = {"error": f"{response.status_code}: {response.text[:300]}"}
                    break
                body = response.json()
            if "error" in body:
                out[f"api_{name}"] = {"error": body["error"], "after_ms": round(samples[-1] * 1000, 1)}
                continue
            totals = body.get("totals") or {}
            out[f"api_{name}"] = {**_ms(samples), "p95_ms": _p95(samples), "matched": _matched(body),
                                  **({"estimated": totals["estimated"]} if "estimated" in totals else {})}
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


def _load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _start(info: ServerInfo, env: dict[str, str], log_path: Path, query_url: str) -> subprocess.Popen[bytes]:
    proc = start_server(info, env, log_path)
    wait_ready(proc, query_url, 600, log_path)
    return proc


def run(args: argparse.Namespace) -> dict[str, Any]:
    server_cores, load_cores = split_cores(args.server_cores)
    os.sched_setaffinity(0, load_cores)
    data_dir = args.store or tempfile.mkdtemp(prefix="tracehouse-bench-list-")
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    info = ServerInfo(cmd=server_command(None, args.config), config=args.config, data_dir=data_dir,
                      cores=server_cores, loadgen_cores=load_cores)
    log_path = Path(data_dir) / "server.log"
    query_port, http_port, grpc_port = free_port(), free_port(), free_port()
    query_url = f"http://127.0.0.1:{query_port}"
    env = dict(os.environ, TRACEHOUSE_CLICKHOUSE_DSN=f"chdb://{data_dir}/chdb", TRACEHOUSE_QUERY_PORT=str(query_port),
               TRACEHOUSE_OTLP_HTTP_PORT=str(http_port), TRACEHOUSE_OTLP_GRPC_PORT=str(grpc_port))
    loaded = Path(data_dir) / "loaded.json"
    load_before = _load_average()
    stored: dict[str, Any] = json.loads(loaded.read_text()) if loaded.exists() else {}
    proc: subprocess.Popen[bytes] | None = None
    try:
        if not stored:
            proc = _start(info, env, log_path, query_url)
            base = LoadConfig(protocol="http", endpoint=f"http://127.0.0.1:{http_port}", spans_per_request=500,
                              concurrency=args.concurrency, query_url=query_url, skip_query=True,
                              server_pid=proc.pid)
            t0 = time.monotonic()
            stored["loaded_spans"] = asyncio.run(load(base, args.spans, args.seed))
            stored["load_s"] = round(time.monotonic() - t0, 1)
            stop_server(proc, info, 120)
            if args.copies:
                # A day of many spans from the loaded ones (bench/replicate.py): the spans of
                # each copy in their own time, with their own trace and session ids.
                t0 = time.monotonic()
                # In a process of its own: chDB keeps a data path open for its process's lifetime.
                out = subprocess.run([sys.executable, "-m", "tracehouse.bench.replicate", "--store",
                                      f"{data_dir}/chdb", "--copies", str(args.copies),
                                      "--shift-hours", str(args.shift_hours)],
                                     check=True, stdout=subprocess.PIPE, text=True).stdout
                stored["spans"] = int(out.split()[0].replace(",", ""))
                stored["replicate_s"] = round(time.monotonic() - t0, 1)
            else:
                stored["spans"] = stored["loaded_spans"]
            loaded.write_text(json.dumps(stored))
        proc = _start(info, env, log_path, query_url)
        time.sleep(5)  # let the last inserts' merges settle, as a user's day would have
        load_loaded = _load_average()
        figures = {**stored, **measure_api(query_url, args.rounds, args.cases.split(",") if args.cases else ()),
                   **measure_page(query_url, args.rounds), "rounds": args.rounds,
                   "server_cores": server_cores, "cpu": cpu_model(),
                   "load_average": {"before": load_before, "after_loading": load_loaded, "after": _load_average()}}
    finally:
        if proc is not None:
            stop_server(proc, info, 60)
        if not args.store:
            shutil.rmtree(data_dir, ignore_errors=True)
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--config", default="deploy/config/bench.yaml")
    parser.add_argument("--copies", type=int, default=0,
                        help="after loading, copy the loaded spans this many times, each copy --shift-hours "
                             "earlier than the one before (10M spans: --spans 1000000 --copies 9)")
    parser.add_argument("--shift-hours", type=float, default=2.0)
    parser.add_argument("--server-cores", type=int, default=1,
                        help="CPUs the server is pinned to (the requests run on the others); 0: unpinned, "
                             "every CPU shared")
    parser.add_argument("--store", help="keep the store in this directory; a later run with the same one "
                                        "measures it again without loading")
    parser.add_argument("--cases", help="comma-separated names of the search cases to measure (default: all); "
                                        "the names are the figures' without `api_`")
    parser.add_argument("--json-out")
    args = parser.parse_args(argv)
    unknown = set(args.cases.split(",")) - {name for name, _, _ in API_CASES} if args.cases else set()
    if unknown:
        parser.error(f"unknown --cases {sorted(unknown)}; the cases are {[name for name, _, _ in API_CASES]}")
    figures = run(args)
    report(figures, args.json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
