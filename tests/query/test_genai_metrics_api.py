"""GET /api/v1/metrics/genai over real data: the captured OTLP fixtures and hand-built spans
with OpenTelemetry GenAI attributes, enriched by the real GenAI processors
(genai_normalize -> genai_tokens -> genai_cost) and written by the real ClickHouse exporter
(which feeds the usage rollup and the prompt registry through its materialized views).

Expected numbers are computed in Python from the raw spans table, read once right after
seeding; the spans table is then emptied, so every answer here can only come from the
rollups. test_prompts_api.py shares this seeded database (`seeded_data`).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import math
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from genai_helpers import enrich_all
from otlp_fixtures import load_batch
from tracehouse.core.component import ComponentID, Kind, Settings
from tracehouse.core.pdata import TraceBatch, key_values
from tracehouse.core.telemetry import Telemetry
from tracehouse.core.testing import TestHost
from tracehouse.query.app import create_app, format_ns, parse_time_ns
from tracehouse.query.config import QueryApiConfig, QueryClickHouseConfig
from tracehouse.query.store import TraceStore
from tracehouse.sinks.clickhouse.client import open_client
from tracehouse.sinks.clickhouse.config import ClickHouseExporterConfig
from tracehouse.sinks.clickhouse.exporter import ClickHouseExporter

NS = 1_000_000_000
FIXTURE_FILES = ("otel-genai-openai-v2/http-protobuf.pb", "otel-genai-openai-v2/grpc.pb",
                 "openinference/http-protobuf.pb", "mlflow/http-protobuf.pb",
                 "otel-js-vercel-ai-style/http-json.otlp.json")
# The fixtures were captured on 2026-11-22 between 16:23 and 16:26 UTC.
FIX_START, FIX_END = "2026-11-22T16:00:00Z", "2026-11-22T17:00:00Z"
# The hand-built spans: 2026-01-10 from 12:00:05 to 12:07:xx UTC.
T0 = parse_time_ns("2026-01-10T12:00:00Z")
HAND_START, HAND_END = "2026-01-10T12:00:00Z", "2026-01-10T12:10:00Z"

P_EXPLAIN = "0001.explain_code"  # POML-style: leading digits and a dot
P_SUMMARIZE = "team-a/summarize.v2"  # a slash and a dot
P_GREETING = "greeting"  # templates without a version: the registry numbers them
# Client-given versions of 0001.explain_code, registered in the order "2", "10", "1": numeric
# order (1, 2, 10), string order (1, 10, 2) and registration order all differ.
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


# ------------------------------------------------------------------------------ building spans


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
            **traceloop(P_EXPLAIN, "2", TEMPLATES["2"]))),
         Call("chat-api", 20.25, 450 * ms + 3, chat("openai", "gpt-4o-mini", 300, 40,
                                                  **langfuse(P_SUMMARIZE, "v2"))),
         Call("chat-api", 30.0, 1_234_567_891, chat("openai", "gpt-4o-mini", 50, 12,
                                                    **traceloop(P_GREETING, None, GREETING_TEMPLATES[0]))),
         Call("batch-worker", 45.125, 2_100 * ms, chat("anthropic", "claude-3-5-sonnet-20241022", 2000, 500)),
         Call("chat-api", 65.0, 640 * ms + 99, chat("openai", "gpt-4o", 800, 100,
                                                    **traceloop(P_EXPLAIN, "2", TEMPLATES["2"]))),
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
    return request


async def run_pipeline(batches: Sequence[TraceBatch]) -> list[TraceBatch]:
    """genai_normalize -> genai_tokens -> genai_cost, as the all-in-one config wires them."""
    return await enrich_all(list(batches))


def fixture_batches() -> list[TraceBatch]:
    return [load_batch(relative) for relative in FIXTURE_FILES]


# ------------------------------------------------------------------------------ seeding

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
        result = client.query(
            f"SELECT toUnixTimestamp64Nano(Timestamp) AS ts_ns, {', '.join(RAW_COLUMNS[1:])} "
            f"FROM {database}.otel_traces LIMIT 1 BY TraceId, SpanId")
        raw = [dict(zip(RAW_COLUMNS, row, strict=True)) for row in result.result_rows]
        reg = client.query(f"SELECT Name, Version, TemplateHash, Template, Source, "
                           f"toUnixTimestamp64Nano(RegisteredAt) FROM {database}.otel_traces_prompts")
        registry = [dict(zip(("name", "version", "hash", "template", "source", "registered_ns"), row, strict=True))
                    for row in reg.result_rows]
        # From here on only the rollups hold the data: the API must not read the spans table.
        client.command(f"TRUNCATE TABLE {database}.otel_traces")
    finally:
        client.close()
    templates = {hashlib.sha256(t.encode()).hexdigest(): t for t in [*TEMPLATES.values(), *GREETING_TEMPLATES]}
    return Seeded(endpoint, database, raw, registry, templates)


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
    """One database for this module and test_prompts_api.py, seeded once per session."""
    return asyncio.run(_seed(endpoint, f"tg_{uuid.uuid4().hex[:12]}"))


@pytest.fixture(scope="module")
def seeded(chdb_endpoint: str) -> Seeded:
    return seeded_data(chdb_endpoint)


@pytest.fixture(scope="module")
def app(seeded: Seeded) -> Iterator[FastAPI]:
    """One app (and store) per module: its query threads keep their ClickHouse clients."""
    store = TraceStore(QueryClickHouseConfig(endpoint=seeded.endpoint, database=seeded.database), max_workers=2)
    yield create_app(store, Health(), settings=QueryApiConfig())
    asyncio.run(store.close())


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://query") as client:
        yield client


# ------------------------------------------------------------------------------ expectations


def is_call(span: dict[str, Any]) -> bool:
    """A model call, as the usage rollup's contract defines it (migration 003)."""
    kind = span["GenAISpanKind"]
    return kind in ("llm", "embedding", "reranker") or (
        kind == "" and (span["GenAIRequestModel"] != "" or span["GenAIResponseModel"] != ""))


