"""A seeded GenAI database for the query API tests: the captured OTLP fixtures and hand-built
spans with OpenTelemetry GenAI attributes, enriched by the real GenAI processors
(genai_normalize -> genai_tokens -> genai_cost) and written by the real ClickHouse exporter
(which feeds the usage rollup and the prompt registry through its materialized views).
Seeded once per session (`seeded_data`), shared by the GenAI metrics and prompts API tests
and the Grafana dashboard tests.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from genai_helpers import enrich_all
from otlp_fixtures import load_batch
from tracehouse.core.component import ComponentID, Kind, Settings
from tracehouse.core.pdata import TraceBatch, key_values
from tracehouse.core.telemetry import Telemetry
from tracehouse.core.testing import TestHost
from tracehouse.query.params import parse_time_ns
from tracehouse.sinks.clickhouse.client import open_client
from tracehouse.sinks.clickhouse.config import ClickHouseExporterConfig
from tracehouse.sinks.clickhouse.exporter import ClickHouseExporter

NS = 1_000_000_000


FIXTURE_FILES = ("otel-genai-openai-v2/http-protobuf.pb", "otel-genai-openai-v2/grpc.pb",
                 "openinference/http-protobuf.pb", "mlflow/http-protobuf.pb",
                 "otel-js-vercel-ai-style/http-json.otlp.json")


FIX_START, FIX_END = "2026-11-22T16:00:00Z", "2026-11-22T17:00:00Z"


T0 = parse_time_ns("2026-01-10T12:00:00Z")


HAND_START, HAND_END = "2026-01-10T12:00:00Z", "2026-01-10T12:10:00Z"


P_EXPLAIN = "0001.explain_code"  # POML-style: leading digits and a dot


P_SUMMARIZE = "team-a/summarize.v2"  # a slash and a dot


P_GREETING = "greeting"  # templates without a version: the registry numbers them


TEMPLATES = {"1": "Explain this code:\n{code}", "2": "Explain this code step by step:\n{code}",
             "10": "You are a senior engineer. Explain:\n{code}"}


GREETING_TEMPLATES = ("Hello {name}!", "Good morning, {name}.")


class Health:
    """Just enough of a service for the API's health endpoints."""

    def __init__(self) -> None:
        self.telemetry = Telemetry()

    def healthy(self) -> bool:
        return True

    def ready(self) -> bool:
        return True

    def statuses(self) -> dict[str, tuple[str, str | None]]:
        return {}


@dataclass
class Call:
    """One hand-built span: seconds after T0, duration, OTel attributes."""

    service: str
    at_s: float
    duration_ns: int
    attrs: dict[str, Any]
    name: str = "chat"
    error: bool = False
    kind: int = Span.SPAN_KIND_CLIENT
    evaluations: list[dict[str, Any]] = field(default_factory=list)  # `gen_ai.evaluation.result` attributes


def evaluation(name: str, value: float | None = None, label: str | None = None) -> dict[str, Any]:
    """A `gen_ai.evaluation.result` event's attributes, named as the GenAI semantic conventions say."""
    attrs: dict[str, Any] = {"gen_ai.evaluation.name": name}
    if value is not None:
        attrs["gen_ai.evaluation.score.value"] = value
    if label is not None:
        attrs["gen_ai.evaluation.score.label"] = label
    return attrs


def chat(provider: str, model: str, inp: int | None, out: int | None, **extra: Any) -> dict[str, Any]:
    attrs: dict[str, Any] = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": provider,
                             "gen_ai.request.model": model}
    if inp is not None:
        attrs["gen_ai.usage.input_tokens"] = inp
    if out is not None:
        attrs["gen_ai.usage.output_tokens"] = out
    attrs.update(extra)
    return attrs


def traceloop(name: str, version: str | None, template: str | None) -> dict[str, Any]:
    attrs = {"traceloop.prompt.key": name}
    if version is not None:
        attrs["traceloop.prompt.version"] = version
    if template is not None:
        attrs["traceloop.prompt.template"] = template
    return attrs


def langfuse(name: str, version: str) -> dict[str, Any]:
    return {"langfuse.observation.prompt.name": name, "langfuse.observation.prompt.version": version}


