"""Smoke test of the ClickHouse floor benchmark (bench/run_clickhouse_floor.py): the
exporter's rows go in as pre-serialized Native blocks, every span lands in the table and its
rollup, and every figure is reported. No timing assertions: speed lives in `make bench`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration


def run_floor(tmp_path: Path, *args: str) -> tuple[dict[str, Any], str]:
    out = tmp_path / "floor.json"
    # Its own process: chDB hosts one data directory per process, and the suite's is open.
    done = subprocess.run([sys.executable, "-m", "tracehouse.bench.run_clickhouse_floor", "--spans", "3000",
                           "--batch-spans", "1000", "--core", "-1", "--json-out", str(out), *args],
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text()), done.stdout


def test_the_floor_benchmark_stores_every_span_once_and_reports_its_figures(tmp_path: Path) -> None:
    result, stdout = run_floor(tmp_path)
    # The bench itself exits non-zero unless the table and the trace rollup hold every span once.
    assert result["spans"] >= 3000 and 3 <= result["blocks"] <= 4  # ~1,000 spans an insert
    assert result["spans_per_s"] > 0 and result["insert_cpu_us_per_span"] > 0 and result["merge_cpu_us_per_span"] >= 0
    assert "| spans | inserts |" in stdout
    # The inserts feed the real schema: the spans table's four views, its indexes, the rollup's projections.
    assert (result["views"], result["indexes"] >= 9, result["projections"] >= 5) == (4, True, True)


def test_the_floor_without_views_indexes_and_projections_feeds_only_the_table(tmp_path: Path) -> None:
    result, _ = run_floor(tmp_path, "--without", "views", "--without", "indexes", "--without", "projections")
    assert result["spans"] >= 3000 and result["insert_cpu_us_per_span"] > 0
    assert (result["views"], result["indexes"], result["projections"]) == (0, 0, 0)
    assert result["without"] == ["views", "indexes", "projections"]
