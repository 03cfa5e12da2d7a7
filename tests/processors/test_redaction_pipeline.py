"""Secrets in prompts are stored masked: the shipped all-in-one config, run as a service on
the embedded ClickHouse engine (chDB), takes a real captured payload with secrets planted in
its messages, prompt template and variables, an exception and a resource attribute, over
OTLP/HTTP. Then no secret is anywhere: not in any column of any table of the database
(spans, rollups, lookup tables, the prompt registry), nor in what the query API serves.
The same for the messages the official OpenAI instrumentation sends as log events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from inprocess_all_in_one import component, running
from otlp_fixtures import load_batch
from redaction_helpers import SECRET_TEXT, inject_secrets, inject_secrets_logs, markers
from tracehouse.core.component import Kind
from tracehouse.core.pdata import LogBatch, any_value, key_values
from tracehouse.core.service import Service
from tracehouse.ingest.otlp.receiver import OtlpReceiver
from tracehouse.query.extension import QueryApiExtension
from tracehouse.sinks.clickhouse.client import open_client

pytestmark = pytest.mark.integration

@pytest.fixture
async def service(chdb_endpoint: str, database: str) -> AsyncIterator[Service]:
    async with running(chdb_endpoint, database) as svc:
        yield svc


def payload() -> tuple[bytes, str]:
    """The OpenInference capture (prompt template, version, variables, flattened and JSON
    messages, an error span) with secrets planted in every text, the variables, the failed
    call's exception and status, and the resource."""
    batch = load_batch("openinference/http-protobuf.pb")
    assert inject_secrets(batch) > 0
    for rs in batch.request.resource_spans:
        rs.resource.attributes.extend(key_values({"deployment.owner": "jane.doe@example.com"}))
    trace_id = ""
    for _, _, sp in batch.iter_spans():
        for kv in sp.attributes:
            if kv.key == "llm.prompt_template.variables":
                kv.value.CopyFrom(any_value(json.dumps({"city": "Paris" + SECRET_TEXT})))
        for event in sp.events:
            if event.name == "exception":
                event.attributes.append(KeyValue(key="exception.message",
                                                 value=any_value("401: bad key" + SECRET_TEXT)))
                sp.status.message += SECRET_TEXT
                trace_id = sp.trace_id.hex()
    batch.mark_mutated()
    return batch.to_bytes(), trace_id


def database_text(chdb_endpoint: str, database: str) -> tuple[str, dict[str, int]]:
    """Every row of every table of the database, as text; and each table's row count."""
    client = open_client(chdb_endpoint)
    try:
        tables = [r[0] for r in client.query(
            "SELECT name FROM system.tables WHERE database = {db:String} AND engine NOT LIKE '%View%'",
            parameters={"db": database}).result_rows]
        texts, counts = [], {}
        for table in tables:
            # As text: rollups hold AggregateFunction states the driver does not decode.
            rows = client.query(f"SELECT * APPLY(toString) FROM {database}.`{table}`").result_rows
            counts[table] = len(rows)
            texts.append(repr(rows))
        return "\n".join(texts), counts
    finally:
        client.close()


