"""Smoke test of the GenAI processors benchmark (bench/genai_processors.py): it runs, reports
every figure, and the processors it times really enrich the spans. No timing assertions:
speed is measured by the benchmark, never by tests."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tracehouse.bench import genai_processors as gp

FIXTURES = Path(__file__).parent / "fixtures" / "otlp"


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    return gp.measure(spans=200, spans_per_request=100, repeats=1, warmup=0, fixtures_dir=FIXTURES)


def test_every_shape_and_stage_is_reported(result: dict[str, Any]) -> None:
    assert set(result["shapes"]) == set(gp.SHAPE_NAMES)
    assert result["params"]["repeats"] == 1
    for name, shape in result["shapes"].items():
        assert shape["spans"] >= 200, name
        assert shape["requests"] >= 2, name
        assert shape["attributes_per_span"] > 0
        assert set(shape["stages"]) == set(gp.STAGES)
        for stage, figures in shape["stages"].items():
            assert set(figures) == {"us_per_span", "us_per_span_best", "cpu_us_per_span", "spans_per_s"}, stage
            assert all(math.isfinite(v) and v >= 0 for v in figures.values()), (name, stage, figures)
            assert figures["us_per_span"] > 0 and figures["spans_per_s"] > 0, (name, stage)
        assert shape["ratio_chain_to_decode"] > 0
        assert isinstance(shape["target_met"], bool)
        assert shape["check"]["spans"] == shape["spans"]


def test_chain_enriches_the_usage_reporting_traffic(result: dict[str, Any]) -> None:
    check = result["shapes"]["bench"]["check"]
    # Each trace has ~6 spans, about half of them chat spans.
    assert check["llm_spans"] >= check["spans"] // 4
    assert check["with_provider"] >= check["llm_spans"]
    assert check["llm_with_model"] == check["llm_spans"]
    assert check["llm_with_tokens"] == check["llm_spans"]  # reported usage was read
    assert check["tokens_estimated"] == 0  # ... so nothing was estimated
    assert check["cost_computed"] == check["llm_spans"]  # every bench model has a price


def test_tokens_are_estimated_when_usage_is_missing(result: dict[str, Any]) -> None:
    check = result["shapes"]["bench_no_usage"]["check"]
    assert check["llm_spans"] == result["shapes"]["bench"]["check"]["llm_spans"]
    # Failed calls (~3%) are not estimated; every other chat span is.
    assert check["tokens_estimated"] >= 0.9 * check["llm_spans"]
    assert check["llm_with_tokens"] == check["tokens_estimated"]
    assert check["input_tokens_sum"] > 100 * check["tokens_estimated"]  # ~700 B of input each
    assert check["cost_computed"] == check["tokens_estimated"]


def test_real_fixtures_are_enriched(result: dict[str, Any]) -> None:
    for name in ("openinference", "fixtures"):
        check = result["shapes"][name]["check"]
        assert check["llm_spans"] > 0, name
        assert check["llm_with_model"] == check["llm_spans"], name
        assert check["with_provider"] >= check["llm_spans"], name
        assert 0 < check["llm_with_tokens"] <= check["llm_spans"], name  # the failed call reports none
        assert check["cost_computed"] > 0, name


def test_redaction_masks_the_planted_secrets_and_nothing_else(result: dict[str, Any]) -> None:
    # No false positives on the generated traffic nor on any captured library's payload.
    for name in ("bench", "bench_no_usage", "openinference", "fixtures"):
        check = result["shapes"][name]["check"]
        assert check["redacted_spans"] == 0 and check["masked_values"] == 0, name
    check = result["shapes"]["bench_secrets"]["check"]
    planted = check["llm_spans"] // gp.SECRET_EVERY
    assert planted - 2 <= check["redacted_spans"] <= planted + 2  # one chat span in ten (chat spans only)
    assert check["masked_values"] >= 2 * check["redacted_spans"]  # the email and the key, and cards
    assert check["secrets_left"] == 0


def test_plant_secrets_changes_only_user_and_tool_messages() -> None:
    [shape] = gp.build_shapes(60, 60, names=["bench"], fixtures_dir=None)
    body = shape.bodies[0]
    planted = ExportTraceServiceRequest.FromString(gp.plant_secrets(body, every=1))
    original = ExportTraceServiceRequest.FromString(body)
    changed = 0
    for (_, _, a), (_, _, b) in zip(iter_spans(original), iter_spans(planted), strict=True):
        before = {kv.key: kv.value.string_value for kv in a.attributes}
        after = {kv.key: kv.value.string_value for kv in b.attributes}
        assert before.keys() == after.keys()
        assert {k for k in before if before[k] != after[k]} <= {"gen_ai.input.messages"}
        if before != after:
            changed += 1
            assert gp.SECRET_USER_TEXT in json.loads(after["gen_ai.input.messages"])[1]["parts"][0]["content"]
    assert changed == sum(1 for _, _, sp in iter_spans(original)
                          if any(kv.key == "gen_ai.input.messages" for kv in sp.attributes))


def iter_spans(request: ExportTraceServiceRequest) -> list[tuple[Any, Any, Any]]:
    return [(rs, ss, sp) for rs in request.resource_spans for ss in rs.scope_spans for sp in ss.spans]


def test_strip_usage_removes_only_usage() -> None:
    [shape] = gp.build_shapes(50, 50, names=["bench"], fixtures_dir=None)
    before = ExportTraceServiceRequest.FromString(shape.bodies[0])
    after = ExportTraceServiceRequest.FromString(gp.strip_usage(shape.bodies[0]))
    keys_before = [kv.key for rs in before.resource_spans for ss in rs.scope_spans for sp in ss.spans
                   for kv in sp.attributes]
    keys_after = [kv.key for rs in after.resource_spans for ss in rs.scope_spans for sp in ss.spans
                  for kv in sp.attributes]
    assert any(k.startswith("gen_ai.usage.") for k in keys_before)
    assert keys_after == [k for k in keys_before if not k.startswith("gen_ai.usage.")]


def test_fixture_shapes_are_skipped_without_fixtures(tmp_path: Path) -> None:
    shapes = gp.build_shapes(20, 20, fixtures_dir=tmp_path)
    assert [s.name for s in shapes] == ["bench", "bench_no_usage", "bench_secrets"]


def test_cli_prints_the_table_and_writes_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(gp, "configure_logging", lambda *a: None)  # keep the test session's logging
    out = tmp_path / "gp.json"
    code = gp.main(["--spans", "30", "--spans-per-request", "30", "--repeats", "1", "--warmup", "0",
                    "--shapes", "bench", "--json-out", str(out)])
    assert code == 0
    table = capsys.readouterr().out
    assert "GenAI processors / OTLP protobuf decode" in table
    assert "| bench |" in table
    assert set(json.loads(out.read_text())["shapes"]) == {"bench"}
    assert gp.main(["--shapes", "nope"]) == 2
