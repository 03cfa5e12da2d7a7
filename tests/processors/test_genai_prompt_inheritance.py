"""A prompt MLflow links to a trace counts the model calls that sent it.

`mlflow.genai.load_prompt` inside a traced function links the prompt to that function's span
(`mlflow.linkedPrompts`), not to the OpenAI call below it. Tested on the real client's traffic
(tests/fixtures/mlflow-wire/rec-flow2-full.jsonl: MLflow 3.17.2)."""

from __future__ import annotations

import json
from pathlib import Path

from genai_helpers import batch_of, enrich, span
from google.protobuf.json_format import ParseDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tracehouse.core.pdata import TraceBatch

WIRE = Path(__file__).resolve().parents[1] / "fixtures" / "mlflow-wire"


def recorded_flow2() -> TraceBatch:
    records = [json.loads(line) for line in (WIRE / "rec-flow2-full.jsonl").read_text().splitlines() if line]
    otlp = next(r for r in records if r["path"] == "/v1/traces")["req_body"]["_otlp"]
    return TraceBatch.from_request(ParseDict(otlp, ExportTraceServiceRequest()))


def by_name(batch: TraceBatch) -> dict[str, int]:
    return {sp.name: i for i, (_, _, sp) in enumerate(batch.iter_spans())}


async def test_the_call_under_a_function_that_loaded_a_prompt_counts_for_that_prompt() -> None:
    batch = await enrich(recorded_flow2())
    cols = batch.genai
    assert cols is not None
    names = by_name(batch)
    call, function = names["Completions"], names["explain"]
    assert (cols.prompt_name[function], cols.prompt_version[function]) == ("0001.explain_code", "1")
    assert cols.span_kind[call] == "llm"
    assert (cols.prompt_name[call], cols.prompt_version[call]) == ("0001.explain_code", "1")
    assert cols.input_tokens[call] == 42


async def test_a_call_that_names_its_own_prompt_keeps_it_and_strangers_get_none() -> None:
    linked = json.dumps([{"name": "outer", "version": "2"}])
    batch = await enrich(batch_of([
        span(1, 1, 0, {"mlflow.spanType": json.dumps("CHAIN"), "mlflow.linkedPrompts": linked}, name="fn"),
        span(1, 2, 1, {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini",
                       "gen_ai.prompt.name": "inner"}, parent=1, name="own"),
        span(1, 3, 2, {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini"},
             parent=2, name="grandchild"),
        span(2, 4, 3, {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini"}, name="other-trace"),
    ]))
    cols = batch.genai
    assert cols is not None
    names = by_name(batch)
    assert cols.prompt_name[names["own"]] == "inner"
    assert cols.prompt_name[names["grandchild"]] == "inner"  # its nearest linking ancestor
    assert cols.prompt_name[names["other-trace"]] == ""
