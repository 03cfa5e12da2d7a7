"""The prompt registry on the real engine: versions, restarts and concurrent writers."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from genai_helpers import batch_of, enrich, span
from tracehouse.core.component import ComponentID, Kind, Settings
from tracehouse.core.genai import GenAIColumns

from tracehouse.core.testing import TestHost
from tracehouse.sinks.clickhouse.client import open_client
from tracehouse.sinks.clickhouse.config import ClickHouseExporterConfig
from tracehouse.sinks.clickhouse.exporter import ClickHouseExporter
from tracehouse.sinks.clickhouse.prompts import Link, PromptRegistry
from tracehouse.sinks.clickhouse.schema import migrate, schema_params

T0 = 1_795_000_000_000_000_000


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def link(name: str, template: str = "", version: str = "", source: str = "OpenLLMetry / Traceloop") -> Link:
    return Link(name, version, sha(template) if template else "", template, source)


@pytest.fixture
def schema(chdb_endpoint: str, database: str) -> Iterator[str]:
    client = open_client(chdb_endpoint)
    migrate(client, schema_params(database, "otel_traces", 0, 1000))
    client.close()
    yield database



def entries(client: Any, database: str) -> list[tuple[str, str, str, str]]:
    return client.query(f"""
        SELECT Name, Version, argMin(TemplateHash, (RegisteredAt, TemplateHash)),
               argMin(Source, (RegisteredAt, TemplateHash))
        FROM {database}.otel_traces_prompts GROUP BY Name, Version ORDER BY Name, Version""").result_rows


def test_versions_increment_only_on_new_content(schema: str, client: Any) -> None:
    registry = PromptRegistry(schema, "otel_traces")
    assert registry.resolve(client, link("greeting", "Hi {name}")) == "1"
    assert registry.resolve(client, link("greeting", "Hi {name}")) == "1"
    assert registry.resolve(client, link("greeting", "Hello {name}!")) == "2"
    assert registry.resolve(client, link("greeting", "Hi {name}")) == "1", "old content keeps its version"
    assert registry.resolve(client, link("farewell", "Bye {name}")) == "1", "versions are per name"
    assert entries(client, schema) == [
        ("farewell", "1", sha("Bye {name}"), "OpenLLMetry / Traceloop"),
        ("greeting", "1", sha("Hi {name}"), "OpenLLMetry / Traceloop"),
        ("greeting", "2", sha("Hello {name}!"), "OpenLLMetry / Traceloop"),
    ]


def test_client_versions_are_kept_and_numbering_continues_after_them(schema: str, client: Any) -> None:
    registry = PromptRegistry(schema, "otel_traces")
    assert registry.resolve(client, link("support", "Answer: {q}", version="3", source="Langfuse")) == "3"
    # The same content seen without a version is that version; new content comes after it.
    assert registry.resolve(client, link("support", "Answer: {q}")) == "3"
    assert registry.resolve(client, link("support", "Answer briefly: {q}")) == "4"
    # A client label that is not a number (OpenInference "v3") and a name without anything else.
    assert registry.resolve(client, link("support", version="v3", source="OpenInference")) == "v3"
    assert registry.resolve(client, link("mcp-prompt", source="OpenTelemetry GenAI")) == ""
    assert [(n, v) for n, v, _, _ in entries(client, schema)] == [
        ("mcp-prompt", ""), ("support", "3"), ("support", "4"), ("support", "v3")]


def test_links_survive_a_restart(schema: str, client: Any) -> None:
    before = PromptRegistry(schema, "otel_traces")
    assert before.resolve(client, link("0001.explain_code", "<poml>a</poml>", source="POML")) == "1"
    assert before.resolve(client, link("0001.explain_code", "<poml>b</poml>", source="POML")) == "2"
    after = PromptRegistry(schema, "otel_traces")  # a new process: nothing cached
    assert after.resolve(client, link("0001.explain_code", "<poml>b</poml>", source="POML")) == "2"
    assert after.resolve(client, link("0001.explain_code", "<poml>c</poml>", source="POML")) == "3"
    assert len(entries(client, schema)) == 3


def test_concurrent_writers_agree_on_versions(chdb_endpoint: str, schema: str) -> None:
    """Eight writers (own client, own registry) register overlapping templates at once."""
    templates = [f"Template {k}: {{x}}" for k in range(6)]
    barrier = threading.Barrier(8)
    results: dict[int, dict[str, str]] = {}
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        client = open_client(chdb_endpoint)
        registry = PromptRegistry(schema, "otel_traces")
        try:
            barrier.wait()
            order = templates[w % 3:] + templates[:w % 3]  # different writers start on different content
            results[w] = {t: registry.resolve(client, link("race", t)) for t in order}
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    first = results[0]
    assert all(r == first for r in results.values()), results
    assert sorted(first.values(), key=int) == [str(v) for v in range(1, 7)], "one version per content, no gaps"
    client = open_client(chdb_endpoint)
    try:
        registered = {v: h for _, v, h, _ in entries(client, schema)}
        rows = client.query(f"SELECT count() FROM {schema}.otel_traces_prompts").result_rows[0][0]
    finally:
        client.close()
    assert registered == {v: sha(t) for t, v in first.items()}
    assert rows == 6, "a lost claim never lands: one row per version"


def traceloop_call(span_id: int, template: str) -> dict[str, Any]:
    return {"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o", "gen_ai.operation.name": "chat",
            "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 5,
            "traceloop.prompt.key": "weather", "traceloop.prompt.template": template}


async def test_two_pipelines_registering_the_same_prompt_at_once_make_one_version(
        chdb_endpoint: str, database: str) -> None:
    exporters = [ClickHouseExporter(Settings(ComponentID("clickhouse", name), Kind.EXPORTER, name),
                                    ClickHouseExporterConfig(endpoint=chdb_endpoint, database=database), None)
                 for name in ("a", "b")]
    for exporter in exporters:
        await exporter.start(TestHost())
    try:
        template = "Weather in {city}?"
        batches = [await enrich(batch_of([span(100 + k, 1, T0, traceloop_call(1, template))])) for k in range(2)]
        await asyncio.gather(*(exp.consume(b) for exp, b in zip(exporters, batches, strict=True)))
        newer = await enrich(batch_of([span(200, 1, T0, traceloop_call(1, "Weather in {city} today?"))]))
        await exporters[1].consume(newer)
    finally:
        for exporter in exporters:
            await exporter.shutdown()
    assert [b.genai.prompt_version[0] for b in batches] == ["1", "1"]  # type: ignore[union-attr]
    client = open_client(chdb_endpoint)
    try:
        stored = client.query(f"""SELECT GenAIPromptName, GenAIPromptVersion, GenAIPromptTemplateHash, count()
                                  FROM {database}.otel_traces GROUP BY ALL ORDER BY 2""").result_rows
        assert stored == [("weather", "1", sha("Weather in {city}?"), 2),
                          ("weather", "2", sha("Weather in {city} today?"), 1)]
        assert [(n, v) for n, v, _, _ in entries(client, database)] == [("weather", "1"), ("weather", "2")]
    finally:
        client.close()


POML_TEXT = "<poml>\n  <task>Explain {{ code_path }}.</task>\n</poml>\n"


def poml_links(count: int, template: str = POML_TEXT) -> GenAIColumns:
    """What genai_normalize gives a `poml` span and the calls linked to it: a content-derived name."""
    cols = GenAIColumns.empty(count)
    for i in range(count):
        cols.prompt_name[i], cols.prompt_template_hash[i] = f"poml-{sha(template)[:12]}", sha(template)
        cols.prompt_template[i], cols.prompt_source[i] = template, "POML"
    return cols


def test_poml_content_takes_the_name_the_mlflow_registry_gave_it(schema: str, client: Any) -> None:
    registry = PromptRegistry(schema, "otel_traces")
    # What the MLflow endpoint records of POML's `registered-models/create` + `model-versions/create`.
    assert registry.resolve(client, Link("0001.explain_code", "1", sha(POML_TEXT), POML_TEXT, "MLflow")) == "1"
    cols = poml_links(2)
    PromptRegistry(schema, "otel_traces").link(client, cols)  # a fresh writer: nothing cached
    assert list(zip(cols.prompt_name, cols.prompt_version)) == [("0001.explain_code", "1")] * 2
    # Other content, never registered by name: keeps its content-derived name, as its own prompt.
    other = poml_links(1, "<poml>other</poml>")
    registry.link(client, other)
    assert (other.prompt_name[0], other.prompt_version[0]) == (f"poml-{sha('<poml>other</poml>')[:12]}", "1")
    # Rendered again in a new POML call: registered as 0002.explain_code; the latest name wins.
    registry.resolve(client, Link("0002.explain_code", "1", sha(POML_TEXT), POML_TEXT, "MLflow"))
    cols = poml_links(1)
    PromptRegistry(schema, "otel_traces").link(client, cols)
    assert (cols.prompt_name[0], cols.prompt_version[0]) == ("0002.explain_code", "1")
    assert [e[0] for e in entries(client, schema)] == [
        "0001.explain_code", "0002.explain_code", f"poml-{sha('<poml>other</poml>')[:12]}"]
