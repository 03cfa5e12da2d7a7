"""The real Langfuse and Logfire SDKs send to a running all-in-one with API keys.

- Langfuse (v3+) is pointed at tracehouse as if it were a Langfuse server: LANGFUSE_HOST is
  the OTLP/HTTP listener, so it posts to `/api/public/otel/v1/traces` (an alias in
  deploy/config/all-in-one-secure.yaml) with `Authorization: Basic base64(public:secret)`;
  the secret key is a tracehouse ingest key and decides the tenant.
- Logfire is pointed at tracehouse through the standard OTel environment
  (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT and OTEL_EXPORTER_OTLP_HEADERS).

Each app runs as a subprocess (both SDKs keep global state and export threads) and calls
tests/fake_llm.py through `langfuse.openai` / `logfire.instrument_openai()`: usage 42
prompt (8 cached) / 17 completion tokens. The query API must show the spans under the key's
tenant, and only there, with the GenAI fields read from each SDK's attribute convention.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from allinone import CONFIGS, AllInOne
from fake_llm import FakeLLM, serve_fake_llm
from tracehouse.extensions.bearertokenauth.keys import digest, new_key

pytestmark = pytest.mark.integration

HERE = Path(__file__).parent
SECURE = CONFIGS / "all-in-one-secure.yaml"
KEYS = {("lf", "ingest"): new_key(), ("lf", "read"): new_key(), ("other", "read"): new_key()}
M = Decimal(1_000_000)
# gpt-4o-mini list prices per million tokens, independent of the price table: 34 input + 8 cached + 17 output
GPT_4O_MINI = (34 * Decimal("0.15") + 8 * Decimal("0.075") + 17 * Decimal("0.60")) / M


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AllInOne, FakeLLM]]:
    work = tmp_path_factory.mktemp("langfuse-logfire")
    keys = work / "keys.yaml"
    keys.write_text(json.dumps({"keys": [{"name": f"{t}-{k}", "tenant": t, "kind": k, "sha256": digest(v)}
                                         for (t, k), v in KEYS.items()]}))
    aio = AllInOne(work, config=SECURE, env={"TRACEHOUSE_API_KEYS_FILE": str(keys)}).start()
    try:
        with serve_fake_llm() as llm:
            yield aio, llm
    finally:
        aio.stop()


def run_flow(script: str, llm: FakeLLM, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LANGFUSE_", "LOGFIRE_"))}
    return subprocess.run([sys.executable, str(HERE / script)], env={**clean, "FAKE_LLM_BASE_URL": llm.base_url, **env},
                          capture_output=True, text=True, timeout=120)


def trace_id_of(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    trace_id = json.loads(done.stdout.strip().splitlines()[-1])["trace_id"]
    assert isinstance(trace_id, str) and len(trace_id) == 32
    return trace_id


def read_trace(aio: AllInOne, trace_id: str, key: str, spans: int) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        resp = httpx.get(f"{aio.query}/api/v1/traces/{trace_id}", headers={"authorization": f"Bearer {key}"},
                         timeout=30)
        if resp.status_code == 200 and len(resp.json()["spans"]) >= spans or time.monotonic() > deadline:
            assert resp.status_code == 200, resp.text
            return dict(resp.json())
        time.sleep(0.2)


def langfuse_env(aio: AllInOne, secret: str) -> dict[str, str]:
    return {"LANGFUSE_HOST": aio.otlp_http, "LANGFUSE_PUBLIC_KEY": "pk-lf-anything", "LANGFUSE_SECRET_KEY": secret,
            "OTEL_SERVICE_NAME": "langfuse-app"}


def test_langfuse_sdk_spans_are_stored_under_the_secret_keys_tenant(stack: tuple[AllInOne, FakeLLM]) -> None:
    aio, llm = stack
    trace_id = trace_id_of(run_flow("langfuse_flow.py", llm, langfuse_env(aio, KEYS["lf", "ingest"])))
    trace = read_trace(aio, trace_id, KEYS["lf", "read"], 3)
    spans = {s["name"]: s for s in trace["spans"]}
    assert set(spans) == {"answer_question", "OpenAI-generation", "priced-call"}
    assert {s["service_name"] for s in trace["spans"]} == {"langfuse-app"}

    openai = spans["OpenAI-generation"]["genai"]
    assert (openai["span_kind"], openai["operation"], openai["request_model"]) == (
        "llm", "chat", "gpt-4o-mini-2024-07-18")
    assert (openai["input_tokens"], openai["output_tokens"], openai["cached_input_tokens"],
            openai["total_tokens"], openai["tokens_estimated"]) == (42, 17, 8, 59, False)
    assert openai["cost_source"] == "computed"
    assert abs(Decimal(str(openai["total_cost_usd"])) - GPT_4O_MINI) < Decimal("1e-12")
    assert (openai["session_id"], openai["user_id"]) == ("lf-session", "lf-user")

    priced = spans["priced-call"]["genai"]
    assert (priced["request_model"], priced["input_tokens"], priced["output_tokens"]) == ("gpt-4o", 42, 17)
    assert (Decimal(str(priced["total_cost_usd"])), priced["cost_source"]) == (Decimal("0.000275"), "reported")
    # The original attributes are kept as Langfuse sent them.
    assert json.loads(spans["OpenAI-generation"]["attributes"]["langfuse.observation.usage_details"])[
        "prompt_tokens"] == 42
    assert spans["answer_question"]["genai"]["span_kind"] == "chain"

    # Another tenant's key does not see it (404, not 403).
    other = httpx.get(f"{aio.query}/api/v1/traces/{trace_id}",
                      headers={"authorization": f"Bearer {KEYS['other', 'read']}"}, timeout=30)
    assert other.status_code == 404, other.text


def test_langfuse_sdk_with_a_wrong_secret_key_stores_nothing(stack: tuple[AllInOne, FakeLLM]) -> None:
    aio, llm = stack
    requests_before = aio.metric("tracehouse_receiver_requests_total")
    done = run_flow("langfuse_flow.py", llm, langfuse_env(aio, "sk-lf-not-a-tracehouse-key"))
    trace_id = trace_id_of(done)
    assert "401" in done.stderr or "Unauthorized" in done.stderr, done.stderr[-2000:]
    assert aio.metric("tracehouse_receiver_requests_total") > requests_before  # it reached the receiver
    resp = httpx.get(f"{aio.query}/api/v1/traces/{trace_id}",
                     headers={"authorization": f"Bearer {KEYS['lf', 'read']}"}, timeout=30)
    assert resp.status_code == 404, resp.text


def test_logfire_spans_arrive_with_provider_model_tokens_and_messages(stack: tuple[AllInOne, FakeLLM]) -> None:
    aio, llm = stack
    trace_id = trace_id_of(run_flow("logfire_flow.py", llm, {
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{aio.otlp_http}/v1/traces",
        "OTEL_EXPORTER_OTLP_HEADERS": f"Authorization=Bearer {KEYS['lf', 'ingest']}"}))
    trace = read_trace(aio, trace_id, KEYS["lf", "read"], 2)
    spans = {s["name"]: s for s in trace["spans"]}
    chat = spans["Chat Completion with {request_data[model]!r}"]
    assert chat["parent_span_id"] == spans["plan outfit"]["span_id"]
    assert chat["service_name"] == "logfire-app"
    genai = chat["genai"]
    assert (genai["provider"], genai["operation"], genai["span_kind"], genai["request_model"],
            genai["response_model"]) == ("openai", "chat", "llm", "gpt-4o-mini", "gpt-4o-mini-2024-07-18")
    assert (genai["input_tokens"], genai["output_tokens"], genai["cached_input_tokens"], genai["total_tokens"],
            genai["tokens_estimated"]) == (42, 17, 8, 59, False)
    # Logfire prices the call itself (operation.cost): kept as reported; it is the list price.
    assert genai["cost_source"] == "reported"
    assert abs(Decimal(str(genai["total_cost_usd"])) - GPT_4O_MINI) < Decimal("1e-12")
    messages = json.loads(chat["attributes"]["gen_ai.input.messages"])
    assert [(m["role"], m["parts"][0]["content"]) for m in messages] == [
        ("system", "You are a terse weather assistant."), ("user", "What should I wear in Paris?")]
    assert json.loads(chat["attributes"]["gen_ai.output.messages"])[0]["parts"][0]["content"] == \
        "A deterministic answer."
