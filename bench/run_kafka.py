"""Kafka shape benchmark: the sidecar's throughput and memory, then the writer's throughput.

1. Start a local tansu broker (memory storage) on the load generator's CPUs.
2. Start the sidecar (`deploy/config/sidecar.yaml`, memory queue) pinned to `--server-cores`
   CPUs; record its RSS once idle; send `--spans` over OTLP/HTTP then OTLP/gRPC with
   `--concurrency` clients. An acknowledgement means Kafka acked (acks=all), so these are
   spans per second *in Kafka*. Stop the sidecar.
3. Start the writer (`deploy/config/writer.yaml`: Kafka → GenAI processors → ClickHouse on a
   fresh chDB directory) pinned the same way, on the topic the sidecar filled; measure from
   its first stored span until every span is stored (its `/metrics`), with its CPU time.

    python -m tracehouse.bench.run_kafka --spans 100000 --concurrency 32 --json-out bench-kafka.json

Idempotent producers are off (tansu refuses InitProducerId); that changes one handshake
per producer, not the per-message path.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import psutil

from tracehouse.bench.loadgen import LoadConfig, LoadResult
from tracehouse.bench.processes import rss_mb
from tracehouse.bench.run_all_in_one import (
    BenchError,
    ServerInfo,
    cpu_model,
    run_protocols,
    server_command,
    split_cores,
    start_server,
    stop_server,
    wait_ready,
)
from tracehouse.bench.tansu import TansuBroker, free_port

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "deploy" / "config"


def metric(base_url: str, name: str) -> float:
    """Sum of a metric's samples over all label sets."""
    text = httpx.get(f"{base_url}/metrics", timeout=5, trust_env=False).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name):len(name) + 1] in ("{", " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _process(config: Path, workdir: Path, env: dict[str, str], cores: list[int], load_cores: list[int],
             name: str) -> tuple[ServerInfo, Any, str]:
    health_port = free_port()
    info = ServerInfo(cmd=server_command(None, str(config)), config=str(config), data_dir=str(workdir),
                      cores=cores, loadgen_cores=load_cores)
    log_path = workdir / f"{name}.log"
    info.log_file = str(log_path)
    full_env = dict(os.environ, TRACEHOUSE_BIND="127.0.0.1", TRACEHOUSE_OTLP_BIND="127.0.0.1",
                    TRACEHOUSE_HEALTH_PORT=str(health_port),
                    TRACEHOUSE_LOG_FORMAT="json", **env)
    proc = start_server(info, full_env, log_path)
    info.pid = proc.pid
    health = f"http://127.0.0.1:{health_port}"
    info.ready_after_s = round(wait_ready(proc, health, 90, log_path), 3)
    return info, proc, health


def run_sidecar(args: argparse.Namespace, kafka_env: dict[str, str], workdir: Path, cores: list[int],
                load_cores: list[int]) -> tuple[list[LoadResult], dict[str, Any]]:
    http_port, grpc_port = free_port(), free_port()
    env = {**kafka_env, "TRACEHOUSE_OTLP_HTTP_PORT": str(http_port), "TRACEHOUSE_OTLP_GRPC_PORT": str(grpc_port)}
    info, proc, _ = _process(CONFIGS / "sidecar.yaml", workdir, env, cores, load_cores, "sidecar")
    figures: dict[str, Any] = {"ready_after_s": info.ready_after_s}
    try:
        time.sleep(2)  # let start-up garbage settle before the idle reading
        figures["idle_rss_mb"] = rss_mb(proc.pid)["rss"]
        base = LoadConfig(spans=args.spans, spans_per_request=args.spans_per_request, concurrency=args.concurrency,
                          seed=args.seed, skip_query=True, server_pid=proc.pid)
        endpoints = {"http": f"http://127.0.0.1:{http_port}", "grpc": f"127.0.0.1:{grpc_port}"}
        results = run_protocols(base, ["http", "grpc"], endpoints, info)
        if proc.poll() is not None:
            raise BenchError(f"sidecar died during the benchmark (code {proc.returncode}); see {info.log_file}")
    finally:
        stop_server(proc, info, 60)
    figures["exit_code"] = info.exit_code
    return results, figures