def hand_built_calls() -> list[list[Call]]:
    """Four batches in time order (prompt versions register in that order). The same rollup
    key (chat-api, gpt-4o, 0001.explain_code "1", minute 12:05) gets rows from two batches, so
    the rollup holds partial rows that only a GROUP BY combines."""
    ms = 1_000_000
    messages = json.dumps([{"role": "user", "parts": [{"type": "text", "content": "Is it raining in Paris?"}]}])
    answer = json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "Yes, take an umbrella."}]}])
    return [
        [Call("chat-api", 5.5, 812 * ms + 17, chat("openai", "gpt-4o", 1000, 200, **{
            "gen_ai.usage.cache_read.input_tokens": 100, "gen_ai.usage.reasoning.output_tokens": 30},
            **traceloop(P_EXPLAIN, "2", TEMPLATES["2"])), evaluations=[evaluation("relevance", 0.9, "relevant")]),
         Call("chat-api", 20.25, 450 * ms + 3, chat("openai", "gpt-4o-mini", 300, 40,
                                                  **langfuse(P_SUMMARIZE, "v2")),
              evaluations=[evaluation("relevance", 0.4, "not_relevant"), evaluation("tone", label="curt")]),
         Call("chat-api", 30.0, 1_234_567_891, chat("openai", "gpt-4o-mini", 50, 12,
                                                    **traceloop(P_GREETING, None, GREETING_TEMPLATES[0]))),
         Call("batch-worker", 45.125, 2_100 * ms, chat("anthropic", "claude-3-5-sonnet-20241022", 2000, 500)),
         Call("chat-api", 65.0, 640 * ms + 99, chat("openai", "gpt-4o", 800, 100,
                                                    **traceloop(P_EXPLAIN, "2", TEMPLATES["2"])),
              evaluations=[evaluation("relevance", 0.7, "relevant")]),
         Call("batch-worker", 100.0, 95 * ms, {"gen_ai.operation.name": "embeddings", "gen_ai.provider.name": "openai",
                                               "gen_ai.request.model": "text-embedding-3-small",
                                               "gen_ai.usage.input_tokens": 640}, name="embeddings")],
        [Call("chat-api", 130.0, 2_900 * ms + 1, chat("openai", "gpt-4o", 1500, 0,
                                                      **traceloop(P_EXPLAIN, "10", TEMPLATES["10"])), error=True),
         # a prompt render step: linked to a prompt, but not a model call
         Call("chat-api", 139.0, 3 * ms, langfuse(P_SUMMARIZE, "v10"), name="render prompt",
              kind=Span.SPAN_KIND_INTERNAL),
         Call("chat-api", 140.0, 700 * ms + 5, chat("openai", "gpt-4o-mini", 420, 60,
                                                    **langfuse(P_SUMMARIZE, "v10"))),
         Call("docs-bot", 160.5, 333 * ms, {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                                            "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
                                            "gen_ai.usage.input_tokens": 77, "gen_ai.usage.output_tokens": 11}),
         Call("batch-worker", 190.0, 1_800 * ms + 7, chat("anthropic", "claude-3-5-sonnet-20241022", 1200, 300)),
         Call("chat-api", 200.0, 910 * ms, chat("openai", "gpt-4o", 900, 150,
                                                 **traceloop(P_EXPLAIN, "10", TEMPLATES["10"]))),
         Call("chat-api", 300.0, 1_500 * ms, chat("openai", "gpt-4o", 1100, 250,
                                                   **traceloop(P_EXPLAIN, "1", TEMPLATES["1"])))],
        [Call("docs-bot", 230.0, 520 * ms, chat("openai", "gpt-4o-mini", None, None, **{
            "gen_ai.input.messages": messages, "gen_ai.output.messages": answer})),
         Call("chat-api", 250.0, 480 * ms, chat("openai", "gpt-4o-mini", 60, 9,
                                                **traceloop(P_GREETING, None, GREETING_TEMPLATES[1]))),
         Call("chat-api", 255.0, 470 * ms, chat("openai", "gpt-4o-mini", 61, 8,
                                                **traceloop(P_GREETING, None, GREETING_TEMPLATES[0]))),
         Call("chat-api", 260.0, 1_100 * ms, chat("openai", "gpt-4o", 700, 90, **langfuse(P_SUMMARIZE, "beta"))),
         Call("docs-bot", 280.0, 60 * ms, chat("openai", "fail-model", None, None), error=True),
         Call("chat-api", 310.0, 1_700 * ms + 123, chat("openai", "gpt-4o", 1300, 260,
                                                         **traceloop(P_EXPLAIN, "1", TEMPLATES["1"])))],
        [Call("chat-api", 415.75, 1_650 * ms, chat("openai", "gpt-4o", 1250, 240,
                                                    **traceloop(P_EXPLAIN, "1", TEMPLATES["1"]))),
         Call("batch-worker", 430.0, 2_300 * ms, chat("anthropic", "claude-3-5-sonnet-20241022", 900, 100))],
    ]


