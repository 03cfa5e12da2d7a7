"""POML: the LLM call that sends a `poml` span's rendered messages is linked to its prompt.

The fixture (tests/fixtures/seed-flows/poml-mlflow, see its README row) is the real OTLP request of
POML 0.0.8 + MLflow 3.17.2 running the seed's example: a `poml` span and the OpenAI call, each
its own one-span trace, in one request. The rest are built spans for the rule's edges.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from otlp_fixtures import load_batch
from tracehouse.core.component import ComponentID, Kind, Settings
from tracehouse.core.genai import GenAIColumns
from tracehouse.core.pdata import TraceBatch, key_values
from tracehouse.core.testing import TracesSink
from tracehouse.processors.genai_normalize.config import GenAINormalizeConfig
from tracehouse.processors.genai_normalize.processor import NormalizeProcessor
from tracehouse.processors.genai_normalize.rendered import poml_rendered

LINK = ("prompt_name", "prompt_version", "prompt_template_hash", "prompt_source")


def normalize(batch: TraceBatch, **config: Any) -> tuple[NormalizeProcessor, GenAIColumns]:
    proc = NormalizeProcessor(Settings(ComponentID("genai_normalize"), Kind.PROCESSOR), GenAINormalizeConfig(**config),
                              TracesSink())
    return proc, proc.process(batch)


def link_of(cols: GenAIColumns, i: int) -> tuple[str, ...]:
    return tuple(getattr(cols, f)[i] for f in LINK)


def test_the_real_poml_request_links_the_openai_call_to_the_poml_prompt() -> None:
    batch = load_batch("../seed-flows/poml-mlflow/http-protobuf.pb")
    spans = [span for _, _, span in batch.iter_spans()]
    assert [s.name for s in spans] == ["poml", "Completions"]
    assert spans[0].trace_id != spans[1].trace_id  # two traces: the link cannot come from the trace
    proc, cols = normalize(batch)

    poml_source = json.loads(dict((kv.key, kv.value.string_value) for kv in spans[0].attributes)
                             ["mlflow.spanInputs"])["prompt"]
    digest = hashlib.sha256(poml_source.encode()).hexdigest()
    expected = (f"poml-{digest[:12]}", "", digest, "POML")
    assert link_of(cols, 0) == expected
    # The call: same link, its own usage; the poml span is no call (no model, no usage).
    assert link_of(cols, 1) == expected
    assert (cols.span_kind[1], cols.request_model[1], cols.input_tokens[1], cols.output_tokens[1]) == (
        "llm", "gpt-5", 42, 17)
    assert cols.prompt_template[1] == poml_source
    assert json.loads(cols.prompt_variables[1]) == {"code_path": "sample.py"}
    assert (cols.span_kind[0], cols.request_model[0], cols.input_tokens[0]) == ("", "", None)
    assert proc.rendered_prompt_links == 1


RENDERED = [{"speaker": "system", "content": "Be brief."}, {"speaker": "human", "content": ["Explain", "x = 1"]}]
SENT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Explain\nx = 1"}]


def poml_span(trace: int, start: int, source: str = "<poml><p>Explain</p></poml>",
              rendered: list[dict[str, Any]] | None = None) -> Span:
    return Span(trace_id=bytes([trace]) * 16, span_id=bytes([trace, start]) * 4, name="poml",
                start_time_unix_nano=start, attributes=key_values({
                    "mlflow.spanType": json.dumps("UNKNOWN"), "mlflow.spanFunctionName": json.dumps("poml"),
                    "mlflow.spanInputs": json.dumps({"prompt": source, "context": {}, "stylesheet": None}),
                    "mlflow.spanOutputs": json.dumps({"messages": RENDERED if rendered is None else rendered})}))


def chat_span(trace: int, start: int, sent: list[dict[str, Any]] | None = None, **extra: Any) -> Span:
    return Span(trace_id=bytes([trace]) * 16, span_id=bytes([trace, start, 9]) * 2 + b"\0\0", name="Completions",
                start_time_unix_nano=start, attributes=key_values({
                    "mlflow.spanType": json.dumps("CHAT_MODEL"), "model": json.dumps("gpt-4o"),
                    "mlflow.spanInputs": json.dumps({"model": "gpt-4o", "messages": SENT if sent is None else sent}),
                    "mlflow.chat.tokenUsage": json.dumps({"input_tokens": 42, "output_tokens": 17}), **extra}))


def batch_of(*groups: tuple[dict[str, Any], list[Span]]) -> TraceBatch:
    return TraceBatch.from_request(ExportTraceServiceRequest(resource_spans=[
        ResourceSpans(resource={"attributes": key_values(resource)}, scope_spans=[ScopeSpans(spans=spans)])
        for resource, spans in groups]))


APP = {"service.name": "app"}


def test_poml_speakers_and_rich_content_read_as_the_openai_messages_poml_makes_of_them() -> None:
    attrs = {kv.key: kv.value for kv in poml_span(1, 1).attributes}
    assert [(m.role, m.content) for m in poml_rendered(attrs) or []] == [
        ("system", "Be brief."), ("user", "Explain\nx = 1")]


def test_a_call_in_the_same_trace_links_in_either_order() -> None:
    _, cols = normalize(batch_of((APP, [chat_span(1, 20), poml_span(1, 10)])))
    assert link_of(cols, 0) == link_of(cols, 1) != ("", "", "", "")


def test_a_call_that_sent_other_messages_is_not_linked() -> None:
    edited = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Explain\nx = 2"}]
    _, cols = normalize(batch_of((APP, [poml_span(1, 10), chat_span(2, 20, edited), chat_span(3, 30, SENT[1:])])))
    assert cols.prompt_name[0] and not cols.prompt_name[1] and not cols.prompt_name[2]


def test_another_process_with_the_same_messages_is_not_linked() -> None:
    _, cols = normalize(batch_of((APP, [poml_span(1, 10)]), ({"service.name": "other"}, [chat_span(2, 20)])))
    assert cols.prompt_name[0] and not cols.prompt_name[1]


def test_a_call_that_names_its_prompt_keeps_it() -> None:
    linked = json.dumps([{"name": "mine", "version": "3"}])
    _, cols = normalize(batch_of((APP, [poml_span(1, 10), chat_span(2, 20, **{"mlflow.linkedPrompts": linked})])))
    assert (cols.prompt_name[1], cols.prompt_version[1], cols.prompt_source[1]) == ("mine", "3", "MLflow")


def test_same_messages_rendered_twice_link_the_own_trace_else_the_latest_before_the_call() -> None:
    spans = [poml_span(1, 10, "<poml>A</poml>"), poml_span(2, 30, "<poml>B</poml>"), poml_span(3, 50, "<poml>C</poml>"),
             chat_span(1, 60), chat_span(4, 40), chat_span(5, 5)]
    _, cols = normalize(batch_of((APP, spans)))
    template = cols.prompt_template
    assert (template[3], template[4], template[5]) == ("<poml>A</poml>", "<poml>B</poml>", "<poml>C</poml>")


def test_batches_without_poml_spans_read_no_messages_of_calls_that_report_usage() -> None:
    _, cols = normalize(batch_of((APP, [chat_span(1, 10), chat_span(2, 20)])))
    assert cols.input_messages == [None, None] and cols.prompt_name == ["", ""]
