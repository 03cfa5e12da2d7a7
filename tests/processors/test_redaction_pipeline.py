"""Secrets in prompts are stored masked: the shipped all-in-one config, run as a service on
the embedded ClickHouse engine (chDB), takes a real captured payload with secrets planted in
its messages, prompt template and variables, an exception and a resource attribute, over
OTLP/HTTP. Then no secret is anywhere: not in any column of any table of the database
(spans, rollups, lookup tables, the prompt registry), nor in what the query API serves."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from inprocess_all_in_one import component, running
from otlp_fixtures import load_batch
from redaction_helpers import SECRET_TEXT, inject_secrets, markers
from tracehouse.core.component import Kind
from tracehouse.core.pdata import any_value, key_values
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
                  await http.get(f"/api/v1/traces/{failed_trace}", params={"include": "messages"})]
    for resp in served:
        assert resp.status_code == 200, resp.text
        for marker in markers():
            assert marker.decode() not in resp.text, (resp.url, marker)
    assert "[REDACTED:openai_api_key]" in served[2].text
    assert name in served[0].text
