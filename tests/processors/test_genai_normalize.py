"""genai_normalize: every convention read into one canonical view.

Fixture expectations come from the capture scenario (tests/fixtures/otlp/README.md): the
test server answered every successful call with prompt_tokens=42, completion_tokens=17,
total_tokens=59, cached_tokens=8, reasoning_tokens=5, and reported the response model
gpt-4o-mini-2024-07-18 for gpt-4o-mini. What each library kept of that is what it shows.
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from otlp_fixtures import load_batch as load
from tracehouse.core.component import ComponentID, Kind, Settings
from tracehouse.core.genai import GenAIColumns
from tracehouse.core.pdata import TraceBatch, key_values
from tracehouse.core.testing import TracesSink
from tracehouse.processors.genai_normalize.config import GenAINormalizeConfig
from tracehouse.processors.genai_normalize.processor import NormalizeProcessor

FIELDS = ("provider", "operation", "span_kind", "request_model", "response_model", "input_tokens", "output_tokens",
          "cached_input_tokens", "reasoning_tokens", "total_tokens", "session_id", "user_id", "prompt_name",
          "prompt_version")


def processor(**config: Any) -> NormalizeProcessor:
    # Read messages on every LLM span here, to show what each convention yields; the
    # default reads them only where usage is missing (test_messages_are_read_only_where_needed).
    config.setdefault("messages_only_without_usage", False)
    return NormalizeProcessor(Settings(ComponentID("genai_normalize"), Kind.PROCESSOR), GenAINormalizeConfig(**config),
                              TracesSink())


def rows(batch: TraceBatch, cols: GenAIColumns) -> list[dict[str, Any]]:
    return [{"name": span.name, **{f: getattr(cols, f)[i] for f in FIELDS}}
            for i, (_, _, span) in enumerate(batch.iter_spans())]


def call(request_model: str, response_model: str, *, provider: str = "openai", tokens: bool = True,
         cached: int | None = None, reasoning: int | None = None, **extra: Any) -> dict[str, Any]:
    """The canonical view of one scenario call, as a library that kept usage reports it."""
    used = (42, 17, 59) if tokens else (None, None, None)
    return {"provider": provider, "operation": "chat", "span_kind": "llm", "request_model": request_model,
            "response_model": response_model, "input_tokens": used[0], "output_tokens": used[1],
            "total_tokens": used[2], "cached_input_tokens": cached if tokens else None,
            "reasoning_tokens": reasoning if tokens else None, "session_id": "", "user_id": "", "prompt_name": "",
            "prompt_version": "", **extra}


def agent() -> dict[str, Any]:
    return {"provider": "", "operation": "invoke_agent", "span_kind": "agent", "request_model": "",
            "response_model": "", "input_tokens": None, "output_tokens": None, "total_tokens": None,
            "cached_input_tokens": None, "reasoning_tokens": None, "session_id": "", "user_id": "",
            "prompt_name": "", "prompt_version": ""}


def without_names(got: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k != "name"} for row in got]


def test_otel_genai_openai_v2_fixture() -> None:
    for capture in ("http-protobuf.pb", "grpc.pb"):
        batch = load(f"otel-genai-openai-v2/{capture}")
        got = rows(batch, processor().process(batch))
        # The official instrumentation records no cached/reasoning counts; no total either (computed).
        assert without_names(got) == [
            call("gpt-4o-mini", "gpt-4o-mini-2024-07-18"), call("gpt-4o", "gpt-4o"), call("gpt-4o", "gpt-4o"),
            call("gpt-4o", "gpt-4o"), call("fail-model", "", tokens=False), agent(),
        ], capture


def test_openinference_fixture() -> None:
    batch = load("openinference/http-protobuf.pb")
    cols = processor().process(batch)
    template = "Should I take an umbrella in {city}?"
    digest = hashlib.sha256(template.encode()).hexdigest()
    # OpenInference names no prompt here: the template is registered under its content hash.
    tool_flow = {"session_id": "sess-42", "user_id": "user-7", "prompt_version": "v3",
                 "prompt_name": f"template-{digest[:12]}"}
    assert without_names(rows(batch, cols)) == [
        call("gpt-4o-mini", "gpt-4o-mini-2024-07-18", cached=8, reasoning=5),
        call("gpt-4o", "gpt-4o", cached=8, reasoning=5),
        call("gpt-4o", "gpt-4o", cached=8, reasoning=5, **tool_flow),
        call("gpt-4o", "gpt-4o", cached=8, reasoning=5, **tool_flow),
        call("fail-model", "", tokens=False),
        agent(),
    ]
    assert cols.prompt_template[2] == template
    assert (cols.prompt_template_hash[2], cols.prompt_source[2]) == (digest, "OpenInference")
    assert json.loads(cols.prompt_variables[2]) == {"city": "Paris"}
    assert cols.prompt_source[0] == cols.prompt_template_hash[0] == "", "no prompt, no link"


def test_mlflow_fixture() -> None:
    batch = load("mlflow/http-protobuf.pb")
    cols = processor().process(batch)
    # MLflow keeps the cached count in its usage but the reasoning count only in the span
    # outputs' raw usage; the provider comes from its message-format hint; values arrive
    # JSON-encoded ("\"gpt-4o\"").
    assert without_names(rows(batch, cols)) == [
        call("gpt-4o-mini", "gpt-4o-mini-2024-07-18", cached=8, reasoning=5),
        call("gpt-4o", "gpt-4o", cached=8, reasoning=5),
        call("gpt-4o", "gpt-4o", cached=8, reasoning=5),
        call("gpt-4o", "gpt-4o", cached=8, reasoning=5),
        agent(),
        call("fail-model", "", tokens=False),
    ]


def test_vercel_ai_fixture_counts_usage_on_the_call_not_its_wrapper() -> None:
    batch = load("otel-js-vercel-ai-style/http-json.otlp.json")
    got = rows(batch, processor().process(batch))
    assert got[0] == {"name": "ai.generateText.doGenerate", **call("gpt-4o-mini", "gpt-4o-mini-2024-07-18")}
    wrapper = got[1]
    assert wrapper["name"] == "ai.generateText"
    assert wrapper["span_kind"] == "chain" and wrapper["user_id"] == "user-11"
    assert wrapper["input_tokens"] is None and wrapper["total_tokens"] is None, "usage would be counted twice"


def test_messages_are_extracted_from_every_fixture_llm_span() -> None:
    for relative in ("mlflow/http-protobuf.pb", "openinference/http-protobuf.pb", "otel-genai-openai-v2/grpc.pb",
                     "otel-js-vercel-ai-style/http-json.otlp.json"):
        batch = load(relative)
        cols = processor().process(batch)
        first = cols.input_messages[0]
        assert first, relative
        assert any("Paris" in m.content or "concise" in m.content for m in first), (relative, first)
        assert cols.output_messages[0] and cols.output_messages[0][0].role == "assistant", relative


def test_messages_are_read_only_where_usage_is_missing_by_default() -> None:
    messages = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "Hi"}]}]),
                "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [
                    {"type": "text", "content": "Hello"}]}])}
    default = {"messages_only_without_usage": True}
    reported = one({**messages, "gen_ai.usage.input_tokens": 3, "gen_ai.usage.output_tokens": 2}, **default)
    assert reported["input_messages"] is None and reported["output_messages"] is None
    half = one({**messages, "gen_ai.usage.input_tokens": 3}, **default)
    assert half["input_messages"] is None and [m.content for m in half["output_messages"]] == ["Hello"]
    missing = one(messages, **default)
    assert [m.content for m in missing["input_messages"]] == ["Hi"]


def test_original_attributes_are_untouched() -> None:
    batch = load("openinference/http-protobuf.pb")
    before = batch.request.SerializeToString()
    processor().process(batch)
    assert batch.request.SerializeToString() == before


# --------------------------------------------------------------------------- hand-built spans


def one(attrs: dict[str, Any], *, resource: dict[str, Any] | None = None, events: list[Span.Event] | None = None,
        name: str = "s", **config: Any) -> dict[str, Any]:
    span = Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name=name, attributes=key_values(attrs),
                events=events or [])
    rs = ResourceSpans(resource={"attributes": key_values(resource or {})}, scope_spans=[ScopeSpans(spans=[span])])
    batch = TraceBatch.from_request(ExportTraceServiceRequest(resource_spans=[rs]))
    cols = processor(**config).process(batch)
    row = rows(batch, cols)[0]
    row.update(input_messages=cols.input_messages[0], output_messages=cols.output_messages[0],
               input_cost=cols.input_cost_usd[0], output_cost=cols.output_cost_usd[0],
               total_cost=cols.total_cost_usd[0], cost_source=cols.cost_source[0],
               template=cols.prompt_template[0], variables=cols.prompt_variables[0],
               template_hash=cols.prompt_template_hash[0], prompt_source=cols.prompt_source[0])
    return row


def test_deprecated_otel_names_and_message_events() -> None:
    events = [Span.Event(name="gen_ai.user.message", attributes=key_values({"content": "hello there"})),
              Span.Event(name="gen_ai.choice", attributes=key_values({"message": json.dumps({"content": "hi!"})}))]
    row = one({"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4", "gen_ai.operation.name": "chat",
               "gen_ai.usage.prompt_tokens": 10, "gen_ai.usage.completion_tokens": 5}, events=events)
    assert (row["provider"], row["input_tokens"], row["output_tokens"], row["total_tokens"]) == ("openai", 10, 5, 15)
    assert [m.content for m in row["input_messages"]] == ["hello there"]
    assert [m.content for m in row["output_messages"]] == ["hi!"]


def test_openllmetry_legacy_and_current() -> None:
    legacy = one({"gen_ai.system": "Anthropic", "llm.request.type": "completion", "gen_ai.request.model": "claude-2",
                  "gen_ai.usage.prompt_tokens": 3, "gen_ai.usage.completion_tokens": 4, "llm.usage.total_tokens": 7,
                  "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "Hi",
                  "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.content": "Hello",
                  "traceloop.association.properties.session_id": "s1",
                  "traceloop.association.properties.user_id": "u1",
                  "traceloop.prompt.key": "greeting", "traceloop.prompt.version": 3,
                  "traceloop.prompt.template": "Say hi to {name}"})
    assert (legacy["provider"], legacy["operation"], legacy["span_kind"]) == ("anthropic", "text_completion", "llm")
    assert (legacy["input_tokens"], legacy["output_tokens"], legacy["total_tokens"]) == (3, 4, 7)
    assert (legacy["session_id"], legacy["user_id"]) == ("s1", "u1")
    assert (legacy["prompt_name"], legacy["prompt_version"], legacy["template"]) == ("greeting", "3",
                                                                                      "Say hi to {name}")
    assert [m.content for m in legacy["input_messages"]] == ["Hi"]
    current = one({"gen_ai.provider.name": "az.ai.openai", "gen_ai.operation.name": "chat",
                   "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 9,
                   "gen_ai.usage.cache_read_input_tokens": 4, "gen_ai.usage.reasoning_tokens": 2,
                   "traceloop.span.kind": "task"})
    assert (current["provider"], current["span_kind"]) == ("azure.ai.openai", "llm")
    assert (current["cached_input_tokens"], current["reasoning_tokens"]) == (4, 2)


def test_langfuse_usage_is_converted_to_otel_semantics_and_cost_is_reported() -> None:
    row = one({"langfuse.observation.type": "generation", "langfuse.observation.model.name": "claude-sonnet-4",
               "langfuse.observation.usage_details": json.dumps({"input": 100, "input_cached_tokens": 30,
                                                                 "output": 20, "output_reasoning_tokens": 5,
                                                                 "total": 155}),
               "langfuse.observation.cost_details": json.dumps({"input": 0.0003, "output": 0.0004, "total": 0.0007}),
               "langfuse.session.id": "lf-s", "langfuse.user.id": "lf-u",
               "langfuse.observation.prompt.name": "support-answer", "langfuse.observation.prompt.version": 4})
    # Langfuse counts input without cache and output without reasoning; OTel includes them.
    assert (row["input_tokens"], row["cached_input_tokens"], row["output_tokens"], row["reasoning_tokens"],
            row["total_tokens"]) == (130, 30, 25, 5, 155)
    assert (row["span_kind"], row["operation"], row["request_model"]) == ("llm", "chat", "claude-sonnet-4")
    assert (row["input_cost"], row["output_cost"], row["total_cost"], row["cost_source"]) == (
        Decimal("0.0003"), Decimal("0.0004"), Decimal("0.0007"), "reported")
    assert (row["session_id"], row["user_id"], row["prompt_name"], row["prompt_version"]) == (
        "lf-s", "lf-u", "support-answer", "4")


def test_litellm_callback_spans() -> None:
    row = one({"gen_ai.system": "bedrock", "gen_ai.request.model": "anthropic.claude-3-haiku",
               "gen_ai.operation.name": "chat", "gen_ai.usage.prompt_tokens": 11,
               "gen_ai.usage.completion_tokens": 6, "llm.usage.total_tokens": 17, "gen_ai.cost.input_cost": 0.001,
               "gen_ai.cost.output_cost": 0.002, "gen_ai.cost.total_cost": 0.003, "llm.user": "alice",
               "llm.is_streaming": "False"})
    assert (row["provider"], row["input_tokens"], row["total_tokens"], row["user_id"]) == ("aws.bedrock", 11, 17,
                                                                                          "alice")
    assert (row["total_cost"], row["cost_source"]) == (Decimal("0.003"), "reported")


def test_pydantic_ai_and_logfire() -> None:
    row = one({"gen_ai.system": "openai", "gen_ai.provider.name": "openai", "gen_ai.operation.name": "chat",
               "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 50, "gen_ai.usage.output_tokens": 8,
               "gen_ai.usage.details.reasoning_tokens": 3, "gen_ai.usage.details.cache_read_tokens": 20,
               "operation.cost": 0.0012, "gen_ai.conversation.id": "conv-1",
               "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "q"}]}]),
               "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "be brief"}])})
    assert (row["reasoning_tokens"], row["cached_input_tokens"], row["session_id"]) == (3, 20, "conv-1")
    assert (row["total_cost"], row["cost_source"]) == (Decimal("0.0012"), "reported")
    assert [(m.role, m.content) for m in row["input_messages"]] == [("system", "be brief"), ("user", "q")]
    agent_run = one({"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "a",
                     "gen_ai.aggregated_usage.input_tokens": 500})
    assert agent_run["input_tokens"] is None, "aggregated usage would count every call twice"


def test_vercel_ai_v5_usage_names() -> None:
    row = one({"ai.operationId": "ai.streamText.doStream", "ai.model.provider": "anthropic.messages",
               "ai.model.id": "claude-sonnet-4-20250514", "ai.usage.inputTokens": 12, "ai.usage.outputTokens": 9,
               "ai.usage.cachedInputTokens": 4, "ai.usage.reasoningTokens": 2, "ai.usage.totalTokens": 21,
               "ai.telemetry.metadata.sessionId": "v-s",
               "ai.telemetry.metadata.langfusePrompt": json.dumps({"name": "p", "version": 2})})
    assert (row["provider"], row["span_kind"], row["operation"]) == ("anthropic", "llm", "chat")
    assert (row["input_tokens"], row["cached_input_tokens"], row["reasoning_tokens"], row["total_tokens"]) == (
        12, 4, 2, 21)
    assert (row["session_id"], row["prompt_name"], row["prompt_version"]) == ("v-s", "p", "2")


def test_mlflow_linked_prompts_and_reported_cost() -> None:
    row = one({"mlflow.spanType": json.dumps("LLM"), "mlflow.llm.provider": json.dumps("anthropic"),
               "mlflow.llm.model": json.dumps("claude-3-5-sonnet"),
               "mlflow.linkedPrompts": json.dumps([{"name": "qa", "version": "7"}]),
               "mlflow.llm.cost": json.dumps({"input_cost": 0.01, "output_cost": 0.02, "total_cost": 0.03})})
    assert (row["provider"], row["span_kind"], row["prompt_name"], row["prompt_version"]) == (
        "anthropic", "llm", "qa", "7")
    assert (row["total_cost"], row["cost_source"]) == (Decimal("0.03"), "reported")


def test_mlflow_linked_prompts_from_the_trace_tag_on_the_root_span() -> None:
    # Over OTLP, MLflow trace tags travel as root-span attributes prefixed mlflow.traceTag.
    row = one({"mlflow.spanType": json.dumps("CHAIN"),
               "mlflow.traceTag.mlflow.linkedPrompts": json.dumps([{"name": "0001.explain_code", "version": "2"}])})
    assert (row["prompt_name"], row["prompt_version"], row["prompt_source"]) == ("0001.explain_code", "2", "MLflow")


POML_SOURCE = ('<poml> <task>You are a senior Python developer. Please explain the code.</task> '
               '<code inline="false"> <document src="{{ code_path }}" parser="txt" /> </code> </poml>')


def poml_span_attributes(function_name: str = "poml") -> dict[str, Any]:
    """What POML's MLflow backend records: an @mlflow.trace function `poml(prompt, context, stylesheet)`."""
    return {"mlflow.spanType": json.dumps("UNKNOWN"), "mlflow.spanFunctionName": json.dumps(function_name),
            "mlflow.spanInputs": json.dumps({"prompt": POML_SOURCE, "context": {"code_path": "sample.py"},
                                             "stylesheet": None}),
            "mlflow.spanOutputs": json.dumps({"messages": [{"speaker": "human", "content": "# Task"}]})}


