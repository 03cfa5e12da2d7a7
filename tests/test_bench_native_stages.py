"""Smoke test of the C-module benchmark (bench/native_stages.py): it runs both settings over
every stage, reports every figure, and leaves the C paths on. No timing assertions: speed is
measured by the benchmark, never by tests."""

from __future__ import annotations

import math

from tracehouse.bench import native_stages as ns
from tracehouse.core.native import otlpwire
from tracehouse.ingest.otlp import validate
from tracehouse.processors.genai_normalize import processor as normalize
from tracehouse.sinks.clickhouse import columns


def test_both_settings_are_measured_stage_by_stage_and_the_c_paths_are_left_on() -> None:
    result = ns.measure(spans=300, spans_per_request=100, rounds=1)
    assert result["params"]["spans"] >= 300
    for setting in ("native", "python"):
        figures = result["cpu_us_per_span"][setting]
        assert set(figures) == set(ns.STAGES)
        assert all(math.isfinite(v) and v >= 0 for v in figures.values()), figures
        assert figures["normalize"] > 0 and figures["columns"] > 0, figures
        assert result["total"][setting] == sum(figures.values())
    table = ns.markdown_table(result)
    assert all(f"| {stage} |" in table for stage in ns.STAGES) and "**total**" in table
    assert columns.native is otlpwire and validate.spans_valid is not None and normalize.attribute_values is not None