def build_request(calls: Iterable[Call], first_index: int) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for i, call in enumerate(calls, start=first_index):
        rs = request.resource_spans.add()
        rs.resource.attributes.extend(key_values({"service.name": call.service}))
        ss = rs.scope_spans.add()
        ss.scope.name = "hand-built"
        span = ss.spans.add()
        span.trace_id = i.to_bytes(16, "big")
        span.span_id = (i + 1).to_bytes(8, "big")
        span.name = call.name
        span.kind = call.kind
        span.start_time_unix_nano = T0 + int(call.at_s * NS)
        span.end_time_unix_nano = span.start_time_unix_nano + call.duration_ns
        if call.error:
            span.status.code = Status.STATUS_CODE_ERROR
            span.status.message = "upstream error"
        span.attributes.extend(key_values(call.attrs))
        for n, attrs in enumerate(call.evaluations):
            span.events.add(name="gen_ai.evaluation.result", time_unix_nano=span.end_time_unix_nano + n + 1,
                            attributes=key_values(attrs))
    return request


async def run_pipeline(batches: Sequence[TraceBatch]) -> list[TraceBatch]:
    """genai_normalize -> genai_tokens -> genai_cost, as the all-in-one config wires them."""
    return await enrich_all(list(batches))


def fixture_batches() -> list[TraceBatch]:
    return [load_batch(relative) for relative in FIXTURE_FILES]


RAW_COLUMNS = ("ts_ns", "TraceId", "SpanId", "ServiceName", "GenAIProvider", "GenAISpanKind", "GenAIRequestModel",
               "GenAIResponseModel", "GenAIPromptName", "GenAIPromptVersion", "GenAIPromptTemplateHash",
               "StatusCode", "Duration", "GenAIInputTokens", "GenAIOutputTokens", "GenAICachedInputTokens",
               "GenAIReasoningTokens", "GenAITotalTokens", "GenAITokensEstimated", "GenAIInputCostUSD",
               "GenAIOutputCostUSD", "GenAITotalCostUSD")


@dataclass(frozen=True)
class Seeded:
    endpoint: str
    database: str
    raw: list[dict[str, Any]]  # every stored span, read before the spans table was emptied
    registry: list[dict[str, Any]]  # registry rows as the exporter claimed them
    templates: dict[str, str]  # template hash -> template, of every hand-built span
    scores: list[dict[str, Any]] = field(default_factory=list)  # live scores (ts_ns, name, number, label, span)


async def _seed(endpoint: str, database: str) -> Seeded:
    calls = hand_built_calls()
    requests, index = [], 1
    for group in calls:
        requests.append(build_request(group, index))
        index += len(group)
    hand_built = [TraceBatch.from_request(r) for r in requests]
    enriched = await run_pipeline([TraceBatch.merge(fixture_batches()), *hand_built])
    exporter = ClickHouseExporter(Settings(ComponentID("clickhouse"), Kind.EXPORTER),
                                  ClickHouseExporterConfig(endpoint=endpoint, database=database))
    await exporter.start(TestHost())  # creates the database and the tables
    client = open_client(endpoint)
    try:
        # Keep the rollup's partial rows apart, as they are between background merges.
        client.command(f"SYSTEM STOP MERGES {database}.otel_traces_genai_usage_1m")
        try:
            for batch in enriched:
                await exporter.consume(batch)
        finally:
            await exporter.shutdown()
        seed_registry(client, database)
        seed_scores(client, database)
        result = client.query(
            f"SELECT toUnixTimestamp64Nano(Timestamp) AS ts_ns, {', '.join(RAW_COLUMNS[1:])} "
            f"FROM {database}.otel_traces LIMIT 1 BY TraceId, SpanId")
        raw = [dict(zip(RAW_COLUMNS, row, strict=True)) for row in result.result_rows]
        reg = client.query(f"SELECT Name, Version, TemplateHash, Template, Source, "
                           f"toUnixTimestamp64Nano(RegisteredAt) FROM {database}.otel_traces_prompts")
        registry = [dict(zip(("name", "version", "hash", "template", "source", "registered_ns"), row, strict=True))
                    for row in reg.result_rows]
        scores = live_scores(calls, raw)
        # From here on only the rollups hold the data: the API must not read the spans table.
        client.command(f"TRUNCATE TABLE {database}.otel_traces")
    finally:
        client.close()
    templates = {hashlib.sha256(t.encode()).hexdigest(): t for t in [*TEMPLATES.values(), *GREETING_TEMPLATES]}
    return Seeded(endpoint, database, raw, registry, templates, scores)


def _ids(index: int) -> tuple[str, str]:
    """The trace and span id of hand-built call number `index` (build_request's rule)."""
    return index.to_bytes(16, "big").hex(), (index + 1).to_bytes(8, "big").hex()