def in_rollup(span: dict[str, Any]) -> bool:
    return is_call(span) or span["GenAIPromptName"] != ""


GROUP_VALUE: dict[str, Callable[[dict[str, Any]], str]] = {
    "service": lambda s: s["ServiceName"],
    "provider": lambda s: s["GenAIProvider"],
    "model": lambda s: s["GenAIRequestModel"] or s["GenAIResponseModel"],
    "response_model": lambda s: s["GenAIResponseModel"],
    "prompt": lambda s: s["GenAIPromptName"],
    "prompt_version": lambda s: s["GenAIPromptVersion"],
}
FILTERS: dict[str, Callable[[dict[str, Any], str], bool]] = {
    "service": lambda s, v: s["ServiceName"] == v,
    "provider": lambda s, v: s["GenAIProvider"] == v,
    "model": lambda s, v: v in (s["GenAIRequestModel"], s["GenAIResponseModel"]),
    "prompt": lambda s, v: s["GenAIPromptName"] == v,
    "prompt_version": lambda s, v: s["GenAIPromptVersion"] == v,
}


@dataclass
class Sums:
    spans: int = 0
    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    total_tokens: int = 0
    estimated_tokens: int = 0
    estimated_requests: int = 0
    unpriced_requests: int = 0
    cost_usd: Decimal = Decimal(0)
    input_cost_usd: Decimal = Decimal(0)
    output_cost_usd: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        self.durations: list[int] = []

    def add(self, s: dict[str, Any]) -> None:
        call = is_call(s)
        self.spans += 1
        self.requests += call
        self.errors += call and s["StatusCode"] == "Error"
        self.input_tokens += s["GenAIInputTokens"] or 0
        self.output_tokens += s["GenAIOutputTokens"] or 0
        self.cached_input_tokens += s["GenAICachedInputTokens"] or 0
        self.reasoning_tokens += s["GenAIReasoningTokens"] or 0
        self.total_tokens += s["GenAITotalTokens"] or 0
        self.estimated_tokens += (s["GenAITotalTokens"] or 0) if s["GenAITokensEstimated"] else 0
        self.estimated_requests += call and bool(s["GenAITokensEstimated"])
        self.unpriced_requests += call and s["GenAITotalCostUSD"] is None
        self.cost_usd += s["GenAITotalCostUSD"] or 0
        self.input_cost_usd += s["GenAIInputCostUSD"] or 0
        self.output_cost_usd += s["GenAIOutputCostUSD"] or 0
        if call:
            self.durations.append(int(s["Duration"]))


def expected(raw: Iterable[dict[str, Any]], start_s: int, end_s: int, step_s: int, group_by: Sequence[str] = (),
             **filters: str) -> tuple[dict[tuple[str, ...], dict[int, Sums]], dict[tuple[str, ...], Sums], Sums]:
    """Points, series totals and the grand total, straight from the raw span rows."""
    points: dict[tuple[str, ...], dict[int, Sums]] = {}
    series: dict[tuple[str, ...], Sums] = {}
    total = Sums()
    for s in raw:
        minute = s["ts_ns"] // NS // 60 * 60
        if not in_rollup(s) or not start_s <= minute < end_s:
            continue
        if not all(FILTERS[k](s, v) for k, v in filters.items()):
            continue
        key = tuple(GROUP_VALUE[g](s) for g in group_by)
        bucket = minute // step_s * step_s
        points.setdefault(key, {}).setdefault(bucket, Sums()).add(s)
        series.setdefault(key, Sums()).add(s)
        total.add(s)
    return points, series, total