def test_poml_span_links_its_source_as_a_template() -> None:
    row = one(poml_span_attributes(), name="poml")
    digest = hashlib.sha256(POML_SOURCE.encode()).hexdigest()
    assert (row["template"], row["template_hash"], row["prompt_source"]) == (POML_SOURCE, digest, "POML")
    # POML puts its registry name (`0001.explain_code`) nowhere on the span: named by content.
    assert (row["prompt_name"], row["prompt_version"]) == (f"poml-{digest[:12]}", "")
    assert json.loads(row["variables"]) == {"code_path": "sample.py"}


def test_a_prompt_argument_of_another_traced_function_is_not_a_template() -> None:
    row = one(poml_span_attributes(function_name="ask"), name="ask")
    assert row["template"] == row["prompt_name"] == row["prompt_source"] == ""


def test_named_prompt_with_template_keeps_its_name_and_hashes_the_template() -> None:
    row = one({"traceloop.prompt.key": "greeting", "traceloop.prompt.template": "Say hi to {name}",
               "gen_ai.request.model": "gpt-4o"})
    assert (row["prompt_name"], row["prompt_version"], row["prompt_source"]) == ("greeting", "", "OpenLLMetry / Traceloop")
    assert row["template_hash"] == hashlib.sha256(b"Say hi to {name}").hexdigest()


