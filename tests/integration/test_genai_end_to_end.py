"""The OpenTelemetry SDK with GenAI attributes -> all-in-one -> the query API.

An app instrumented with the official GenAI names (and a Traceloop-managed prompt) sends
its spans over OTLP/HTTP; the API must show tokens, cost and prompt links, the prompt
registry must version the templates, and the links must survive a restart.
The app and the expected prices live in genai_app.py.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from allinone import AllInOne
from genai_app import TEMPLATE_V1, TEMPLATE_V2, chat, chat_span, gpt4o_cost, send, wait_for_traces

pytestmark = pytest.mark.integration


def test_sdk_genai_spans_show_tokens_cost_and_prompt_links_and_survive_restart(tmp_path: Path) -> None:
    server = AllInOne(tmp_path).start()
    try:
        ids = send(server.otlp_http, [
            {"name": "first", "session": "s-1", "chat": chat(TEMPLATE_V1, (120, 100, 30))},
            {"name": "reworded", "session": "s-1", "chat": chat(TEMPLATE_V2, (80, 0, 20))},
            {"name": "again", "session": "s-2", "chat": chat(TEMPLATE_V1, (50, 0, 10))},
            {"name": "no-usage", "session": "s-2", "chat": chat(None)},
            {"name": "failed", "session": "s-3", "chat": chat(TEMPLATE_V2), "error": True},
        ])
        traces = wait_for_traces(server.query, ids)

        first = chat_span(traces["first"])["genai"]
        assert (first["provider"], first["request_model"], first["span_kind"], first["operation"]) == (
            "openai", "gpt-4o", "llm", "chat")
        assert (first["input_tokens"], first["cached_input_tokens"], first["output_tokens"],
                first["total_tokens"], first["tokens_estimated"]) == (120, 100, 30, 150, False)
        assert Decimal(str(first["total_cost_usd"])) == gpt4o_cost(120, 100, 30)
        assert first["cost_source"] == "computed"
        assert (first["prompt_name"], first["prompt_version"]) == ("wardrobe", "1")
        assert first["prompt_template_hash"] == hashlib.sha256(TEMPLATE_V1.encode()).hexdigest()
        assert first["prompt_source"] == "OpenLLMetry / Traceloop"
        assert (first["session_id"], first["user_id"]) == ("s-1", "")
        agent = next(s for s in traces["first"]["spans"] if s["name"] == "invoke_agent stylist")["genai"]
        assert (agent["span_kind"], agent["session_id"], agent["user_id"]) == ("agent", "s-1", "user-9")
        assert traces["first"]["totals"]["total_tokens"] == 150

        versions = {name: chat_span(traces[name])["genai"]["prompt_version"] for name in ("reworded", "again", "failed")}
        assert versions == {"reworded": "2", "again": "1", "failed": "2"}

        estimated = chat_span(traces["no-usage"])["genai"]
        assert estimated["tokens_estimated"] is True and estimated["input_tokens"] > 0
        assert estimated["output_tokens"] > 0 and estimated["total_cost_usd"] > 0

        prompt = httpx.get(f"{server.query}/api/v1/prompts/wardrobe", timeout=10).json()
        by_version = {v["version"]: v for v in prompt["versions"]}
        assert set(by_version) == {"1", "2"}
        assert (by_version["1"]["template"], by_version["2"]["template"]) == (TEMPLATE_V1, TEMPLATE_V2)
        assert by_version["1"]["source"] == "OpenLLMetry / Traceloop"
        assert by_version["1"]["usage"]["requests"] == 2 and by_version["2"]["usage"]["requests"] == 2
        assert by_version["2"]["usage"]["errors"] == 1
        v1_cost = gpt4o_cost(120, 100, 30) + gpt4o_cost(50, 0, 10)
        assert abs(Decimal(str(by_version["1"]["usage"]["cost_usd"])) - v1_cost) < Decimal("1e-12")
    finally:
        assert server.stop() == 0, server.log_tail()

    # Restarted on the same data: old content keeps its version, new content gets the next.
    server.start()
    try:
        ids = send(server.otlp_http, [
            {"name": "after-restart", "session": "s-4", "chat": chat(TEMPLATE_V1, (10, 0, 5))},
            {"name": "third", "session": "s-4", "chat": chat("Dress me for {city}.", (10, 0, 5))},
        ])
        traces = wait_for_traces(server.query, ids)
        assert chat_span(traces["after-restart"])["genai"]["prompt_version"] == "1"
        assert chat_span(traces["third"])["genai"]["prompt_version"] == "3"
        prompt = httpx.get(f"{server.query}/api/v1/prompts/wardrobe", timeout=10).json()
        assert sorted(v["version"] for v in prompt["versions"]) == ["1", "2", "3"]

        metrics = httpx.get(f"{server.query}/api/v1/metrics/genai",
                            params={"group_by": "prompt_version", "prompt": "wardrobe"}, timeout=10).json()
        requests = {s["group"]["prompt_version"]: s["totals"]["requests"] for s in metrics["series"]}
        assert requests == {"1": 3, "2": 2, "3": 1}
    finally:
        assert server.stop() == 0, server.log_tail()
