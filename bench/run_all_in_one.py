"""Whole all-in-one benchmark: start tracehouse, load it over OTLP/HTTP then OTLP/gRPC, stop it.

Steps: create a fresh chDB data directory (`TRACEHOUSE_CLICKHOUSE_DSN=chdb:///tmp/...`),
start `tracehouse run --config deploy/config/bench.yaml` pinned to `--server-cores` CPUs,
wait for `GET /readyz` to answer 200, pin this process (the load generator) to the other
CPUs, run `loadgen` once per protocol with the server's pid (RSS/CPU sampling), send
SIGTERM and wait for a clean exit, then print a Markdown table for BENCHMARKS.md and
write every figure to `--json-out`.

    python -m tracehouse.bench.run_all_in_one --spans 100000 --json-out bench.json
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import httpx

from tracehouse.bench.loadgen import (
    DEFAULT_GRPC_ENDPOINT,
    DEFAULT_HTTP_ENDPOINT,
    DEFAULT_QUERY_URL,
    LoadConfig,
    LoadResult,
    format_result,
    generate,
    run_load,
    validate,
    write_json,
)
from tracehouse.bench.processes import log_tail, rss_mb

__all__ = ["main", "markdown_table"]

READY_POLL_S = 0.2


class BenchError(RuntimeError):
    """A benchmark step failed; the message says which and why."""


@dataclass
class ServerInfo:
    cmd: list[str]
    config: str
    data_dir: str
    cores: list[int]
    loadgen_cores: list[int]
    pid: int | None = None
    ready_after_s: float | None = None
    idle_rss_mb: dict[str, float] = field(default_factory=dict)
    shutdown_s: float | None = None
    exit_code: int | None = None
    killed: bool = False
    log_file: str = ""
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- server process


def _tracehouse_exe() -> list[str]:
    # Prefer the console script of the interpreter running us (the project venv).
    local = Path(sys.executable).parent / "tracehouse"
    if local.exists():
        return [str(local)]
    found = shutil.which("tracehouse")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys; from tracehouse.core.cli import main; sys.exit(main())"]


def server_command(template: str | None, config: str) -> list[str]:
    """The server argv: `tracehouse run --config <config>`, or `--server-cmd` with {config}/{python} set."""
    if template is None:
        return [*_tracehouse_exe(), "run", "--config", config]
    return shlex.split(template.format(config=shlex.quote(config), python=shlex.quote(sys.executable)))


def split_cores(server_cores: int) -> tuple[list[int], list[int]]:
    """(server CPUs, load-generator CPUs) out of the CPUs this process may use."""
    avail = sorted(os.sched_getaffinity(0))
    if server_cores <= 0:  # no pinning
        return avail, avail
    if server_cores >= len(avail):
        raise BenchError(
            f"--server-cores {server_cores}: only {len(avail)} CPU(s) available, "
            "none left for the load generator"
        )
    return avail[:server_cores], avail[server_cores:]


def start_server(info: ServerInfo, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    cores = set(info.cores)

    def pin() -> None:
        # Runs in the child before exec, so every server thread inherits the mask.
        os.sched_setaffinity(0, cores)

    with open(log_path, "wb") as log:
        return subprocess.Popen(
            info.cmd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=pin,  # noqa: PLW1509 -- we have started no threads at this point
            start_new_session=True,  # Ctrl-C reaches us only; we stop the server with SIGTERM ourselves
        )


def wait_ready(proc: subprocess.Popen[bytes], query_url: str, timeout_s: float, log_path: Path) -> float:
    """Poll GET /readyz until 200; seconds it took. Raises BenchError on exit or timeout."""
    url = f"{query_url.rstrip('/')}/readyz"
    t0 = time.monotonic()
    last = "no answer yet"
    with httpx.Client(trust_env=False, timeout=2.0) as client:
        while time.monotonic() - t0 < timeout_s:
            if proc.poll() is not None:
                raise BenchError(
                    f"server exited with code {proc.returncode} before {url} was ready; "
                    f"log tail:\n{log_tail(log_path)}"
                )
            try:
                resp = client.get(url)
                if resp.status_code == 200:
                    return time.monotonic() - t0
                last = f"HTTP {resp.status_code}: {resp.text[:200]}"
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(READY_POLL_S)
    raise BenchError(
        f"server not ready: GET {url} did not return 200 within {timeout_s:.0f} s (last: {last}); "
        f"log tail:\n{log_tail(log_path)}"
    )


def stop_server(proc: subprocess.Popen[bytes], info: ServerInfo, timeout_s: float) -> None:
    """SIGTERM and wait for the drain; SIGKILL only past `timeout_s`."""
    if proc.poll() is not None:
        info.exit_code = proc.returncode
        info.notes.append(f"server had already exited with code {proc.returncode}")
        return
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        info.exit_code = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        info.exit_code = proc.wait(timeout=10)
        info.killed = True
        info.notes.append(f"server ignored SIGTERM for {timeout_s:.0f} s and was killed")
    info.shutdown_s = round(time.monotonic() - t0, 3)


# --------------------------------------------------------------------------- runs


def run_protocols(
    base: LoadConfig,
    protocols: Sequence[Literal["http", "grpc"]],
    endpoints: dict[str, str],
    info: ServerInfo,
) -> list[LoadResult]:
    """One loadgen run per protocol; an unreachable endpoint skips that run (noted) instead of the rest."""
    results = []
    for i, proto in enumerate(protocols):
        # A distinct seed per run: the same server must never receive the same trace ids twice.
        cfg = replace(base, protocol=proto, endpoint=endpoints[proto], seed=base.seed + i)
        t0 = time.perf_counter()
        payloads = generate(cfg)
        print(
            f"[{proto}] generated {sum(p.span_count for p in payloads):,} spans "
            f"in {len(payloads)} requests in {time.perf_counter() - t0:.1f} s",
            file=sys.stderr,
        )
        try:
            result = asyncio.run(run_load(cfg, payloads))
        except ConnectionError as exc:
            info.notes.append(f"{proto} run skipped: {exc}")
            print(f"[{proto}] skipped: {exc}", file=sys.stderr)
            continue
        finally:
            del payloads
        print(f"\n[{proto}]\n{format_result(result)}\n", file=sys.stderr)
        results.append(result)
    return results


def _fmt(v: float | None, nd: int = 1) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, int):
        return f"{v:,}"
    return f"{v:,.{nd}f}"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _row_cells(r: LoadResult) -> list[str]:
    return [
        "OTLP/HTTP" if r.protocol == "http" else "OTLP/gRPC",
        _fmt(r.spans),
        _fmt(r.requests),
        f"{r.spans_per_request:.0f}",
        str(r.concurrency),
        _fmt(r.spans_per_s, 0),
        _fmt(r.p50_ms),
        _fmt(r.p99_ms),
        str(r.retries),
        _fmt(r.queryable_after_s, 2),
        _fmt(r.peak_rss_mb, 0),
        _fmt(r.cpu_s_per_10k_spans, 2),
    ]


def markdown_table(results: Sequence[LoadResult], info: ServerInfo) -> str:
    """The runs as a Markdown table plus a one-line setup caption."""
    head = (
        "| protocol | spans | requests | spans/request | concurrency | spans/s | p50 ms | p99 ms | retries "
        "| queryable after (s) | peak RSS (MB) | CPU s / 10k spans |"
    )
    sep = "|" + "---|" * 12
    rows = ["| " + " | ".join(_row_cells(r)) + " |" for r in results]
    caption = (
        f"tracehouse all-in-one (`{info.config}`), server pinned to {len(info.cores)} core(s) {info.cores}, "
        f"load generator on {info.loadgen_cores}; {cpu_model()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}; "
        f"GenAI agent traces of ~6 spans, ~1 KB of message content per chat span."
    )
    if info.idle_rss_mb:
        idle = info.idle_rss_mb
        caption += (f" Idle RSS once ready: {idle['rss']:.0f} MB ({idle['anon']:.0f} MB anonymous, "
                    f"{idle['file']:.0f} MB of mapped files).")
    return "\n".join([caption, "", head, sep, *rows])


# --------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tracehouse.bench.run_all_in_one",
        description="Start tracehouse all-in-one, benchmark OTLP/HTTP and OTLP/gRPC ingestion, "
        "stop it, print a Markdown table.",
    )
    p.add_argument("--config", default="deploy/config/bench.yaml", help="tracehouse config for the server")
    p.add_argument(
        "--server-cmd",
        default=None,
        help="override the server command; {config} and {python} are substituted "
        "(default: tracehouse run --config {config})",
    )
    p.add_argument("--server-cores", type=int, default=1, help="CPUs the server is pinned to (0: no pinning)")
    p.add_argument("--protocols", default="http,grpc", help="comma-separated, run in this order")
    p.add_argument("--spans", type=int, default=100_000, help="spans per protocol run")
    p.add_argument("--spans-per-request", type=int, default=500)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--http-endpoint", default=DEFAULT_HTTP_ENDPOINT)
    p.add_argument("--grpc-endpoint", default=DEFAULT_GRPC_ENDPOINT)
    p.add_argument("--query-url", default=DEFAULT_QUERY_URL)
    p.add_argument("--ready-timeout", type=float, default=60.0, help="seconds to wait for GET /readyz == 200")
    p.add_argument(
        "--query-timeout", type=float, default=120.0, help="seconds to wait for spans to be queryable"
    )
    p.add_argument("--max-duration", type=float, default=600.0, help="max seconds of sending per run")
    p.add_argument(
        "--shutdown-timeout", type=float, default=60.0, help="seconds to wait after SIGTERM before SIGKILL"
    )
    p.add_argument("--seed", type=int, default=1, help="seed of the first run (each further run uses seed+1)")
    p.add_argument(
        "--keep-data", action="store_true", help="keep the temporary data directory and server log"
    )
    p.add_argument("--json-out", default=None, help="write all figures as JSON here")
    return p


def _protocols(value: str) -> list[Literal["http", "grpc"]]:
    out: list[Literal["http", "grpc"]] = []
    for name in (v.strip() for v in value.split(",") if v.strip()):
        if name == "http":
            out.append("http")
        elif name == "grpc":
            out.append("grpc")
        else:
            raise BenchError(f"--protocols: unknown protocol {name!r} (http, grpc)")
    return out


def run(args: argparse.Namespace) -> tuple[list[LoadResult], ServerInfo]:
    protocols = _protocols(args.protocols)
    for flag in ("spans", "spans_per_request", "concurrency"):
        if getattr(args, flag) < 1:
            raise BenchError(f"--{flag.replace('_', '-')} must be >= 1")
    endpoints = {"http": args.http_endpoint, "grpc": args.grpc_endpoint}
    base = LoadConfig(
        spans=args.spans,
        spans_per_request=args.spans_per_request,
        concurrency=args.concurrency,
        query_url=args.query_url,
        seed=args.seed,
        query_timeout_s=args.query_timeout,
        max_duration_s=args.max_duration,
    )
    for proto in protocols:  # loopback-only check before anything starts
        validate(replace(base, protocol=proto, endpoint=endpoints[proto]))
    server_cores, load_cores = split_cores(args.server_cores)
    data_dir = tempfile.mkdtemp(prefix="tracehouse-bench-")
    info = ServerInfo(
        cmd=server_command(args.server_cmd, args.config),
        config=args.config,
        data_dir=data_dir,
        cores=server_cores,
        loadgen_cores=load_cores,
    )
    log_path = Path(data_dir) / "server.log"
    info.log_file = str(log_path)
    env = dict(os.environ, TRACEHOUSE_CLICKHOUSE_DSN=f"chdb://{data_dir}/chdb")
    proc = start_server(info, env, log_path)
    info.pid = proc.pid
    try:
        os.sched_setaffinity(0, load_cores)
        info.ready_after_s = round(wait_ready(proc, args.query_url, args.ready_timeout, log_path), 3)
        time.sleep(2)  # start-up garbage settles before the idle reading
        info.idle_rss_mb = rss_mb(proc.pid)
        print(
            f"server pid {proc.pid} ready after {info.ready_after_s:.1f} s, idle RSS {info.idle_rss_mb} MB "
            f"(cores {server_cores}, data {data_dir})",
            file=sys.stderr,
        )
        results = run_protocols(replace(base, server_pid=proc.pid), protocols, endpoints, info)
        if proc.poll() is not None:
            raise BenchError(
                f"server died during the benchmark (code {proc.returncode}); log tail:\n{log_tail(log_path)}"
            )
    finally:
        stop_server(proc, info, args.shutdown_timeout)
        if not args.keep_data:
            shutil.rmtree(data_dir, ignore_errors=True)
    return results, info


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        results, info = run(args)
    except (BenchError, ValueError, ConnectionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(markdown_table(results, info))
    if info.notes:
        print("\n".join(f"note: {n}" for n in info.notes), file=sys.stderr)
    if args.json_out:
        write_json(
            args.json_out,
            {
                "runs": [r.to_json() for r in results],
                "server": info.__dict__,
                "python": platform.python_version(),
                "cpu_count": os.cpu_count(),
                "cpu_model": cpu_model(),
            },
        )
    clean = len(results) == len(_protocols(args.protocols)) and all(
        r.failed_requests == 0 and r.query_pending_traces == 0 for r in results
    )
    return 0 if clean and info.exit_code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