@pytest.mark.parametrize(("attrs", "field", "expected"), [
    # Current OTel wins over the deprecated name on the same span...
    ({"gen_ai.provider.name": "anthropic", "gen_ai.system": "openai"}, "provider", "anthropic"),
    # ...and over OpenInference, which wins over MLflow.
    ({"gen_ai.usage.input_tokens": 5, "llm.token_count.prompt": 6,
      "mlflow.chat.tokenUsage": json.dumps({"input_tokens": 7})}, "input_tokens", 5),
    ({"llm.token_count.prompt": 6, "mlflow.chat.tokenUsage": json.dumps({"input_tokens": 7})}, "input_tokens", 6),
    # A lower-ranked dialect fills what the higher one left empty.
    ({"gen_ai.usage.input_tokens": 5, "llm.token_count.prompt_details.cache_read": 2}, "cached_input_tokens", 2),
    ({"gen_ai.response.model": "gpt-4o-2024-08-06", "llm.model_name": "gpt-4o"}, "response_model",
     "gpt-4o-2024-08-06"),
    ({"gen_ai.conversation.id": "otel", "session.id": "oi", "langfuse.session.id": "lf"}, "session_id", "otel"),
])
def test_precedence_on_mixed_dialect_spans(attrs: dict[str, Any], field: str, expected: Any) -> None:
    assert one(attrs)[field] == expected


