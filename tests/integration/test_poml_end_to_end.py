"""POML's seed example, run with the real clients against a real all-in-one.

poml 0.0.8 renders `explain_code.poml` (its MLflow backend records a `poml` span and registers
the prompt in MLflow's registry), then `mlflow.openai.autolog()` records the OpenAI call to the
fake LLM (usage 42/17) in a trace of its own. Both reach tracehouse over OTLP/HTTP; the call
must count as a request of the POML prompt, with its tokens and cost.

The prompt's name: here the app's MLflow tracking store is elsewhere (a throwaway sqlite file)
and only its spans come to tracehouse, by OTLP: no span carries the name POML registers
(`0001.explain_code`), so tracehouse names the prompt by content, `poml-<sha256[:12]>`. When
MLFLOW_TRACKING_URI is tracehouse itself, the registration arrives too and the prompt carries
POML's name: tests/integration/test_mlflow_endpoint.py runs that path.
"""

from __future__ import annotations

import hashlib
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from allinone import AllInOne
from fake_llm import COMPLETION_TOKENS, PROMPT_TOKENS, serve_fake_llm
from poml_app import EXPLAIN_CODE_POML, run_poml_app

pytestmark = pytest.mark.integration


def wait_for_prompt(api: str, name: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        rows = httpx.get(f"{api}/api/v1/prompts", timeout=10).json()
        row = next((r for r in rows["prompts"] if r["name"] == name), None)
        if row is not None and row["usage"]["requests"] >= 1:
            return row
        assert time.monotonic() < deadline, f"prompt {name} not listed with a request: {rows}"
        time.sleep(0.3)


def test_the_llm_call_after_a_poml_render_counts_for_the_poml_prompt(tmp_path: Path) -> None:
    (tmp_path / "tracehouse").mkdir()
    server = AllInOne(tmp_path / "tracehouse").start()
    try:
        with serve_fake_llm() as llm:
            run_poml_app(tmp_path / "app", server.otlp_http, llm.base_url)
        assert len(llm.requests) == 1
        name = f"poml-{hashlib.sha256(EXPLAIN_CODE_POML.encode()).hexdigest()[:12]}"
        listed = wait_for_prompt(server.query, name)
        assert (listed["usage"]["requests"], listed["usage"]["total_tokens"]) == (1, PROMPT_TOKENS + COMPLETION_TOKENS)
        assert listed["latest_version"] == "1" and listed["source"] == "POML"

        prompt = httpx.get(f"{server.query}/api/v1/prompts/{name}", timeout=10).json()
        (version,) = prompt["versions"]
        assert version["template"] == EXPLAIN_CODE_POML
        usage = version["usage"]
        assert (usage["requests"], usage["input_tokens"], usage["output_tokens"]) == (
            1, PROMPT_TOKENS, COMPLETION_TOKENS)

        # The linked call is the OpenAI span of its own trace, priced from the price table.
        traces = httpx.get(f"{server.query}/api/v1/traces", params={"prompt": name}, timeout=10).json()
        spans = [s for t in traces["traces"]
                 for s in httpx.get(f"{server.query}/api/v1/traces/{t['trace_id']}", timeout=10).json()["spans"]]
        call = next(s["genai"] for s in spans if s["genai"]["span_kind"] == "llm")
        assert (call["prompt_name"], call["prompt_version"], call["request_model"]) == (name, "1", "gpt-5")
        assert (call["input_tokens"], call["output_tokens"]) == (PROMPT_TOKENS, COMPLETION_TOKENS)
        cost = Decimal(str(call["total_cost_usd"]))
        assert cost > 0 and call["cost_source"] == "computed"
        for total in (usage["cost_usd"], listed["usage"]["cost_usd"]):  # JSON numbers: the nearest float
            assert abs(Decimal(str(total)) - cost) < Decimal("1e-12")
        assert {s["name"] for s in spans} == {"poml", "Completions"}
    finally:
        assert server.stop() == 0, server.log_tail()