COUNTS = ("spans", "requests", "errors", "input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens",
          "total_tokens", "estimated_tokens", "estimated_requests", "unpriced_requests")
COSTS = ("cost_usd", "input_cost_usd", "output_cost_usd")


def assert_usage(got: dict[str, Any], want: Sums, where: str) -> None:
    for name in COUNTS:
        assert got[name] == getattr(want, name), (where, name)
    for name in COSTS:
        exact = getattr(want, name)
        # JSON numbers: the exact Decimal sum rounded to the nearest double.
        assert math.isclose(got[name], float(exact), rel_tol=1e-12, abs_tol=0.0), (where, name, got[name], exact)
    latency = got["latency_ms"]
    if want.requests == 0:
        assert latency is None, where
        return
    durations = want.durations
    assert latency["avg"] == sum(durations) / len(durations) / 1e6, where
    lo, hi = min(durations) / 1e6, max(durations) / 1e6
    values = [latency[p] for p in ("p50", "p90", "p95", "p99")]
    assert values == sorted(values), where
    for v in values:  # t-digest centroids are float32: ~7 significant digits
        assert lo * (1 - 1e-6) <= v <= hi * (1 + 1e-6), (where, v, lo, hi)


def iso_s(seconds: int) -> str:
    return format_ns(seconds * NS)