def test_session_and_user_fall_back_to_resource_attributes() -> None:
    row = one({"gen_ai.operation.name": "chat"}, resource={"session.id": "r-s", "user.id": "r-u"})
    assert (row["session_id"], row["user_id"]) == ("r-s", "r-u")
    assert one({"gen_ai.operation.name": "chat"}, resource={"session.id": "r-s"}, resource_fallback=False)[
        "session_id"] == ""


def test_unknown_convention_invents_nothing() -> None:
    row = one({"http.method": "GET", "db.system": "postgresql", "model": 3, "total": "many"})
    assert all(row[f] in ("", None) for f in FIELDS), row
    assert row["cost_source"] == "" and row["input_messages"] is None


def test_odd_values_are_ignored_not_fatal() -> None:
    row = one({"gen_ai.usage.input_tokens": "not a number", "gen_ai.usage.output_tokens": -3,
               "llm.token_count.total": 1.5, "mlflow.chat.tokenUsage": "{broken json",
               "gen_ai.input.messages": "{'python': 'repr'}", "gen_ai.operation.name": "chat"})
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (None, None, None)


def test_columns_survive_the_batch_processor_merge() -> None:
    first, second = load("openinference/http-protobuf.pb"), load("mlflow/http-protobuf.pb")
    processor().process(first)
    processor().process(second)
    merged = TraceBatch.merge([first, second])
    

    cols = merged.genai
    assert cols is not None and cols.size == merged.span_count == 12
    assert [s.name for _, _, s in merged.iter_spans()][5:7] == ["umbrella-advisor", "Completions"]
    assert cols.reasoning_tokens[0] == 5 and cols.reasoning_tokens[6] == 5  # OpenInference, then MLflow
    assert cols.reasoning_tokens[5] is None  # the MLflow agent span
    unnormalized = TraceBatch.merge([first, load("mlflow/http-protobuf.pb")])
    assert unnormalized.genai is None, "columns that no longer line up with the spans are dropped"


def test_openinference_tool_calls_in_flattened_output_messages() -> None:
    batch = load("openinference/http-protobuf.pb")
    cols = processor().process(batch)
    def carrying(prefix: str) -> list[int]:
        return [i for i, (_, _, s) in enumerate(batch.iter_spans())
                if any(kv.key.startswith(prefix) and kv.key.endswith("tool_call.function.name") for kv in s.attributes)]

    [tool_choice] = carrying("llm.output_messages")
    [message] = cols.output_messages[tool_choice] or []
    assert message.role == "assistant"
    assert [call["name"] for call in message.tool_calls] == ["get_weather"]
    assert json.loads(message.tool_calls[0]["arguments"]) == {"location": "Paris"}
    [follow_up] = carrying("llm.input_messages")  # the call that got the tool's result
    history = cols.input_messages[follow_up] or []
    assert [m.role for m in history] == ["user", "assistant", "tool"]
    assert history[1].tool_calls[0]["name"] == "get_weather"