# Scores as the API writes them (through the one writer), on hand-built calls by their number:
# (id, call, on the span?, name, value, seconds after T0). Written once more, replaced or deleted
# below, so a reader must take the newest live version of each.
API_SCORES = [("h-1", 1, False, "helpfulness", 0.8, 7.0), ("h-2", 2, True, "helpfulness", 0.5, 21.0),
              ("h-3", 5, False, "helpfulness", 1.0, 66.0), ("h-4", 7, False, "helpfulness", 0.2, 131.0),
              ("h-5", 4, False, "helpfulness", 0.6, 46.0), ("s-1", 1, False, "safe", True, 8.0),
              ("s-2", 9, True, "safe", False, 141.0)]


def seed_scores(client: Any, database: str) -> None:
    from tracehouse.sinks.clickhouse.scores import insert_scores, typed_value

    def row(sid: str, call: int, on_span: bool, name: str, value: Any, at_s: float, deleted: int = 0) -> dict[str, Any]:
        trace_id, span_id = _ids(call)
        data_type, number, text = typed_value(value)
        return {"ScoreId": sid, "TraceId": trace_id, "SpanId": span_id if on_span else "", "Name": name,
                "DataType": data_type, "NumericValue": number, "StringValue": text, "Source": "human",
                "Timestamp": datetime.fromtimestamp((T0 + int(at_s * NS)) / NS, UTC), "Deleted": deleted}

    table = f"{database}.otel_traces_scores"
    insert_scores(client, table, "", [row(*score) for score in API_SCORES])
    insert_scores(client, table, "", [row(*API_SCORES[0])])  # sent again
    insert_scores(client, table, "", [row("h-2", 2, True, "helpfulness", 0.3, 21.0)])  # replaced
    insert_scores(client, table, "", [row("gone", 3, False, "helpfulness", 0.0, 31.0)])
    insert_scores(client, table, "", [row("gone", 3, False, "helpfulness", 0.0, 31.0, deleted=1)])


def live_scores(calls: list[list[Call]], raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the scores table holds, with the labels of the span each score judges."""
    spans = {(s["TraceId"], s["SpanId"]): s for s in raw}
    out = []
    index = 1
    for group in calls:
        for call in group:
            trace_id, span_id = _ids(index)
            for n, attrs in enumerate(call.evaluations):
                ts = T0 + int(call.at_s * NS) + call.duration_ns + n + 1
                out.append({"ts_ns": ts, "name": attrs["gen_ai.evaluation.name"],
                            "number": attrs.get("gen_ai.evaluation.score.value"),
                            "label": attrs.get("gen_ai.evaluation.score.label", ""), "span": spans[(trace_id, span_id)]})
            index += 1
    for sid, call_no, _, name, value, at_s in API_SCORES:
        trace_id, span_id = _ids(call_no)
        value = 0.3 if sid == "h-2" else value
        number = float(value) if not isinstance(value, str) else None
        label = ("true" if value else "false") if isinstance(value, bool) else ""
        out.append({"ts_ns": T0 + int(at_s * NS), "name": name, "number": number, "label": label,
                    "span": spans[(trace_id, span_id)]})  # each hand-built trace is one span
    return out


UNUSED_PROMPT = "zz.unused-prompt"


def seed_registry(client: Any, database: str) -> None:
    """Registry rows the exporter cannot make (the table is a contract, written here directly):
    a prompt registered but never used, claimed twice at the same instant (the smaller hash
    wins); a losing later claim of an existing version; and a version whose registry row is
    gone (as for spans stored before the registry existed)."""
    table = f"{database}.otel_traces_prompts"
    columns = ["Name", "Version", "TemplateHash", "Template", "Source", "RegisteredAt"]
    at = datetime(2026, 1, 1, tzinfo=UTC)
    client.insert(table, [
        [UNUSED_PROMPT, "1", "b" * 64, "Unused template B", "manual", at],
        [UNUSED_PROMPT, "1", "a" * 64, "Unused template A", "manual", at],
        [P_EXPLAIN, "1", "c" * 64, "A claim that lost the race", "manual", datetime(2100, 1, 1, tzinfo=UTC)],
    ], column_names=columns)
    client.command(f"DELETE FROM {table} WHERE Name = {{name:String}} AND Version = 'beta'",
                   parameters={"name": P_SUMMARIZE})


@functools.cache
def seeded_data(endpoint: str) -> Seeded:
    """One seeded database per session, shared by every test module that reads it."""
    return asyncio.run(_seed(endpoint, f"tg_{uuid.uuid4().hex[:12]}"))


def is_call(span: dict[str, Any]) -> bool:
    """A model call, as the usage rollup's contract defines it (migration 003)."""
    kind = span["GenAISpanKind"]
    return kind in ("llm", "embedding", "reranker") or (
        kind == "" and (span["GenAIRequestModel"] != "" or span["GenAIResponseModel"] != ""))


def in_rollup(span: dict[str, Any]) -> bool:
    return is_call(span) or span["GenAIPromptName"] != ""
