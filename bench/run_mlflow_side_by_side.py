"""tracehouse against MLflow's tracking server, side by side: the same OTLP traffic, the
same pinning, one after the other on one machine, and the ratio of stored spans a second.

MLflow (3.x) takes OTLP/HTTP at `POST /v1/traces` and answers once its SQL transaction has
committed, so its acknowledged spans are stored, as tracehouse's are. Both are measured
by the same load generator; "stored" is checked by each one's own read path: MLflow's
SQLite `spans` table (every acknowledged trace, every span) and tracehouse's query API.

Steps: start `mlflow server` on a fresh SQLite file, pinned like the tracehouse server
(`--server-cores`), create an experiment, warm it up (its workers' first requests are 5-7×
slower), then one measured run per `--concurrency`; stop it. Then start `tracehouse run`
(deploy/config/bench.yaml, fresh chDB directory), warm it up the same way, and send the
same traffic (same sizes, other trace ids) over OTLP/HTTP and OTLP/gRPC, `--repeats` times
per concurrency. Prints a table and each ratio; `--json-out` keeps every figure.

    python -m tracehouse.bench.run_mlflow_side_by_side --mlflow /tmp/mlflow-venv/bin/mlflow

`--mlflow` should be MLflow in a venv of its own (`pip install mlflow`), as a user runs it:
in the project's test venv, packages MLflow does not need (logfire's pydantic plugin) would
slow it, and the bench turns pydantic plugins off there for that reason.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import httpx

from tracehouse.bench.loadgen import (
    LoadConfig,
    LoadResult,
    QueryStats,
    StoredCheck,
    generate,
    run_load,
    write_json,
)
from tracehouse.bench.processes import http_ok, log_tail, terminate
from tracehouse.bench.processes import wait_ready as wait_until  # run_all_in_one's wait_ready polls /readyz
from tracehouse.bench.run_all_in_one import (
    BenchError,
    ServerInfo,
    cpu_model,
    server_command,
    split_cores,
    start_server,
    stop_server,
    wait_ready,
)
from tracehouse.bench.tansu import free_port
from tracehouse.bench.traffic import TraceRef

__all__ = ["main", "mlflow_stored_check"]

EXPERIMENT_HEADER = "x-mlflow-experiment-id"
STORED_POLL_S = 0.1
# MLflow stores an OTLP trace id as "tr-" + its 32 hex digits.
_STORED_SQL = "SELECT count(*) FROM spans s JOIN temp.acked a ON s.trace_id = 'tr-' || a.tid"
_PER_TRACE_SQL = (
    "SELECT substr(s.trace_id, 4), count(*) FROM spans s "
    "JOIN temp.acked a ON s.trace_id = 'tr-' || a.tid GROUP BY s.trace_id"
)


@dataclass
class Run:
    server: Literal["mlflow", "tracehouse"]
    result: LoadResult


def mlflow_stored_check(db: Path, timeout_s: float) -> StoredCheck:
    """A loadgen `StoredCheck` over MLflow's SQLite file: every span of every acknowledged
    trace must be in `spans`. Read-only, autocommit, so each poll sees the latest commit."""

    async def check(acked: Sequence[TraceRef], last_ack: float) -> QueryStats:
        expected = {r.trace_id: r.span_count for r in acked}
        want = sum(expected.values())
        qs = QueryStats(checked=len(expected))
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30, isolation_level=None)
        try:
            con.execute("CREATE TEMP TABLE acked (tid TEXT PRIMARY KEY)")
            con.executemany("INSERT INTO temp.acked VALUES (?)", [(t,) for t in expected])
            deadline = time.perf_counter() + timeout_s
            stored_at = None
            while True:
                if con.execute(_STORED_SQL).fetchone()[0] >= want:
                    stored_at = time.perf_counter()
                    break
                if time.perf_counter() > deadline:
                    break
                await asyncio.sleep(STORED_POLL_S)
            per = dict(con.execute(_PER_TRACE_SQL).fetchall())
        finally:
            con.close()
        qs.pending = sum(1 for t, n in expected.items() if per.get(t, 0) < n)
        qs.duplicates = sum(1 for t, n in expected.items() if per.get(t, 0) > n)
        if stored_at is not None and qs.pending == 0:
            qs.queryable_after_s = max(0.0, stored_at - last_ack)
        return qs

    return check


def _mlflow_exe(given: str | None) -> str:
    if given:
        return given
    local = Path(sys.executable).parent / "mlflow"
    found = str(local) if local.exists() else shutil.which("mlflow")
    if not found:
        raise BenchError("no `mlflow` found: pass --mlflow (e.g. a venv with `pip install mlflow`)")
    return found


def _base(args: argparse.Namespace) -> LoadConfig:
    return LoadConfig(spans_per_request=args.spans_per_request, max_duration_s=args.max_duration,
                      request_timeout_s=args.request_timeout, query_timeout_s=args.query_timeout)


def _measure(cfg: LoadConfig, stored: StoredCheck | None = None) -> LoadResult:
    t0 = time.perf_counter()
    payloads = generate(cfg)
    print(f"[{cfg.endpoint} {cfg.protocol} c{cfg.concurrency}] {sum(p.span_count for p in payloads):,} spans "
          f"generated in {time.perf_counter() - t0:.1f} s, sending", file=sys.stderr)
    result = asyncio.run(run_load(cfg, payloads, stored))
    if result.failed_requests or result.query_pending_traces:
        raise BenchError(f"{cfg.endpoint}: {result.failed_requests} requests failed, "
                         f"{result.query_pending_traces} traces not stored ({result.errors})")
    return result


def _warm_up(args: argparse.Namespace, target: LoadConfig, seed: int, stored: StoredCheck | None = None) -> None:
    """Requests before the measured ones: a server's first requests pay for imports, caches
    and (MLflow) each worker's start."""
    if args.warmup_spans:
        print(f"warming up {target.endpoint} with {args.warmup_spans:,} spans", file=sys.stderr)
        _measure(replace(target, seed=seed, spans=args.warmup_spans, concurrency=max(args.concurrency)), stored)


