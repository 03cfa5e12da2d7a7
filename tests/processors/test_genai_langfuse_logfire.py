"""What tracehouse reads from the Langfuse and Logfire SDKs: their real payloads
(tests/fixtures/sdk/langfuse, tests/fixtures/sdk/logfire; see its README) through
genai_normalize alone and through normalize -> tokens -> cost, and the shapes of Langfuse's
usage object (processors/genai_normalize/langfuse.py).

Both payloads were made against tests/fake_llm.py: usage 42 prompt (8 of them cached) /
17 completion / 59 total tokens. gpt-4o-mini's list price (USD per million tokens): input
0.15, cached input 0.075, output 0.60, written here independently of the price table.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from genai_helpers import enrich
from tracehouse.core.component import ComponentID, Kind, Settings
from tracehouse.core.genai import GenAIColumns
from tracehouse.core.pdata import TraceBatch
from tracehouse.core.testing import TracesSink
from tracehouse.processors.genai_normalize.config import GenAINormalizeConfig
from tracehouse.processors.genai_normalize.langfuse import langfuse_usage
from tracehouse.processors.genai_normalize.processor import NormalizeProcessor

SDK_FIXTURES = Path(__file__).parents[1] / "fixtures" / "sdk"
LANGFUSE = "langfuse/http-protobuf.pb"
LOGFIRE = "logfire/http-protobuf.pb"
M = Decimal(1_000_000)
GPT_4O_MINI_COST = ((42 - 8) * Decimal("0.15") + 8 * Decimal("0.075")) / M, 17 * Decimal("0.60") / M
FIELDS = ("provider", "operation", "span_kind", "request_model", "response_model", "input_tokens", "output_tokens",
          "cached_input_tokens", "reasoning_tokens", "total_tokens", "session_id", "user_id", "input_cost_usd",
          "output_cost_usd", "total_cost_usd", "cost_source", "tokens_estimated")


def load_batch(relative: str) -> TraceBatch:
    return TraceBatch.from_bytes((SDK_FIXTURES / relative).read_bytes())


def by_name(batch: TraceBatch, cols: GenAIColumns) -> dict[str, dict[str, Any]]:
    return {span.name: {f: getattr(cols, f)[i] for f in FIELDS} | {"i": i}
            for i, (_, _, span) in enumerate(batch.iter_spans())}


def normalized(relative: str, **config: Any) -> tuple[TraceBatch, GenAIColumns]:
    batch = load_batch(relative)
    proc = NormalizeProcessor(Settings(ComponentID("genai_normalize"), Kind.PROCESSOR),
                              GenAINormalizeConfig(**config), TracesSink())
    return batch, proc.process(batch)


# --- Langfuse ----------------------------------------------------------------------------


def test_langfuse_openai_generation_reads_openais_usage_object() -> None:
    batch, cols = normalized(LANGFUSE)
    spans = by_name(batch, cols)
    openai = spans["OpenAI-generation"]
    # `langfuse.openai` passes OpenAI's usage on unchanged (prompt_tokens incl. the 8 cached).
    assert (openai["input_tokens"], openai["output_tokens"], openai["total_tokens"],
            openai["cached_input_tokens"], openai["reasoning_tokens"]) == (42, 17, 59, 8, 0)
    # The model is the response's (the SDK records what OpenAI answered with); no provider is sent.
    assert (openai["span_kind"], openai["operation"], openai["request_model"], openai["provider"]) == (
        "llm", "chat", "gpt-4o-mini-2024-07-18", "")
    assert (openai["session_id"], openai["user_id"]) == ("lf-session", "lf-user")
    assert openai["total_cost_usd"] is None  # the integration reports no cost: genai_cost computes it


def test_langfuse_generation_with_reported_cost_and_langfuse_usage_keys() -> None:
    batch, cols = normalized(LANGFUSE)
    priced = by_name(batch, cols)["priced-call"]
    assert (priced["span_kind"], priced["request_model"], priced["input_tokens"], priced["output_tokens"],
            priced["total_tokens"]) == ("llm", "gpt-4o", 42, 17, 59)
    assert (priced["input_cost_usd"], priced["output_cost_usd"], priced["total_cost_usd"], priced["cost_source"]) == (
        Decimal("0.000105"), Decimal("0.00017"), Decimal("0.000275"), "reported")


def test_langfuse_observe_span_is_a_chain_without_usage() -> None:
    batch, cols = normalized(LANGFUSE)
    root = by_name(batch, cols)["answer_question"]
    assert (root["span_kind"], root["operation"], root["input_tokens"], root["request_model"]) == (
        "chain", "", None, "")


def test_langfuse_messages_are_read_from_observation_input_and_output() -> None:
    batch, cols = normalized(LANGFUSE, messages_only_without_usage=False)
    i = by_name(batch, cols)["OpenAI-generation"]["i"]
    assert [(m.role, m.content) for m in cols.input_messages[i] or []] == [
        ("system", "You are a terse weather assistant."), ("user", "What should I wear in Paris?")]
    assert [(m.role, m.content) for m in cols.output_messages[i] or []] == [("assistant", "A deterministic answer.")]


async def test_langfuse_payload_through_the_genai_processors() -> None:
    batch = await enrich(load_batch(LANGFUSE))
    assert batch.genai is not None
    spans = by_name(batch, batch.genai)
    openai = spans["OpenAI-generation"]
    # Priced from the table by the dated model name, as reported usage (not estimated).
    assert (openai["input_cost_usd"], openai["output_cost_usd"]) == GPT_4O_MINI_COST
    assert (openai["cost_source"], openai["tokens_estimated"]) == ("computed", False)
    priced = spans["priced-call"]
    assert (priced["total_cost_usd"], priced["cost_source"]) == (Decimal("0.000275"), "reported")


# --- Logfire -----------------------------------------------------------------------------


def test_logfire_openai_span_speaks_current_otel_genai() -> None:
    batch, cols = normalized(LOGFIRE, messages_only_without_usage=False)
    spans = by_name(batch, cols)
    chat = spans["Chat Completion with {request_data[model]!r}"]
    assert (chat["provider"], chat["operation"], chat["span_kind"], chat["request_model"],
            chat["response_model"]) == ("openai", "chat", "llm", "gpt-4o-mini", "gpt-4o-mini-2024-07-18")
    assert (chat["input_tokens"], chat["output_tokens"], chat["total_tokens"], chat["cached_input_tokens"]) == (
        42, 17, 59, 8)
    # Logfire prices the call itself (`operation.cost`): kept as reported.
    assert (chat["total_cost_usd"], chat["cost_source"]) == (Decimal("0.0000159"), "reported")
    i = chat["i"]
    assert [(m.role, m.content) for m in cols.input_messages[i] or []] == [
        ("system", "You are a terse weather assistant."), ("user", "What should I wear in Paris?")]
    assert [(m.role, m.content) for m in cols.output_messages[i] or []] == [("assistant", "A deterministic answer.")]
    outer = spans["plan outfit"]
    assert (outer["span_kind"], outer["provider"], outer["input_tokens"]) == ("", "", None)


def test_logfires_own_price_equals_the_list_price() -> None:
    # Logfire's operation.cost for the call is what the list price gives: reported == computed.
    assert sum(GPT_4O_MINI_COST, Decimal(0)) == Decimal("0.0000159")


# --- Langfuse's usage object, every shape --------------------------------------------------


def usage(value: Any) -> dict[str, int | None]:
    text = value if isinstance(value, str) else json.dumps(value)
    return langfuse_usage({"langfuse.observation.usage_details": AnyValue(string_value=text)})


def test_langfuse_keys_are_converted_to_otel_semantics() -> None:
    assert usage({"input": 100, "input_cached_tokens": 30, "output": 20, "output_reasoning_tokens": 5,
                  "total": 155}) == {"input_tokens": 130, "output_tokens": 25, "cached_input_tokens": 30,
                                     "reasoning_tokens": 5, "total_tokens": 155}
    # Anthropic-style cache keys: reads and creations are input too.
    assert usage({"input": 10, "input_cache_read": 4, "input_cache_creation": 6, "output": 3}) == {
        "input_tokens": 20, "output_tokens": 3, "cached_input_tokens": 4, "reasoning_tokens": None,
        "total_tokens": None}


def test_openai_chat_usage_is_taken_as_openai_counts_it() -> None:
    assert usage({"prompt_tokens": 42, "completion_tokens": 17, "total_tokens": 59,
                  "prompt_tokens_details": {"cached_tokens": 8, "audio_tokens": 0},
                  "completion_tokens_details": {"reasoning_tokens": 5}}) == {
        "input_tokens": 42, "output_tokens": 17, "cached_input_tokens": 8, "reasoning_tokens": 5, "total_tokens": 59}
    # an embedding call: the SDK reduces it to {"input": n}
    assert usage({"input": 7})["input_tokens"] == 7


def test_openai_responses_usage_is_taken_as_openai_counts_it() -> None:
    assert usage({"input_tokens": 42, "output_tokens": 17, "total_tokens": 59,
                  "input_tokens_details": {"cached_tokens": 8}, "output_tokens_details": {"reasoning_tokens": 5}}) == {
        "input_tokens": 42, "output_tokens": 17, "cached_input_tokens": 8, "reasoning_tokens": 5, "total_tokens": 59}


@pytest.mark.parametrize("value", ["not json", "[1, 2]", {"unrelated": 3}, {"prompt_tokens": "many"},
                                   {"prompt_tokens_details": "x", "completion_tokens": 2}])
def test_unreadable_usage_is_ignored_not_failed(value: Any) -> None:
    got = usage(value)
    assert all(v is None for v in got.values()) or got == {"input_tokens": None, "output_tokens": 2,
                                                           "cached_input_tokens": None, "reasoning_tokens": None,
                                                           "total_tokens": None}


@pytest.mark.parametrize(("output", "expected"), [
    ({"role": "assistant", "content": "Hi."}, [("assistant", "Hi.", [])]),
    ({"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
     [("assistant", "", [{"name": "get_weather", "arguments": "{}"}])]),
    ("Plain text.", [("assistant", "Plain text.", [])]),
    ([{"role": "assistant", "content": "From a list."}], [("assistant", "From a list.", [])]),
])
def test_langfuse_output_shapes(output: Any, expected: list[tuple[str, str, list[dict[str, str]]]]) -> None:
    from tracehouse.processors.genai_normalize import messages

    attrs = {"langfuse.observation.output": AnyValue(string_value=json.dumps(output))}
    got = messages.first(messages.OUTPUT_EXTRACTORS, attrs)
    assert [(m.role, m.content, m.tool_calls) for m in got or []] == expected


@pytest.mark.parametrize("relative", [LANGFUSE, LOGFIRE])
def test_fixture_readable_decoding_is_the_same_message(relative: str) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from tracehouse.ingest.otlp.encoding import decode_json

    body = (SDK_FIXTURES / relative).read_bytes()
    decoded = (SDK_FIXTURES / relative).with_suffix(".decoded.json").read_bytes()
    assert decode_json(decoded) == ExportTraceServiceRequest.FromString(body)
