"""Smoke test of the ClickHouse floor benchmark (bench/run_clickhouse_floor.py): the
exporter's rows go in as pre-serialized Native blocks, every span lands in the table and its
rollup, and every figure is reported. No timing assertions: speed lives in `make bench`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_the_floor_benchmark_stores_every_span_once_and_reports_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "floor.json"
    # Its own process: chDB hosts one data directory per process, and the suite's is open.
    done = subprocess.run([sys.executable, "-m", "tracehouse.bench.run_clickhouse_floor", "--spans", "3000",
                           "--batch-spans", "1000", "--core", "-1", "--json-out", str(out)],
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    # The bench itself exits non-zero unless the table and the trace rollup hold every span once.
    assert result["spans"] >= 3000 and 3 <= result["blocks"] <= 4  # ~1,000 spans an insert
    assert result["spans_per_s"] > 0 and result["insert_cpu_us_per_span"] > 0 and result["merge_cpu_us_per_span"] >= 0
    assert "| spans | inserts |" in done.stdout