def run_mlflow(args: argparse.Namespace, workdir: Path, cores: list[int], load_cores: list[int]) -> list[Run]:
    workdir.mkdir(parents=True)
    port = free_port()
    db = workdir / "mlflow.db"
    cmd = [_mlflow_exe(args.mlflow), "server", "--host", "127.0.0.1", "--port", str(port),
           "--workers", str(args.mlflow_workers), "--backend-store-uri", f"sqlite:///{db}",
           "--default-artifact-root", str(workdir / "artifacts")]
    info = ServerInfo(cmd=cmd, config="", data_dir=str(workdir), cores=cores, loadgen_cores=load_cores)
    log_path = workdir / "mlflow.log"
    # No telemetry, no pydantic plugins (see the docstring), and where MLflow imports LiteLLM,
    # its price map from the package instead of a fetch that retries for seconds offline.
    env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true", PYDANTIC_DISABLE_PLUGINS="__all__",
               LITELLM_LOCAL_MODEL_COST_MAP="True")
    proc = start_server(info, env, log_path)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(proc, lambda: http_ok(f"{url}/health"), timeout=args.ready_timeout, what="mlflow server",
                   log_tail=lambda: log_tail(log_path), poll_s=0.5)
        resp = httpx.post(f"{url}/api/2.0/mlflow/experiments/create", json={"name": "side-by-side"}, timeout=30)
        resp.raise_for_status()
        target = replace(_base(args), protocol="http", endpoint=url, server_pid=proc.pid,
                         headers=((EXPERIMENT_HEADER, str(resp.json()["experiment_id"])),))
        check = mlflow_stored_check(db, args.query_timeout)
        _warm_up(args, target, 900, check)
        return [Run("mlflow", _measure(replace(target, seed=10 + i, concurrency=c, spans=args.spans), check))
                for i, c in enumerate(args.concurrency)]
    finally:
        # The whole group (the CLI, uvicorn's workers, its job runner and consumers) at once.
        terminate(proc, 30, group=True)


def run_tracehouse(args: argparse.Namespace, workdir: Path, cores: list[int], load_cores: list[int]) -> list[Run]:
    workdir.mkdir(parents=True)
    ports = {name: free_port() for name in ("http", "grpc", "query")}
    info = ServerInfo(cmd=server_command(None, args.config), config=args.config, data_dir=str(workdir),
                      cores=cores, loadgen_cores=load_cores)
    log_path = workdir / "tracehouse.log"
    env = dict(os.environ, TRACEHOUSE_CLICKHOUSE_DSN=f"chdb://{workdir / 'chdb'}", TRACEHOUSE_BIND="127.0.0.1",
               TRACEHOUSE_OTLP_HTTP_PORT=str(ports["http"]), TRACEHOUSE_OTLP_GRPC_PORT=str(ports["grpc"]),
               TRACEHOUSE_QUERY_PORT=str(ports["query"]))
    proc = start_server(info, env, log_path)
    query_url = f"http://127.0.0.1:{ports['query']}"
    base = replace(_base(args), query_url=query_url, server_pid=proc.pid)
    targets = [replace(base, protocol="http", endpoint=f"http://127.0.0.1:{ports['http']}"),
               replace(base, protocol="grpc", endpoint=f"127.0.0.1:{ports['grpc']}")]
    try:
        wait_ready(proc, query_url, args.ready_timeout, log_path)
        for i, target in enumerate(targets):
            _warm_up(args, target, 901 + i)
        runs = []
        seed = 1_000  # a distinct seed per run: the server must never get the same trace ids twice
        for c in args.concurrency:
            for _ in range(args.repeats):
                for target in targets:
                    seed += 1
                    runs.append(Run("tracehouse", _measure(replace(target, seed=seed, concurrency=c,
                                                                   spans=args.spans))))
        return runs
    finally:
        stop_server(proc, info, 60)


