"""Smoke test of the Kafka benchmark (bench/run_kafka.py): it runs end to end on a real
broker and reports every figure. No timing assertions: speed lives in `make bench`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tracehouse.bench import run_kafka

pytestmark = pytest.mark.integration


def test_the_kafka_benchmark_runs_and_the_writer_stores_what_the_sidecar_acknowledged(tmp_path: Path) -> None:
    out = tmp_path / "kafka.json"
    cpus = os.sched_getaffinity(0)
    code = run_kafka.main(["--spans", "2000", "--spans-per-request", "250", "--concurrency", "4",
                           "--json-out", str(out), "--writer-timeout", "120"])
    assert code == 0
    doc = json.loads(out.read_text())
    runs = doc["sidecar_runs"]
    assert [r["protocol"] for r in runs] == ["http", "grpc"]
    acknowledged = sum(r["spans"] for r in runs)
    assert acknowledged >= 4000 and all(r["spans"] == r["spans_offered"] for r in runs)
    assert doc["sidecar"]["idle_rss_mb"] > 0 and doc["sidecar"]["exit_code"] == 0
    assert doc["writer"]["spans"] == acknowledged and doc["writer"]["exit_code"] == 0
    assert doc["writer"]["spans_per_s"] > 0 and doc["writer"]["cpu_s_per_10k_spans"] > 0
    assert os.sched_getaffinity(0) == cpus, "the benchmark gives back the CPUs it pinned"
