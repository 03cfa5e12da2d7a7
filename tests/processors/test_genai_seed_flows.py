"""The GenAI processors on what the seed flows' client libraries really send
(tests/fixtures/seed-flows/, captured from mlflow, dspy, litellm and openai against
tests/fake_llm.py: 42 in / 17 out / 59 total, 8 cached, 5 reasoning per call)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from client_flows import load_flow
from genai_helpers import batch_of, enrich, enrich_all, span

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tracehouse.core.pdata import TraceBatch
from tracehouse.processors.genai_normalize.values import python_literal

GPT_4O_MINI_IN, GPT_4O_MINI_OUT, GPT_4O_MINI_CACHED = Decimal("0.15"), Decimal("0.60"), Decimal("0.075")


def rows(batch: TraceBatch) -> dict[str, list[dict[str, Any]]]:
    """Span name -> the GenAI columns of the spans of that name, in order."""
    cols = batch.genai
    assert cols is not None
    out: dict[str, list[dict[str, Any]]] = {}
    for i, (_, _, sp) in enumerate(batch.iter_spans()):
        out.setdefault(sp.name, []).append({
            f: getattr(cols, f)[i] for f in (
                "provider", "span_kind", "operation", "request_model", "response_model", "input_tokens",
                "output_tokens", "cached_input_tokens", "reasoning_tokens", "total_tokens", "tokens_estimated",
                "total_cost_usd", "cost_source", "usage_scope")})
    return out


def is_request(row: dict[str, Any]) -> bool:
    """What the usage rollup counts as a request (migration 009's IsCall)."""
    return row["span_kind"] in ("llm", "embedding", "reranker") or (
        row["span_kind"] == "" and bool(row["request_model"] or row["response_model"]))


def totals(batch: TraceBatch) -> tuple[int, int]:
    cols = batch.genai
    assert cols is not None
    return (sum(v or 0 for v in cols.input_tokens), sum(v or 0 for v in cols.output_tokens))


async def flow(name: str) -> TraceBatch:
    (batch,) = await enrich_all(load_flow(name))
    return batch


def mini_cost(inp: int, out: int, cached: int = 0) -> Decimal:
    return ((inp - cached) * GPT_4O_MINI_IN + cached * GPT_4O_MINI_CACHED + out * GPT_4O_MINI_OUT) / 1_000_000


async def test_dspy_root_usage_is_the_trace_total_and_not_a_request() -> None:
    batch = await flow("dspy-two-calls")
    got = rows(batch)
    assert totals(batch) == (84, 34), "what DSPy reported, each token once"
    (root,) = got["TwoSteps.forward"]
    assert (root["input_tokens"], root["output_tokens"], root["total_tokens"]) == (84, 34, 118)
    assert root["usage_scope"] == "aggregate" and not is_request(root)
    # The calls below it share one model: the aggregate is priced as that model's usage.
    assert (root["provider"], root["request_model"]) == ("openai", "gpt-4o-mini")
    assert root["cost_source"] == "computed" and root["total_cost_usd"] == mini_cost(84, 34)
    calls = got["LM.__call__"]
    assert len(calls) == 2 and all(is_request(c) for c in calls)
    for call in calls:
        assert call["usage_scope"] == "in_aggregate"
        assert call["input_tokens"] is None and call["output_tokens"] is None, "not estimated on top of the total"
        assert not call["tokens_estimated"] and call["total_cost_usd"] is None


def split_off(batch: TraceBatch, names: set[str]) -> tuple[TraceBatch, TraceBatch]:
    """The batch as two requests: the spans not named in `names`, then those that are."""
    parts = []
    for keep in (lambda n: n not in names, lambda n: n in names):
        request = ExportTraceServiceRequest()
        request.CopyFrom(batch.request)
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                spans = [sp for sp in ss.spans if keep(sp.name)]
                del ss.spans[:]
                ss.spans.extend(spans)
        parts.append(TraceBatch.from_request(request))
    return parts[0], parts[1]


async def test_dspy_calls_exported_before_their_root_are_not_estimated_beside_its_aggregate() -> None:
    # MLflow exports spans as they end: the LM calls may go in a request before the root that
    # carries their total (seen in CI: 140 estimated tokens beside the root's 84).
    (whole,) = load_flow("dspy-two-calls")
    calls_first, root_after = await enrich_all(list(split_off(whole, {"TwoSteps.forward"})))
    calls = rows(calls_first)["LM.__call__"]
    assert len(calls) == 2
    for call in calls:
        assert call["usage_scope"] == "in_aggregate"
        assert call["input_tokens"] is None and not call["tokens_estimated"] and call["total_cost_usd"] is None
    assert totals(calls_first) == (0, 0)
    assert totals(root_after) == (84, 34), "the root's aggregate is the trace's usage, once"


async def test_an_mlflow_call_whose_whole_trace_came_with_it_is_still_estimated() -> None:
    # The same calls with their ancestors but no aggregate above them: nothing else will
    # count their tokens, so they are estimated.
    (whole,) = load_flow("dspy-two-calls")
    request = ExportTraceServiceRequest()
    request.CopyFrom(whole.request)
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            for sp in ss.spans:
                if sp.name == "TwoSteps.forward":
                    kept = [kv for kv in sp.attributes if "tokenUsage" not in kv.key]
                    del sp.attributes[:]
                    sp.attributes.extend(kept)
    (batch,) = await enrich_all([TraceBatch.from_request(request)])
    calls = rows(batch)["LM.__call__"]
    assert [c["usage_scope"] for c in calls] == ["", ""]
    assert all(c["tokens_estimated"] and c["input_tokens"] for c in calls)


async def test_dspy_predict_spans_are_not_model_requests() -> None:
    got = rows(await flow("dspy-two-calls"))
    for predict in got["Predict.forward"]:  # typed LLM by MLflow, no model, no usage
        assert not is_request(predict)
        assert predict["span_kind"] == "chain" and predict["operation"] == ""
        assert predict["input_tokens"] is None and predict["total_cost_usd"] is None
    requests = [r for spans in got.values() for r in spans if is_request(r)]
    assert len(requests) == 2 and {r["request_model"] for r in requests} == {"gpt-4o-mini"}


async def test_dspy_single_predict_root_carries_the_call_usage() -> None:
    batch = await flow("dspy-predict")
    got = rows(batch)
    assert totals(batch) == (42, 17)
    (root,) = got["Predict.forward"]
    assert root["usage_scope"] == "aggregate" and not is_request(root)
    (call,) = got["LM.__call__"]
    assert is_request(call) and call["usage_scope"] == "in_aggregate" and call["input_tokens"] is None


async def test_usage_repeated_by_a_wrapper_is_counted_once() -> None:
    """A chain whose calls report their own usage repeats it: the calls' counts win."""
    usage = '{"input_tokens": 42, "output_tokens": 17, "total_tokens": 59}'
    chain = span(1, 1, 1_000, {"mlflow.spanType": '"CHAIN"', "mlflow.chat.tokenUsage":
                               '{"input_tokens": 84, "output_tokens": 34, "total_tokens": 118}'}, name="root")
    calls = [span(1, n, 2_000, {"mlflow.spanType": '"CHAT_MODEL"', "model": '"gpt-4o-mini"',
                                "mlflow.chat.tokenUsage": usage}, parent=1, name="llm") for n in (2, 3)]
    batch = await enrich(batch_of([chain, *calls]))
    got = rows(batch)
    assert totals(batch) == (84, 34)
    (root,) = got["root"]
    assert root["usage_scope"] == "repeated" and root["input_tokens"] is None and root["total_cost_usd"] is None
    assert [c["usage_scope"] for c in got["llm"]] == ["", ""]
    assert [c["total_cost_usd"] for c in got["llm"]] == [mini_cost(42, 17)] * 2


async def test_aggregate_over_different_models_keeps_its_usage_unattributed() -> None:
    chain = span(1, 1, 1_000, {"mlflow.spanType": '"CHAIN"', "mlflow.chat.tokenUsage":
                               '{"input_tokens": 84, "output_tokens": 34}'}, name="root")
    calls = [span(1, n, 2_000, {"mlflow.spanType": '"CHAT_MODEL"', "model": f'"{model}"'}, parent=1, name="llm")
             for n, model in ((2, "gpt-4o-mini"), (3, "gpt-4o"))]
    got = rows(await enrich(batch_of([chain, *calls])))
    (root,) = got["root"]
    assert root["usage_scope"] == "aggregate" and root["request_model"] == "" and root["total_cost_usd"] is None
    assert [c["usage_scope"] for c in got["llm"]] == ["in_aggregate"] * 2


async def test_mlflow_litellm_keeps_the_reported_cost_and_reads_the_raw_response() -> None:
    got = rows(await flow("mlflow-litellm"))
    (call,) = got["litellm-completion"]
    assert call["cost_source"] == "reported" and call["total_cost_usd"] == Decimal("0.0000159")
    assert call["response_model"] == "gpt-4o-mini-2024-07-18"
    assert (call["input_tokens"], call["output_tokens"], call["cached_input_tokens"],
            call["reasoning_tokens"]) == (42, 17, 8, 5)


async def test_litellm_otel_callback_detail_counts_come_from_its_usage_object() -> None:
    got = rows(await flow("litellm-otel"))
    (call,) = got["litellm_request"]
    assert (call["provider"], call["request_model"], call["response_model"]) == (
        "openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18")
    assert (call["input_tokens"], call["output_tokens"], call["cached_input_tokens"],
            call["reasoning_tokens"]) == (42, 17, 8, 5)
    assert call["cost_source"] == "reported" and call["total_cost_usd"] == Decimal("0.0000159")
    (raw,) = got["raw_gen_ai_request"]
    assert not is_request(raw) and raw["input_tokens"] is None


async def test_mlflow_openai_reasoning_count_comes_from_the_span_outputs() -> None:
    (call,) = rows(await flow("mlflow-openai"))["Completions"]
    assert (call["cached_input_tokens"], call["reasoning_tokens"]) == (8, 5)
    assert call["total_cost_usd"] == mini_cost(42, 17, cached=8)


@pytest.mark.parametrize(("model", "provider", "bare"), [
    ("openai/gpt-4o-mini", "openai", "gpt-4o-mini"),
    ("anthropic/claude-3-5-sonnet-20240620", "anthropic", "claude-3-5-sonnet-20240620"),
    ("azure/gpt-4o", "azure.ai.openai", "gpt-4o"),
    ("bedrock/anthropic.claude-3-haiku-20240307-v1:0", "aws.bedrock", "anthropic.claude-3-haiku-20240307-v1:0"),
    ("vertex_ai/gemini-1.5-pro", "gcp.vertex_ai", "gemini-1.5-pro"),
    ("gemini/gemini-1.5-flash", "gcp.gemini", "gemini-1.5-flash"),
])
async def test_provider_prefixed_models_are_split_and_priced(model: str, provider: str, bare: str) -> None:
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.request.model": model,
             "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 100}
    (row,) = rows(await enrich(batch_of([span(1, 1, 1_000, attrs)])))["chat"]
    assert (row["provider"], row["request_model"]) == (provider, bare)
    assert row["cost_source"] == "computed" and row["total_cost_usd"] > 0, "priced"


async def test_a_provider_attribute_wins_over_the_prefix_and_other_slashes_stay() -> None:
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.system": "openrouter",
             "gen_ai.request.model": "meta-llama/llama-3-8b-instruct", "gen_ai.usage.input_tokens": 10}
    (row,) = rows(await enrich(batch_of([span(1, 1, 1_000, attrs)])))["chat"]
    assert (row["provider"], row["request_model"]) == ("openrouter", "meta-llama/llama-3-8b-instruct")


def test_python_reprs_are_read_without_running_code() -> None:
    assert python_literal("{'a': 1, 'b': None, 'c': [True]}") == {"a": 1, "b": None, "c": [True]}
    assert python_literal("{'a': __import__('os').getpid()}") == "{'a': __import__('os').getpid()}"
    assert python_literal("{" * 20_000) == "{" * 20_000  # too long: left as text
