"""A span's prompt and completion from GenAI events sent as logs, shown in the trace detail.

The official OpenAI instrumentation with content capture on records the chat span without
content and the messages as log events on it (tests/fixtures/genai-events: the current
`gen_ai.client.inference.operation.details` event and the older per-message events, both
captured from the real library). Sent to the shipped all-in-one (in this process), the trace
detail shows the chat span's messages and the events, whichever signal arrives first, and the
evaluation event sent beside them as a score.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from inprocess_all_in_one import component, running
from tracehouse.core.component import Kind
from tracehouse.ingest.otlp.receiver import OtlpReceiver
from tracehouse.query.extension import QueryApiExtension

FIXTURES = Path(__file__).parents[1] / "fixtures" / "genai-events"
PROTOBUF = {"content-type": "application/x-protobuf"}


def trace_id_of(variant: str) -> str:
    return str(json.loads((FIXTURES / variant / "traces.meta.json").read_text())["trace_id_printed"])


async def detail(api: str, trace_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        resp = await client.get(f"{api}/api/v1/traces/{trace_id}")
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


@pytest.mark.parametrize(("variant", "first"), [("current", "logs"), ("current", "traces"), ("legacy", "logs"),
                                                ("legacy", "traces")])
async def test_the_chat_span_shows_the_messages_its_log_events_carry(
        variant: str, first: str, chdb_endpoint: str) -> None:
    async with running(chdb_endpoint, f"events_{uuid.uuid4().hex[:8]}") as service:
        otlp = f"http://127.0.0.1:{component(service, Kind.RECEIVER, OtlpReceiver).http_port}"
        api = f"http://127.0.0.1:{component(service, Kind.EXTENSION, QueryApiExtension).port}"
        order = ["logs", "traces"] if first == "logs" else ["traces", "logs"]
        async with httpx.AsyncClient() as client:
            for signal in order:
                body = (FIXTURES / variant / f"{signal}.pb").read_bytes()
                resp = await client.post(f"{otlp}/v1/{signal}", content=body, headers=PROTOBUF)
                assert resp.status_code == 200, resp.text
        trace = await detail(api, trace_id_of(variant))

    [chat] = [s for s in trace["spans"] if s["name"] == "chat gpt-4o-mini"]
    assert not any(k.startswith("gen_ai.input") for k in chat["attributes"]), "the span itself has no content"
    assert chat["input_messages"] == [
        {"role": "system", "content": "You answer in one sentence.", "tool_calls": []},
        {"role": "user", "content": "What is the capital of France?", "tool_calls": []}]
    assert chat["output_messages"] == [{"role": "assistant", "content": "A deterministic answer.", "tool_calls": []}]
    names = [e["name"] for e in chat["log_events"]]
    assert names == (["gen_ai.client.inference.operation.details"] if variant == "current"
                     else ["gen_ai.system.message", "gen_ai.user.message", "gen_ai.choice"])
    [root] = [s for s in trace["spans"] if s["name"] == "answer question"]
    assert [e["name"] for e in root["log_events"]] == ["gen_ai.evaluation.result"]
    assert root["input_messages"] is None, "an evaluation is not a message"
    [score] = trace["scores"]
    assert (score["name"], score["span_id"], score["value"], score["label"]) == ("relevance", root["span_id"], 0.9, "relevant")


async def test_without_a_logs_table_the_trace_still_reads(chdb_endpoint: str, client: Any) -> None:
    database = f"events_{uuid.uuid4().hex[:8]}"
    async with running(chdb_endpoint, database) as service:
        otlp = f"http://127.0.0.1:{component(service, Kind.RECEIVER, OtlpReceiver).http_port}"
        api = f"http://127.0.0.1:{component(service, Kind.EXTENSION, QueryApiExtension).port}"
        async with httpx.AsyncClient() as http:
            body = (FIXTURES / "current" / "traces.pb").read_bytes()
            assert (await http.post(f"{otlp}/v1/traces", content=body, headers=PROTOBUF)).status_code == 200
        client.command(f"DROP TABLE {database}.otel_logs")
        trace = await detail(api, trace_id_of("current"))
    [chat] = [s for s in trace["spans"] if s["name"] == "chat gpt-4o-mini"]
    assert chat["input_messages"] is None and chat["log_events"] == []