def run_writer(expected_spans: int, kafka_env: dict[str, str], workdir: Path, cores: list[int],
               load_cores: list[int], timeout_s: float) -> dict[str, Any]:
    env = {**kafka_env, "TRACEHOUSE_CLICKHOUSE_DSN": f"chdb://{workdir / 'chdb'}"}
    info, proc, health = _process(CONFIGS / "writer.yaml", workdir, env, cores, load_cores, "writer")
    ps = psutil.Process(proc.pid)
    peak = 0.0
    try:
        t_first = cpu_first = None
        stored = first_batch = 0.0
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and stored < expected_spans:
            stored = metric(health, "tracehouse_exporter_sent_spans_total")
            peak = max(peak, rss_mb(proc.pid)["rss"])
            if stored > 0 and t_first is None:
                t_first, cpu_first, first_batch = time.monotonic(), sum(ps.cpu_times()[:2]), stored
            time.sleep(0.05)
        t_done, cpu_done = time.monotonic(), sum(ps.cpu_times()[:2])
        if stored < expected_spans:
            raise BenchError(f"writer stored {stored:.0f} of {expected_spans} spans within {timeout_s:.0f} s; "
                             f"see {info.log_file}")
    finally:
        stop_server(proc, info, 60)
    assert t_first is not None and cpu_first is not None
    spans = expected_spans - first_batch  # the first batch's work happened before t_first
    wall = t_done - t_first
    return {"spans": expected_spans, "ready_after_s": info.ready_after_s, "wall_s": round(wall, 2),
            "spans_per_s": round(spans / wall) if wall > 0 else None,
            "cpu_s_per_10k_spans": round((cpu_done - cpu_first) / spans * 10_000, 2),
            "peak_rss_mb": round(peak, 1), "exit_code": info.exit_code}


def markdown(results: list[LoadResult], sidecar: dict[str, Any], writer: dict[str, Any]) -> str:
    lines = ["| sidecar | clients | spans/s (1 core) | p50 ms | p99 ms | idle RSS | peak RSS | CPU s / 10k spans |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| OTLP/{r.protocol.upper() if r.protocol == 'http' else 'gRPC'} | {r.concurrency} | "
                     f"{r.spans_per_s:,.0f} | {r.p50_ms:,.0f} | {r.p99_ms:,.0f} | {sidecar['idle_rss_mb']:.0f} MB | "
                     f"{r.peak_rss_mb:.0f} MB | {r.cpu_s_per_10k_spans:.2f} |")
    lines += ["", "| writer | spans | spans/s (1 core) | CPU s / 10k spans | peak RSS |", "|---|---|---|---|---|",
              f"| Kafka → GenAI processors → ClickHouse (chDB) | {writer['spans']:,} | {writer['spans_per_s']:,} | "
              f"{writer['cpu_s_per_10k_spans']:.2f} | {writer['peak_rss_mb']:.0f} MB |"]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tracehouse.bench.run_kafka", description=__doc__.split("\n")[0])
    p.add_argument("--spans", type=int, default=100_000, help="spans per protocol sent to the sidecar")
    p.add_argument("--spans-per-request", type=int, default=500)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--server-cores", type=int, default=1, help="CPUs the sidecar and then the writer are pinned to")
    p.add_argument("--writer-timeout", type=float, default=300.0)
    p.add_argument("--json-out", default="")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="tracehouse-kafka-bench-"))
    affinity = os.sched_getaffinity(0)
    try:
        cores, load_cores = split_cores(args.server_cores)
        os.sched_setaffinity(0, load_cores)  # the broker and the load generator share the other CPUs
        broker = TansuBroker(workdir / "tansu.log").start()
        topic = f"bench-{uuid.uuid4().hex[:8]}"
        kafka_env = {"TRACEHOUSE_KAFKA_BROKERS": broker.bootstrap, "TRACEHOUSE_KAFKA_TOPIC": topic,
                     "TRACEHOUSE_KAFKA_DLQ_TOPIC": f"{topic}_dlq", "TRACEHOUSE_KAFKA_IDEMPOTENCE": "false",
                     "TRACEHOUSE_KAFKA_GROUP": f"bench-{topic}"}
        try:
            results, sidecar = run_sidecar(args, kafka_env, workdir, cores, load_cores)
            in_kafka = sum(r.spans for r in results)
            print(f"sidecar done: {in_kafka:,} spans in Kafka; starting the writer", file=sys.stderr)
            writer = run_writer(in_kafka, kafka_env, workdir, cores, load_cores, args.writer_timeout)
        finally:
            broker.stop()
    except (BenchError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        os.sched_setaffinity(0, affinity)  # callers (tests) keep every CPU they had
        shutil.rmtree(workdir, ignore_errors=True)
    print(markdown(results, sidecar, writer))
    if args.json_out:
        doc = {"cpu": cpu_model(), "python": sys.version.split()[0], "sidecar": sidecar,
               "sidecar_runs": [replace(r).to_json() for r in results], "writer": writer}
        Path(args.json_out).write_text(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