async def metrics(api: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    resp = await api.get("/api/v1/metrics/genai", params=params)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def check_body(body: dict[str, Any], seeded: Seeded, group_by: Sequence[str] = (), **filters: str) -> None:
    start_s = parse_time_ns(body["start"]) // NS
    end_s = parse_time_ns(body["end"]) // NS
    step_s = body["step_seconds"]
    points, series, total = expected(seeded.raw, start_s, end_s, step_s, group_by, **filters)
    assert body["group_by"] == list(group_by)
    got_keys = [tuple(s["group"][g] for g in group_by) for s in body["series"]]
    assert got_keys == sorted(series), "one series per group with data, ordered by group values"
    for s in body["series"]:
        key = tuple(s["group"][g] for g in group_by)
        assert set(s["group"]) == set(group_by)
        assert_usage(s["totals"], series[key], f"series {key}")
        times = [p["time"] for p in s["points"]]
        assert times == [iso_s(b) for b in sorted(points[key])], f"points of {key}: only buckets with data"
        for p in s["points"]:
            bucket = parse_time_ns(p["time"]) // NS
            assert_usage(p, points[key][bucket], f"point {key} {p['time']}")
    assert_usage(body["totals"], total, "totals")


# ------------------------------------------------------------------------------ tests


@pytest.mark.parametrize(("group_by", "step"), [
    ((), "60s"),
    (("service",), "2m"),
    (("provider", "model"), "60"),
    (("model",), "3m"),
    (("response_model",), "1m"),
    (("prompt", "prompt_version"), "60s"),
    (("service", "provider", "model", "response_model", "prompt", "prompt_version"), "60s"),
])
async def test_metrics_equal_sums_of_the_raw_spans(api: httpx.AsyncClient, seeded: Seeded,
                                                   group_by: tuple[str, ...], step: str) -> None:
    """The key property: every point, series total and grand total equals the same sums
    computed from the raw spans (requests, errors, tokens exactly; costs to 1e-12)."""
    for start, end in ((HAND_START, HAND_END), (FIX_START, FIX_END)):
        body = await metrics(api, start=start, end=end, step=step, group_by=",".join(group_by))
        assert body["series"], (group_by, start)
        check_body(body, seeded, group_by)


async def test_the_seed_covers_what_the_rollup_must_get_right(seeded: Seeded) -> None:
    """Guard for the key test: the data has what makes it meaningful."""
    calls = [s for s in seeded.raw if is_call(s)]
    assert {s["ServiceName"] for s in calls} >= {"chat-api", "batch-worker", "docs-bot"}
    assert any(s["StatusCode"] == "Error" for s in calls)
    assert any(s["GenAITokensEstimated"] for s in calls), "a call with estimated tokens"
    assert any(s["GenAITotalCostUSD"] is None for s in calls), "an unpriced call"
    assert any(not is_call(s) and s["GenAIPromptName"] for s in seeded.raw), "a prompt-linked non-call span"
    assert any(not in_rollup(s) and s["GenAIRequestModel"] for s in seeded.raw), "a model on a non-call span"
    assert any(s["GenAIRequestModel"] == "" and s["GenAIResponseModel"] for s in calls), "response model only"
    assert any(s["GenAICachedInputTokens"] for s in calls) and any(s["GenAIReasoningTokens"] for s in calls)
    costs = [s["GenAITotalCostUSD"] for s in calls if s["GenAITotalCostUSD"]]
    assert len(costs) > 10 and any(c.as_tuple().exponent < -6 for c in costs), "costs need 1e-12 precision"
    client = open_client(seeded.endpoint)
    try:
        rows, keys = client.query(
            f"SELECT count(), uniqExact(Minute, ServiceName, Provider, RequestModel, ResponseModel, PromptName, "
            f"PromptVersion) FROM {seeded.database}.otel_traces_genai_usage_1m").result_rows[0]
        stored_spans = client.query(f"SELECT count() FROM {seeded.database}.otel_traces").result_rows[0][0]
    finally:
        client.close()
    assert rows > keys, "partial rollup rows exist: reading without GROUP BY would double-count"
    assert stored_spans == 0, "the spans table is empty: the API can only have read the rollups"


@pytest.mark.parametrize("filters", [
    {"service": "chat-api"},
    {"provider": "anthropic"},
    {"model": "gpt-4o-mini"},  # request model, or response model alone
    {"model": "gpt-4o-mini-2024-07-18"},  # response model
    {"prompt": P_EXPLAIN},
    {"prompt": P_SUMMARIZE, "prompt_version": "v10"},
    {"service": "chat-api", "provider": "openai", "model": "gpt-4o"},
    {"service": "no-such-service"},
])
async def test_filters_equal_filtered_raw_sums(api: httpx.AsyncClient, seeded: Seeded,
                                               filters: dict[str, str]) -> None:
    for start, end in ((HAND_START, HAND_END), (FIX_START, FIX_END)):
        body = await metrics(api, start=start, end=end, step="1m", group_by="service,model", **filters)
        check_body(body, seeded, ("service", "model"), **filters)


async def test_model_groups_by_response_model_when_no_request_model(api: httpx.AsyncClient) -> None:
    body = await metrics(api, start=HAND_START, end=HAND_END, group_by="service,model", service="docs-bot")
    groups = [s["group"] for s in body["series"]]
    assert {"service": "docs-bot", "model": "gpt-4o-mini-2024-07-18"} in groups
    assert {"service": "docs-bot", "model": "fail-model"} in groups
    fail = next(s for s in body["series"] if s["group"]["model"] == "fail-model")
    assert fail["totals"]["requests"] == fail["totals"]["errors"] == 1
    assert fail["totals"]["unpriced_requests"] == 1 and fail["totals"]["cost_usd"] == 0


async def test_prompt_link_without_a_call_counts_as_a_span_only(api: httpx.AsyncClient) -> None:
    body = await metrics(api, start=HAND_START, end=HAND_END, step="10m", prompt=P_SUMMARIZE,
                         prompt_version="v10")
    [series] = body["series"]
    totals = series["totals"]
    assert (totals["spans"], totals["requests"]) == (2, 1)
    assert totals["latency_ms"]["avg"] == 700.000005  # the call's only; the render span is no request


async def test_range_and_step_alignment(api: httpx.AsyncClient, seeded: Seeded) -> None:
    body = await metrics(api, start="2026-01-10T12:01:30Z", end="2026-01-10T12:04:10Z", step="2m")
    assert (body["start"], body["end"]) == ("2026-01-10T12:00:00.000000000Z", "2026-01-10T12:06:00.000000000Z")
    assert body["step_seconds"] == 120
    assert [p["time"] for p in body["series"][0]["points"]] == [
        "2026-01-10T12:00:00.000000000Z", "2026-01-10T12:02:00.000000000Z", "2026-01-10T12:04:00.000000000Z"]
    check_body(body, seeded)
    # unix seconds work as well, and so do the other step spellings
    for step in ("120", "120s", "2m", "2.0m"):
        same = await metrics(api, start=str(T0 // NS + 90), end=str(T0 // NS + 250), step=step)
        assert same == body


async def test_default_step_gives_at_most_120_points(api: httpx.AsyncClient, seeded: Seeded) -> None:
    one_hour = await metrics(api, start="2026-01-10T11:30:00Z", end="2026-01-10T12:30:00Z")
    assert one_hour["step_seconds"] == 60
    day = await metrics(api, start="2026-01-10T00:00:00Z", end="2026-01-11T00:00:00Z")
    assert day["step_seconds"] == 720  # 86400 s / 120 = 12 min
    check_body(day, seeded)
    odd = await metrics(api, start="2026-01-10T00:00:00Z", end="2026-01-10T05:00:01Z")
    assert odd["step_seconds"] == 180  # 18001 s / 120 -> 150.01 s -> rounded up to 3 min
    assert (parse_time_ns(odd["end"]) - parse_time_ns(odd["start"])) // NS // 180 <= 121
    # default range: the last hour up to now (nothing seeded there)
    now = await metrics(api)
    assert now["step_seconds"] == 60 and now["series"] == []
    assert (parse_time_ns(now["end"]) - parse_time_ns(now["start"])) // NS in (3600, 3660)


async def test_empty_range_has_no_series_and_zero_totals(api: httpx.AsyncClient) -> None:
    body = await metrics(api, start="2020-01-01T00:00:00Z", end="2020-01-02T00:00:00Z", group_by="model")
    assert body["series"] == []
    totals = body["totals"]
    assert totals["requests"] == totals["total_tokens"] == 0 and totals["cost_usd"] == 0.0
    assert totals["latency_ms"] is None


async def test_points_are_not_zero_filled(api: httpx.AsyncClient) -> None:
    body = await metrics(api, start=HAND_START, end=HAND_END, step="1m", group_by="service", service="batch-worker")
    [series] = body["series"]
    # batch-worker calls at 12:00:45, 12:01:40 (embedding), 12:03:10, 12:07:10: nothing at 12:02, 12:04..06
    assert [p["time"][11:16] for p in series["points"]] == ["12:00", "12:01", "12:03", "12:07"]


@pytest.mark.parametrize(("params", "parameter"), [
    ({"step": "90s"}, "step"),
    ({"step": "30"}, "step"),
    ({"step": "0"}, "step"),
    ({"step": "5 minutes"}, "step"),
    ({"step": "-60"}, "step"),
    ({"start": "2026-01-01T00:00:00Z", "end": "2026-03-01T00:00:00Z", "step": "1m"}, "step"),  # > 10 000 points
    ({"group_by": "service,colour"}, "group_by"),
    ({"group_by": "trace"}, "group_by"),
    ({"start": HAND_END, "end": HAND_START}, "start"),
    ({"start": HAND_START, "end": HAND_START}, "start"),
    ({"start": "yesterday"}, "start"),
    ({"end": "2026-13-01T00:00:00Z"}, "end"),
])
async def test_bad_parameters_are_400(api: httpx.AsyncClient, params: dict[str, str], parameter: str) -> None:
    resp = await api.get("/api/v1/metrics/genai", params=params)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["code"] == 400 and error["parameter"] == parameter and parameter in error["message"]


async def test_clickhouse_failure_is_503(chdb_endpoint: str) -> None:
    store = TraceStore(QueryClickHouseConfig(endpoint=chdb_endpoint, database="no_such_db_metrics"), max_workers=1)
    app = create_app(store, Health())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://query") as client:
        for path in ("/api/v1/metrics/genai", "/api/v1/prompts", "/api/v1/prompts/x"):
            resp = await client.get(path)
            assert resp.status_code == 503, (path, resp.text)
            assert resp.json()["error"]["message"].startswith("the trace store could not answer")
    await store.close()


async def test_openapi_documents_the_genai_endpoints(api: httpx.AsyncClient) -> None:
    doc = (await api.get("/openapi.json")).json()
    for path in ("/api/v1/metrics/genai", "/api/v1/prompts", "/api/v1/prompts/{name}"):
        operation = doc["paths"][path]["get"]
        assert "422" not in operation["responses"] and "400" in operation["responses"], path
        assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    params = {p["name"] for p in doc["paths"]["/api/v1/metrics/genai"]["get"]["parameters"]}
    assert params == {"start", "end", "step", "group_by", "service", "provider", "model", "prompt", "prompt_version"}
    assert "404" in doc["paths"]["/api/v1/prompts/{name}"]["get"]["responses"]
    schemas = doc["components"]["schemas"]
    assert {"GenAIMetricsResponse", "GenAISeries", "GenAIPoint", "LatencyMs", "PromptListResponse",
            "PromptDetailResponse", "PromptVersionDetail"} <= set(schemas)