async def test_secrets_in_prompts_are_stored_and_served_masked(service: Service, chdb_endpoint: str,
                                                               database: str) -> None:
    body, failed_trace = payload()
    assert all(m in body for m in markers())  # they are there on the way in
    receiver = component(service, Kind.RECEIVER, OtlpReceiver)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{receiver.http_port}", timeout=60) as http:
        resp = await http.post("/v1/traces", content=body, headers={"Content-Type": "application/x-protobuf"})
    assert resp.status_code == 200, resp.text

    stored, counts = database_text(chdb_endpoint, database)
    assert counts["otel_traces"] == 6 and counts["otel_traces_prompts"] >= 1
    for marker in markers():
        assert marker.decode() not in stored, marker
    assert "[REDACTED:openai_api_key]" in stored and "[REDACTED:private_key]" in stored

    client = open_client(chdb_endpoint)
    try:
        templates = client.query(f"SELECT Name, Version, Template FROM {database}.otel_traces_prompts").result_rows
        spans = client.query(f"""SELECT SpanAttributes['llm.prompt_template.template'], GenAIPromptName,
                                        GenAIPromptVersion, GenAIUserId, GenAIInputTokens
                                 FROM {database}.otel_traces WHERE GenAIPromptName != ''""").result_rows
    finally:
        client.close()
    # The registry versions the masked template, and the spans link to that version.
    (name, _, template), = {(n, v, t) for n, v, t in templates if t}
    assert template.startswith("Should I take an umbrella in {city}? Also: [REDACTED:email] ; [REDACTED:phone]")
    assert {(s[0], s[1]) for s in spans} == {(template, name)}
    assert {s[3] for s in spans} == {"user-7"} and {s[4] for s in spans} == {42}

    api = component(service, Kind.EXTENSION, QueryApiExtension)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api.port}", timeout=60) as http:
        served = [await http.get("/api/v1/prompts"), await http.get(f"/api/v1/prompts/{name}"),
                  await http.get(f"/api/v1/traces/{failed_trace}")]
    for resp in served:
        assert resp.status_code == 200, resp.text
        for marker in markers():
            assert marker.decode() not in resp.text, (resp.url, marker)
    assert "[REDACTED:openai_api_key]" in served[2].text
    assert name in served[0].text


EVENTS = Path(__file__).parents[1] / "fixtures" / "genai-events"


async def test_secrets_in_genai_log_events_are_stored_and_served_masked(
        service: Service, chdb_endpoint: str, database: str, client: Any) -> None:
    # Both shapes the official OpenAI instrumentation sends (its real captures): the chat span
    # without content, and its messages as log events with every secret planted in them.
    receiver = component(service, Kind.RECEIVER, OtlpReceiver)
    protobuf = {"Content-Type": "application/x-protobuf"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{receiver.http_port}", timeout=60) as http:
        for variant in ("current", "legacy"):
            logs = LogBatch.from_bytes((EVENTS / variant / "logs.pb").read_bytes())
            assert inject_secrets_logs(logs) == 4
            assert all(m in logs.to_bytes() for m in markers())
            for path, body in (("/v1/traces", (EVENTS / variant / "traces.pb").read_bytes()),
                               ("/v1/logs", logs.to_bytes())):
                resp = await http.post(path, content=body, headers=protobuf)
                assert resp.status_code == 200, resp.text

    rows = client.query(f"SELECT EventName, LogAttributes['event.name'], Body, LogAttributes "
                        f"FROM {database}.otel_logs").result_rows
    assert len(rows) == 6  # details + evaluation, system + user + choice + evaluation
    stored = repr(rows)
    for marker in markers():
        assert marker.decode() not in stored, marker
    user = [r for r in rows if r[1] == "gen_ai.user.message"][0]
    assert json.loads(user[2])["content"].startswith("What is the capital of France? Also: [REDACTED:email] ;")
    details = [r for r in rows if r[0] == "gen_ai.client.inference.operation.details"][0]
    assert "[REDACTED:openai_api_key]" in details[3]["gen_ai.input.messages"]
    everything, _ = database_text(chdb_endpoint, database)  # the scores the evaluations made too
    for marker in markers():
        assert marker.decode() not in everything, marker

    api = component(service, Kind.EXTENSION, QueryApiExtension)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api.port}", timeout=60) as http:
        for variant in ("current", "legacy"):
            trace_id = json.loads((EVENTS / variant / "traces.meta.json").read_text())["trace_id_printed"]
            resp = await http.get(f"/api/v1/traces/{trace_id}")
            assert resp.status_code == 200, resp.text
            for marker in markers():
                assert marker.decode() not in resp.text, (variant, marker)
            [chat] = [sp for sp in resp.json()["spans"] if sp["name"] == "chat gpt-4o-mini"]
            # The chat span's messages come from the (masked) log events.
            [system, user_message] = chat["input_messages"]
            assert user_message["role"] == "user"
            assert user_message["content"].startswith("What is the capital of France? Also: [REDACTED:email] ;")
            assert "[REDACTED:private_key]" in chat["output_messages"][0]["content"]
            [score] = resp.json()["scores"]
            assert "[REDACTED:jwt]" in score["comment"]