def ratios(runs: Sequence[Run]) -> list[dict[str, object]]:
    """Per concurrency and tracehouse protocol: its stored spans/s over MLflow's (OTLP/HTTP,
    its only protocol), as the least, median and most of the repeats."""
    out: list[dict[str, object]] = []
    mlflow = {r.result.concurrency: r.result.spans_per_s for r in runs if r.server == "mlflow"}
    for c, base in mlflow.items():
        for proto in ("http", "grpc"):
            rates = [r.result.spans_per_s for r in runs if r.server == "tracehouse"
                     and r.result.concurrency == c and r.result.protocol == proto]
            xs = sorted(x / base for x in rates if x and base)
            if xs:
                out.append({"concurrency": c, "tracehouse_protocol": proto, "mlflow_spans_per_s": base,
                            "tracehouse_spans_per_s": rates, "min": round(xs[0], 1),
                            "median": round(statistics.median(xs), 1), "max": round(xs[-1], 1)})
    return out


def markdown(runs: Sequence[Run], rs: Sequence[dict[str, object]]) -> str:
    def f(v: float | None, nd: int = 0) -> str:
        return "n/a" if v is None else f"{v:,.{nd}f}"

    lines = ["| server | protocol | clients | spans | stored spans/s | p50 ms | p99 ms | CPU s / 10k spans "
             "| peak RSS MB | stored after last ack (s) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        x = r.result
        lines.append(f"| {r.server} | {x.protocol} | {x.concurrency} | {x.spans:,} | {f(x.spans_per_s)} "
                     f"| {f(x.p50_ms)} | {f(x.p99_ms)} | {f(x.cpu_s_per_10k_spans, 2)} | {f(x.peak_rss_mb)} "
                     f"| {f(x.queryable_after_s, 2)} |")
    lines.append("")
    for ratio in rs:
        lines.append(f"tracehouse {ratio['tracehouse_protocol']} / MLflow, {ratio['concurrency']} clients: "
                     f"{ratio['min']}× to {ratio['max']}× (median {ratio['median']}×)")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tracehouse.bench.run_mlflow_side_by_side",
                                description="Store the same OTLP traffic in MLflow's tracking server and in "
                                "tracehouse, one after the other, and print the ratio.")
    p.add_argument("--mlflow", default=None, help="the mlflow executable (default: beside this Python)")
    p.add_argument("--mlflow-workers", type=int, default=4, help="mlflow server --workers (its default: 4)")
    p.add_argument("--config", default="deploy/config/bench.yaml", help="tracehouse config")
    p.add_argument("--server-cores", type=int, default=1, help="CPUs each server is pinned to (0: no pinning)")
    p.add_argument("--concurrency", type=lambda v: [int(x) for x in v.split(",")], default=[8, 32],
                   help="comma-separated client counts, one run each")
    p.add_argument("--spans", type=int, default=20_000, help="spans per measured run")
    p.add_argument("--spans-per-request", type=int, default=500)
    p.add_argument("--warmup-spans", type=int, default=8_000, help="spans sent before measuring (0: none)")
    p.add_argument("--repeats", type=int, default=3, help="tracehouse runs per concurrency and protocol")
    p.add_argument("--request-timeout", type=float, default=300.0, help="MLflow takes seconds per request")
    p.add_argument("--max-duration", type=float, default=600.0)
    p.add_argument("--query-timeout", type=float, default=300.0)
    p.add_argument("--ready-timeout", type=float, default=120.0)
    p.add_argument("--json-out", default=None)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if min(args.concurrency) < 1 or args.spans < 1 or args.repeats < 1:
        print("error: --concurrency, --spans and --repeats must be >= 1", file=sys.stderr)
        return 2
    cores, load_cores = split_cores(args.server_cores)
    own = os.sched_getaffinity(0)
    workdir = Path(tempfile.mkdtemp(prefix="tracehouse-vs-mlflow-"))
    try:
        os.sched_setaffinity(0, load_cores)
        runs = run_mlflow(args, workdir / "mlflow", cores, load_cores)
        runs += run_tracehouse(args, workdir / "tracehouse", cores, load_cores)
    except (BenchError, RuntimeError, httpx.HTTPError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        os.sched_setaffinity(0, own)
        shutil.rmtree(workdir, ignore_errors=True)
    rs = ratios(runs)
    print(markdown(runs, rs))
    figures = {"runs": [{"server": r.server, **r.result.to_json()} for r in runs], "ratios": rs,
               "server_cores": cores, "loadgen_cores": load_cores, "mlflow_workers": args.mlflow_workers,
               "cpu_model": cpu_model(), "cpu_count": os.cpu_count()}
    if args.json_out:
        write_json(args.json_out, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
