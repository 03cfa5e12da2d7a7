"""The MLflow side-by-side benchmark (bench/run_mlflow_side_by_side.py): it counts what
MLflow stored from MLflow's own database, and runs end to end against a real MLflow
tracking server and a real tracehouse. No timing assertions: speed lives in `make bench`."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest

from tracehouse.bench import run_mlflow_side_by_side as sbs
from tracehouse.bench.traffic import TraceRef

A, B = "a" * 32, "b" * 32


def _mlflow_db(path: Path, spans_per_trace: dict[str, int]) -> Path:
    """The one table and column of MLflow's schema the check reads: spans.trace_id."""
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE spans (trace_id TEXT, span_id TEXT)")
    con.executemany("INSERT INTO spans VALUES (?, ?)",
                    [(f"tr-{t}", str(i)) for t, n in spans_per_trace.items() for i in range(n)])
    con.commit()
    con.close()
    return path


def test_every_acknowledged_span_stored_counts_as_stored(tmp_path: Path) -> None:
    check = sbs.mlflow_stored_check(_mlflow_db(tmp_path / "m.db", {A: 3, B: 2}), timeout_s=1)
    qs = asyncio.run(check([TraceRef(A, 3), TraceRef(B, 2)], 0.0))
    assert (qs.checked, qs.pending, qs.duplicates) == (2, 0, 0)
    assert qs.queryable_after_s is not None


def test_a_missing_span_leaves_its_trace_pending_until_the_timeout(tmp_path: Path) -> None:
    check = sbs.mlflow_stored_check(_mlflow_db(tmp_path / "m.db", {A: 3, B: 1}), timeout_s=0.3)
    qs = asyncio.run(check([TraceRef(A, 3), TraceRef(B, 2)], 0.0))
    assert qs.pending == 1 and qs.queryable_after_s is None


def test_a_trace_stored_twice_is_counted_as_a_duplicate(tmp_path: Path) -> None:
    check = sbs.mlflow_stored_check(_mlflow_db(tmp_path / "m.db", {A: 6}), timeout_s=0.3)
    qs = asyncio.run(check([TraceRef(A, 3)], 0.0))
    assert qs.duplicates == 1 and qs.pending == 0


@pytest.mark.integration
def test_the_benchmark_stores_the_same_traffic_in_both_and_reports_the_ratio(tmp_path: Path) -> None:
    mlflow = Path(sys.executable).parent / "mlflow"
    if not mlflow.exists() and not shutil.which("mlflow"):
        pytest.skip("mlflow is not installed (pip install -e '.[test]')")
    out = tmp_path / "sbs.json"
    code = sbs.main(["--server-cores", "0", "--mlflow-workers", "1", "--concurrency", "1", "--spans", "100",
                     "--spans-per-request", "100", "--warmup-spans", "0", "--repeats", "1",
                     "--json-out", str(out)])
    assert code == 0
    doc = json.loads(out.read_text())
    by_server = {(r["server"], r["protocol"]): r for r in doc["runs"]}
    assert set(by_server) == {("mlflow", "http"), ("tracehouse", "http"), ("tracehouse", "grpc")}
    for run in doc["runs"]:  # every acknowledged span was found stored, by each server's own read path
        assert run["spans"] == run["spans_offered"] and run["query_pending_traces"] == 0
        assert run["queryable_after_s"] is not None and run["query_duplicate_traces"] == 0
    mlflow_rate = by_server[("mlflow", "http")]["spans_per_s"]
    for ratio in doc["ratios"]:
        rate = by_server[("tracehouse", ratio["tracehouse_protocol"])]["spans_per_s"]
        assert ratio["mlflow_spans_per_s"] == mlflow_rate
        assert ratio["median"] == round(rate / mlflow_rate, 1)
    assert {r["tracehouse_protocol"] for r in doc["ratios"]} == {"http", "grpc"}


def test_loadgen_headers_are_name_value_pairs() -> None:
    from tracehouse.bench.loadgen import parse_headers

    assert parse_headers(["x-mlflow-experiment-id=1", "authorization=Bearer a=b"]) == (
        ("x-mlflow-experiment-id", "1"), ("authorization", "Bearer a=b"))
    with pytest.raises(SystemExit, match="NAME=VALUE"):
        parse_headers(["no-value"])
