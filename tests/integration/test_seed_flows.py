"""Exact numbers from the seed flows, end to end: the real client libraries (mlflow + dspy,
mlflow + litellm, litellm's OTel callback, mlflow + openai) against tests/fake_llm.py
(42 in / 17 out / 59 total, 8 cached, 5 reasoning per call), exporting over OTLP/HTTP to
a real all-in-one; what the query API then serves must be what the libraries reported."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import httpx
import pytest
from client_flows import REASONING_TOKENS, run_flow
from fake_llm import FakeLLM, serve_fake_llm
from genai_helpers import batch_of, span

from allinone import AllInOne

# gpt-4o-mini, USD per million tokens (input, cached input, output).
IN, CACHED, OUT = Decimal("0.15"), Decimal("0.075"), Decimal("0.60")
START = "2020-01-01T00:00:00Z"


def mini_cost(inp: int, out: int, cached: int = 0) -> float:
    return float(((inp - cached) * IN + cached * CACHED + out * OUT) / 1_000_000)


FLOWS = {"dspy-two-calls": "seed-dspy", "mlflow-litellm": "seed-mlflow-litellm",
         "litellm-otel": "seed-litellm-otel", "mlflow-openai": "seed-openai"}


@pytest.fixture(scope="module")
def flows(all_in_one: AllInOne) -> dict[str, dict[str, Any]]:
    """Every flow run once, side by side (each spends seconds importing its libraries);
    flow name -> its one trace, read back through the query API."""
    with serve_fake_llm(FakeLLM(reasoning_tokens=REASONING_TOKENS)) as llm, ThreadPoolExecutor(len(FLOWS)) as pool:
        for done in [pool.submit(run_flow, name, f"{all_in_one.otlp_http}/v1/traces", llm.base_url, service=service)
                     for name, service in FLOWS.items()]:
            done.result()
    return {name: read_trace(all_in_one, service) for name, service in FLOWS.items()}


def read_trace(server: AllInOne, service: str) -> dict[str, Any]:
    with httpx.Client(base_url=server.query, timeout=30) as client:
        deadline = time.monotonic() + 20
        while True:  # the exporter had its answer after the insert: normally found at once
            rows = client.get("/api/v1/traces", params={"service": service, "start": START}).json()["traces"]
            if rows or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert len(rows) == 1, rows
        trace: dict[str, Any] = client.get(f"/api/v1/traces/{rows[0]['trace_id']}").json()
    trace["summary"] = rows[0]
    return trace


def metrics(server: AllInOne, **params: str) -> dict[str, Any]:
    resp = httpx.get(f"{server.query}/api/v1/metrics/genai", params={"start": START, **params}, timeout=30)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def spans_named(trace: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [s for s in trace["spans"] if s["name"] == name]


def test_dspy_under_mlflow_autolog(all_in_one: AllInOne, flows: dict[str, dict[str, Any]]) -> None:
    trace = flows["dspy-two-calls"]
    totals = trace["totals"]
    assert (totals["input_tokens"], totals["output_tokens"], totals["total_tokens"]) == (84, 34, 118)
    summary = trace["summary"]
    assert (summary["input_tokens"], summary["output_tokens"]) == (84, 34)
    assert totals["total_cost_usd"] == pytest.approx(mini_cost(84, 34))

    (root,) = spans_named(trace, "TwoSteps.forward")
    assert root["genai"]["usage_scope"] == "aggregate"
    for call in spans_named(trace, "LM.__call__"):
        assert call["genai"]["usage_scope"] == "in_aggregate" and call["genai"]["input_tokens"] is None
        assert not call["genai"]["tokens_estimated"]

    usage = metrics(all_in_one, service="seed-dspy")["totals"]
    assert usage["requests"] == 2, "two LM calls; neither the root nor Predict.forward is one"
    assert (usage["input_tokens"], usage["output_tokens"], usage["total_tokens"]) == (84, 34, 118)
    assert (usage["errors"], usage["unpriced_requests"], usage["estimated_requests"]) == (0, 0, 0)
    assert usage["cost_usd"] == pytest.approx(mini_cost(84, 34))

    (series,) = metrics(all_in_one, service="seed-dspy", group_by="provider,model")["series"]
    assert series["group"]["provider"] == "openai" and series["group"]["model"] == "gpt-4o-mini"
    assert (series["totals"]["requests"], series["totals"]["input_tokens"]) == (2, 84)


@pytest.mark.parametrize(("flow", "call_name"), [("mlflow-litellm", "litellm-completion"),
                                                 ("litellm-otel", "litellm_request")])
def test_litellm_reported_cost_and_detail_counts(all_in_one: AllInOne, flows: dict[str, dict[str, Any]], flow: str,
                                                 call_name: str) -> None:
    service, trace = FLOWS[flow], flows[flow]
    (call,) = spans_named(trace, call_name)
    genai = call["genai"]
    assert genai["response_model"] == "gpt-4o-mini-2024-07-18"
    assert (genai["input_tokens"], genai["output_tokens"], genai["cached_input_tokens"],
            genai["reasoning_tokens"]) == (42, 17, 8, REASONING_TOKENS)
    assert genai["cost_source"] == "reported" and genai["total_cost_usd"] == pytest.approx(1.59e-05)

    usage = metrics(all_in_one, service=service)["totals"]
    assert (usage["requests"], usage["input_tokens"], usage["output_tokens"]) == (1, 42, 17)
    assert (usage["cached_input_tokens"], usage["reasoning_tokens"]) == (8, REASONING_TOKENS)
    assert usage["cost_usd"] == pytest.approx(1.59e-05)


def test_openai_under_mlflow_autolog_reasoning_count(all_in_one: AllInOne, flows: dict[str, dict[str, Any]]) -> None:
    (call,) = spans_named(flows["mlflow-openai"], "Completions")
    assert call["genai"]["reasoning_tokens"] == REASONING_TOKENS
    usage = metrics(all_in_one, service="seed-openai")["totals"]
    assert (usage["requests"], usage["input_tokens"], usage["output_tokens"]) == (1, 42, 17)
    assert (usage["cached_input_tokens"], usage["reasoning_tokens"]) == (8, REASONING_TOKENS)
    assert usage["cost_usd"] == pytest.approx(mini_cost(42, 17, cached=8))


def test_search_by_the_provider_name_the_client_sent(all_in_one: AllInOne) -> None:
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.system": "google", "gen_ai.request.model": "gemini-1.5-flash",
             "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 2}
    now = time.time_ns()
    body = batch_of([span(0xABC, 1, now, attrs)], service="seed-google").request.SerializeToString()
    resp = httpx.post(f"{all_in_one.otlp_http}/v1/traces", content=body,
                      headers={"content-type": "application/x-protobuf"}, timeout=30)
    assert resp.status_code == 200, resp.text
    for provider in ("google", "gcp.gen_ai", "Google"):
        rows = httpx.get(f"{all_in_one.query}/api/v1/traces", timeout=30,
                         params={"service": "seed-google", "provider": provider, "start": START}).json()["traces"]
        assert len(rows) == 1, provider
        usage = metrics(all_in_one, service="seed-google", provider=provider)["totals"]
        assert (usage["requests"], usage["input_tokens"]) == (1, 10), provider


def test_search_by_the_model_name_the_client_sent_with_its_provider_prefix(all_in_one: AllInOne) -> None:
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "anthropic/claude-3-5-haiku",
             "gen_ai.usage.input_tokens": 7, "gen_ai.usage.output_tokens": 3}
    body = batch_of([span(0xABD, 1, time.time_ns(), attrs)], service="seed-prefixed").request.SerializeToString()
    resp = httpx.post(f"{all_in_one.otlp_http}/v1/traces", content=body,
                      headers={"content-type": "application/x-protobuf"}, timeout=30)
    assert resp.status_code == 200, resp.text
    # Stored as provider `anthropic`, model `claude-3-5-haiku`; found by either spelling.
    for model in ("anthropic/claude-3-5-haiku", "claude-3-5-haiku"):
        rows = httpx.get(f"{all_in_one.query}/api/v1/traces", timeout=30,
                         params={"service": "seed-prefixed", "model": model, "start": START}).json()["traces"]
        assert len(rows) == 1, model
        usage = metrics(all_in_one, service="seed-prefixed", model=model)["totals"]
        assert (usage["requests"], usage["input_tokens"]) == (1, 7), model
    assert httpx.get(f"{all_in_one.query}/api/v1/traces", timeout=30, params={
        "service": "seed-prefixed", "model": "openai/claude-3-5-haiku-x", "start": START}).json()["traces"] == []
