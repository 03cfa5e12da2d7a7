"""The Jaeger-compatible API (query/jaeger/) over real data: hand-built spans written by the
real ClickHouse exporter into chDB (each span then stored a second time, merges stopped, so
every read must collapse duplicates), read back in-process through the app."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from test_query_api import FakeHost, SpanSpec, build_batch, make_store, seed, split_per_span
from tracehouse.core.pdata import TraceBatch, key_values
from tracehouse.query.app import create_app
from tracehouse.query.jaeger.params import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    parse_go_duration,
    parse_logfmt,
    parse_limit,
    parse_lookback,
)
from tracehouse.query.jaeger.rows import traces_from_rows
from tracehouse.query.store import JaegerSearchQuery
from tracehouse.sinks.clickhouse.client import open_client
from tracehouse.sinks.clickhouse.columns import batch_to_columns

NS = 1_000_000_000
MS = 1_000_000
US = 1_000
DAY = 86_400 * NS

TRACE_A = "a1" * 16      # jg-shop root + jg-llm GenAI child + jg-shop error child (another host)
TRACE_B = "b2" * 16      # one jg-shop span, anthropic tokens without cost
TRACE_C = "c3" * 16      # one jg-shop server span, the newest
TRACE_E = "e5" * 16      # jg-shop, three hours old: only a longer lookback finds it
TRACE_OLD = "0" * 16 + "1234567890abcdef"  # 64-bit id (upper half zero), ten days old, jg-old

A1, A2, A3 = "a000000000000001", "a000000000000002", "a000000000000003"
B1, C1, E1, OLD1 = "b000000000000001", "c000000000000001", "e000000000000001", "d000000000000001"

GENAI_A2 = {
    "GenAIProvider": "openai", "GenAIOperation": "chat", "GenAISpanKind": "llm",
    "GenAIRequestModel": "gpt-4o", "GenAIResponseModel": "gpt-4o-2024-08-06",
    "GenAIInputTokens": 100, "GenAIOutputTokens": 20, "GenAICachedInputTokens": 8,
    "GenAIReasoningTokens": 5, "GenAITotalTokens": 120, "GenAITokensEstimated": False,
    "GenAIInputCostUSD": Decimal("0.00025"), "GenAIOutputCostUSD": Decimal("0.0002"),
    "GenAITotalCostUSD": Decimal("0.00045"), "GenAICostSource": "computed",
    "GenAIPromptName": "checkout-helper", "GenAIPromptVersion": "3",
    "GenAIPromptTemplateHash": "ab" * 32, "GenAIPromptSource": "Langfuse",
    "GenAISessionId": "sess-1", "GenAIUserId": "user-7",
}
GENAI_B1 = {"GenAIProvider": "anthropic", "GenAIRequestModel": "claude-sonnet-4",
            "GenAIInputTokens": 10, "GenAIOutputTokens": 5}


@dataclass
class Seeded:
    database: str
    t0: int  # ns, with a sub-microsecond remainder so truncation to µs shows
    client: Any  # the session holding SYSTEM STOP MERGES

    def rows(self, trace_id: str | None = None) -> int:
        where = "" if trace_id is None else f" WHERE TraceId = '{trace_id}'"
        count: int = self.client.query(f"SELECT count() FROM {self.database}.otel_traces{where}").result_rows[0][0]
        return count

    def us(self, offset_ns: int = 0) -> int:
        return (self.t0 + offset_ns) // US


def with_resource(batch: TraceBatch, extra: dict[str, Any]) -> TraceBatch:
    for rs in batch.request.resource_spans:
        rs.resource.attributes.extend(key_values(extra))
    batch.mark_mutated()
    return batch


def batches(t0: int, now: int) -> list[TraceBatch]:
    shop = [
        SpanSpec("jg-shop", TRACE_A, A1, "", "POST /checkout", t0, 2_500_000_500, kind=Span.SPAN_KIND_SERVER,
                 code=Status.STATUS_CODE_OK, attrs={"http.method": "POST", "tenant": "acme", "retries": 2,
                                                    "sampled": True}, trace_state="vendor=1"),
        SpanSpec("jg-llm", TRACE_A, A2, A1, "chat gpt-4o", t0 + 100_000_001, 800_000_999,
                 kind=Span.SPAN_KIND_CLIENT, attrs={"gen_ai.request.model": "gpt-4o", "tenant": "acme",
                                                    "gen_ai.usage.input_tokens": 100, "gen_ai.request.temperature": 1.0,
                                                    "order.id": "9007199254740993", "gen_ai.request.top_p": "most"},
                 events=[(t0 + 100_000_777, "gen_ai.content.prompt", {"gen_ai.prompt": "hi", "n": 1})],
                 links=[(TRACE_B, B1, "linked=1", {"link.kind": "follows"})], genai=GENAI_A2),
        SpanSpec("jg-shop", TRACE_B, B1, "", "GET /health", t0 + 10 * NS, 5 * MS,
                 kind=Span.SPAN_KIND_UNSPECIFIED, attrs={"tenant": "globex"}, genai=GENAI_B1),
        SpanSpec("jg-shop", TRACE_C, C1, "", "POST /checkout", t0 + 20 * NS, 50 * MS,
                 kind=Span.SPAN_KIND_SERVER, attrs={"tenant": "acme"}),
        SpanSpec("jg-old", TRACE_OLD, OLD1, "", "ancient op", now - 10 * DAY, 1 * MS),
    ]
    # the error child: same service as the root, another host (so another Jaeger process); two
    # spans in this batch so that no single-span copy below repeats the exporter's insert block
    error_child = SpanSpec("jg-shop", TRACE_A, A3, A1, "SELECT orders", t0 + 1_500_000_000, 900 * MS,
                           kind=Span.SPAN_KIND_CLIENT, code=Status.STATUS_CODE_ERROR,
                           message="timeout after 900ms", attrs={"db.system": "postgresql"})
    old_checkout = SpanSpec("jg-shop", TRACE_E, E1, "", "POST /checkout", now - 3 * 3600 * NS, 10 * MS,
                            kind=Span.SPAN_KIND_SERVER, attrs={"tenant": "acme"})
    return [build_batch(shop), with_resource(build_batch([error_child, old_checkout]), {"host.name": "node-2"})]


@pytest.fixture(scope="module")
def seeded(chdb_endpoint: str) -> Iterator[Seeded]:
    yield from stored_twice(chdb_endpoint)


def stored_twice(chdb_endpoint: str) -> Iterator[Seeded]:
    """One database, shared read-only: every span written by the exporter, then written again
    straight into the table with merges stopped (as between a retry's insert and a merge)."""
    database = f"tj_{uuid.uuid4().hex[:12]}"
    now = time.time_ns()
    t0 = (now - 1800 * NS) // US * US + 789  # half an hour ago, 789 ns past a microsecond
    written = batches(t0, now)
    asyncio.run(seed(chdb_endpoint, database, written))
    # chDB lifts SYSTEM STOP MERGES when the session that ran it closes: keep it open throughout
    client = open_client(chdb_endpoint)
    try:
        client.command(f"SYSTEM STOP MERGES {database}.otel_traces")
        # one block per span: not a block the exporter sent, so insert deduplication keeps them
        for batch in written:
            for one in split_per_span(batch):
                names, data = batch_to_columns(one)
                client.insert(f"{database}.otel_traces", data, column_names=names, column_oriented=True)
        seeded = Seeded(database, t0, client)
        assert seeded.rows() == 2 * sum(b.span_count for b in written) == 14
        yield seeded
    finally:
        client.close()


@pytest.fixture
async def api(seeded: Seeded, chdb_endpoint: str) -> AsyncIterator[httpx.AsyncClient]:
    store = make_store(chdb_endpoint, seeded.database)
    app = create_app(store, FakeHost())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://query") as client:
        yield client
    await store.close()


async def ok(api: httpx.AsyncClient, path: str, **params: Any) -> Any:
    resp = await api.get(path, params=params)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert set(body) == {"data", "total", "limit", "offset", "errors"}
    assert (body["limit"], body["offset"]) == (0, 0)
    assert body["total"] == len(body["data"])
    return body


async def find(api: httpx.AsyncClient, seeded: Seeded, **params: Any) -> list[str]:
    """Trace ids of a search over [t0 - 1s, t0 + 60s] (µs) unless the test sets the range."""
    params.setdefault("service", "jg-shop")
    params.setdefault("start", seeded.us(-NS))
    params.setdefault("end", seeded.us(60 * NS))
    body = await ok(api, "/api/traces", **params)
    assert body["errors"] is None
    for trace in body["data"]:
        ids = [s["spanID"] for s in trace["spans"]]
        assert len(ids) == len(set(ids)), "a duplicated span row must be shown once"
    return [t["traceID"] for t in body["data"]]


def tags_of(span: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    keys = [t["key"] for t in span["tags"]]
    assert len(keys) == len(set(keys)), f"duplicate tag keys: {keys}"
    return {t["key"]: (t["type"], t["value"]) for t in span["tags"]}


def s(value: str) -> tuple[str, str]:
    return ("string", value)


# ------------------------------------------------------------------------------ services, operations


async def test_services_are_the_last_seven_days(api: httpx.AsyncClient) -> None:
    body = await ok(api, "/api/services")
    assert body["data"] == ["jg-llm", "jg-shop"]  # jg-old's only span is ten days old
    assert body["total"] == 2 and body["errors"] is None


async def test_service_operations(api: httpx.AsyncClient) -> None:
    body = await ok(api, "/api/services/jg-shop/operations")
    assert body["data"] == ["GET /health", "POST /checkout", "SELECT orders"]
    assert (await ok(api, "/api/services/jg-llm/operations"))["data"] == ["chat gpt-4o"]
    assert (await ok(api, "/api/services/jg-old/operations"))["data"] == []
    assert (await ok(api, "/api/services/no%2Fsuch/operations"))["data"] == []


async def test_operations_with_span_kinds(api: httpx.AsyncClient) -> None:
    body = await ok(api, "/api/operations", service="jg-shop")
    assert body["data"] == [{"name": "GET /health", "spanKind": ""},
                            {"name": "POST /checkout", "spanKind": "server"},
                            {"name": "SELECT orders", "spanKind": "client"}]
    server = await ok(api, "/api/operations", service="jg-shop", spanKind="server")
    assert server["data"] == [{"name": "POST /checkout", "spanKind": "server"}]
    unspecified = await ok(api, "/api/operations", service="jg-shop", spanKind="unspecified")
    assert unspecified["data"] == [{"name": "GET /health", "spanKind": ""}]
    assert (await ok(api, "/api/operations", service="jg-llm", spanKind="server"))["data"] == []


# ------------------------------------------------------------------------------ one trace


async def test_trace_is_jaegers_model(api: httpx.AsyncClient, seeded: Seeded) -> None:
    body = await ok(api, f"/api/traces/{TRACE_A.upper()}")  # any case
    assert body["errors"] is None and body["total"] == 1
    [trace] = body["data"]
    assert set(trace) == {"traceID", "spans", "processes", "warnings"}
    assert trace["traceID"] == TRACE_A and trace["warnings"] is None
    spans = trace["spans"]
    assert [sp["spanID"] for sp in spans] == [A1, A2, A3]  # once each, by start time
    root, chat, query = spans
    t0 = seeded.t0
    for sp in spans:
        assert set(sp) == {"traceID", "spanID", "flags", "operationName", "references", "startTime",
                           "duration", "tags", "logs", "processID", "warnings"}
        assert sp["traceID"] == TRACE_A and sp["flags"] == 1 and sp["warnings"] is None
    # times: µs, truncated
    assert (root["startTime"], root["duration"]) == (t0 // US, 2_500_000)
    assert (chat["startTime"], chat["duration"]) == ((t0 + 100_000_001) // US, 800_000)
    assert (query["startTime"], query["duration"]) == ((t0 + 1_500_000_000) // US, 900_000)
    assert [sp["operationName"] for sp in spans] == ["POST /checkout", "chat gpt-4o", "SELECT orders"]
    # references: the parent, then links
    assert root["references"] == []
    assert chat["references"] == [{"refType": "CHILD_OF", "traceID": TRACE_A, "spanID": A1},
                                  {"refType": "FOLLOWS_FROM", "traceID": TRACE_B, "spanID": B1}]
    assert query["references"] == [{"refType": "CHILD_OF", "traceID": TRACE_A, "spanID": A1}]
    # tags: attributes typed as the OTLP export types them, then the OTLP translator's conventions
    assert root["tags"] == [
        {"key": "http.method", "type": "string", "value": "POST"},
        {"key": "tenant", "type": "string", "value": "acme"},
        {"key": "retries", "type": "int64", "value": 2},
        {"key": "sampled", "type": "bool", "value": True},
        {"key": "otel.scope.name", "type": "string", "value": "test.scope"},
        {"key": "otel.scope.version", "type": "string", "value": "1.2.3"},
        {"key": "span.kind", "type": "string", "value": "server"},
        {"key": "otel.status_code", "type": "string", "value": "OK"},
        {"key": "w3c.tracestate", "type": "string", "value": "vendor=1"},
    ]
    assert tags_of(query) == {
        "db.system": s("postgresql"), "otel.scope.name": s("test.scope"), "otel.scope.version": s("1.2.3"),
        "span.kind": s("client"), "otel.status_code": s("ERROR"), "error": ("bool", True),
        "otel.status_description": s("timeout after 900ms"),
    }
    # GenAI: the attribute keeps its key (no second gen_ai.request.model); typed canonical tags.
    # Attributes of a known GenAI type take it back: the temperature 1.0 (stored "1") is a double;
    # an int JavaScript cannot hold exactly stays text, as does a number-typed key holding text.
    assert tags_of(chat) == {
        "gen_ai.request.model": s("gpt-4o"), "tenant": s("acme"),
        "gen_ai.usage.input_tokens": ("int64", 100), "gen_ai.request.temperature": ("float64", 1.0),
        "order.id": s("9007199254740993"), "gen_ai.request.top_p": s("most"),
        "otel.scope.name": s("test.scope"), "otel.scope.version": s("1.2.3"), "span.kind": s("client"),
        "gen_ai.provider.name": s("openai"), "gen_ai.operation.name": s("chat"),
        "gen_ai.response.model": s("gpt-4o-2024-08-06"),
        "tracehouse.genai.span_kind": s("llm"),
        "tracehouse.genai.input_tokens": ("int64", 100), "tracehouse.genai.output_tokens": ("int64", 20),
        "tracehouse.genai.cached_input_tokens": ("int64", 8),
        "tracehouse.genai.reasoning_tokens": ("int64", 5), "tracehouse.genai.total_tokens": ("int64", 120),
        "tracehouse.genai.tokens_estimated": ("bool", False),
        "tracehouse.genai.input_cost_usd": ("float64", 0.00025),
        "tracehouse.genai.output_cost_usd": ("float64", 0.0002),
        "tracehouse.genai.total_cost_usd": ("float64", 0.00045),
        "tracehouse.genai.cost_source": s("computed"),
        "tracehouse.genai.prompt.name": s("checkout-helper"), "tracehouse.genai.prompt.version": s("3"),
        "tracehouse.genai.session_id": s("sess-1"), "tracehouse.genai.user_id": s("user-7"),
    }
    assert chat["tags"][0] == {"key": "gen_ai.request.model", "type": "string", "value": "gpt-4o"}
    # events -> logs
    assert root["logs"] == [] and query["logs"] == []
    assert chat["logs"] == [{"timestamp": (t0 + 100_000_777) // US, "fields": [
        {"key": "event", "type": "string", "value": "gen_ai.content.prompt"},
        {"key": "gen_ai.prompt", "type": "string", "value": "hi"},
        {"key": "n", "type": "int64", "value": 1}]}]
    # processes: one per (service, resource)
    processes = trace["processes"]
    assert len(processes) == 3 and len({sp["processID"] for sp in spans}) == 3

    def process(span: dict[str, Any]) -> tuple[str, dict[str, tuple[str, Any]]]:
        p = processes[span["processID"]]
        return p["serviceName"], {t["key"]: (t["type"], t["value"]) for t in p["tags"]}

    assert process(root) == ("jg-shop", {"service.name": s("jg-shop"), "deployment.environment": s("test")})
    assert process(chat) == ("jg-llm", {"service.name": s("jg-llm"), "deployment.environment": s("test")})
    assert process(query) == ("jg-shop", {"service.name": s("jg-shop"), "deployment.environment": s("test"),
                                          "host.name": s("node-2")})


async def test_genai_tags_agree_with_the_v1_api(api: httpx.AsyncClient) -> None:
    for trace_id in (TRACE_A, TRACE_B, TRACE_C):
        [trace] = (await ok(api, f"/api/traces/{trace_id}"))["data"]
        v1 = (await api.get(f"/api/v1/traces/{trace_id}")).json()
        assert [sp["spanID"] for sp in trace["spans"]] == [sp["span_id"] for sp in v1["spans"]]
        for jaeger, detail in zip(trace["spans"], v1["spans"], strict=True):
            tags = tags_of(jaeger)
            genai = detail["genai"]
            for name in ("input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens",
                         "total_tokens", "input_cost_usd", "output_cost_usd", "total_cost_usd"):
                kind = "float64" if name.endswith("_usd") else "int64"
                want = None if genai[name] is None else (kind, genai[name])
                assert tags.get(f"tracehouse.genai.{name}") == want, (trace_id, name)
            for name in ("session_id", "user_id", "cost_source", "span_kind"):
                want = ("string", genai[name]) if genai[name] else None
                assert tags.get(f"tracehouse.genai.{name}") == want, (trace_id, name)
            for name, key in (("provider", "gen_ai.provider.name"), ("request_model", "gen_ai.request.model")):
                assert tags.get(key) == (("string", genai[name]) if genai[name] else None)
    # B: tokens without cost; the estimate flag shows next to token counts only
    [b] = (await ok(api, f"/api/traces/{TRACE_B}"))["data"]
    tags = tags_of(b["spans"][0])
    assert tags["tracehouse.genai.tokens_estimated"] == ("bool", False)
    assert "tracehouse.genai.total_cost_usd" not in tags and "span.kind" not in tags
    assert "otel.status_code" not in tags and "error" not in tags
    [c] = (await ok(api, f"/api/traces/{TRACE_C}"))["data"]
    assert not [k for k in tags_of(c["spans"][0]) if "genai" in k or k.startswith("gen_ai")]


async def test_sixty_four_bit_trace_ids_are_padded(api: httpx.AsyncClient) -> None:
    body = await ok(api, "/api/traces/1234567890ABCDEF")
    assert [t["traceID"] for t in body["data"]] == [TRACE_OLD]
    assert body["data"][0]["spans"][0]["spanID"] == OLD1


async def test_unknown_trace_is_jaegers_404(api: httpx.AsyncClient) -> None:
    resp = await api.get("/api/traces/0123456789abcdef0123456789abcdef")
    assert resp.status_code == 404
    assert resp.json() == {"data": None, "total": 0, "limit": 0, "offset": 0,
                           "errors": [{"code": 404, "msg": "trace not found"}]}


async def test_trace_ids_on_the_search_route(api: httpx.AsyncClient) -> None:
    body = await ok(api, "/api/traces", traceID=[TRACE_C, TRACE_A.upper(), TRACE_C])
    assert [t["traceID"] for t in body["data"]] == [TRACE_C, TRACE_A]
    assert [len(t["spans"]) for t in body["data"]] == [1, 3] and body["errors"] is None
    missing = "0123456789abcdef0123456789abcdef"
    body = await ok(api, "/api/traces", traceID=f"{TRACE_B},{missing}")
    assert [t["traceID"] for t in body["data"]] == [TRACE_B]
    assert body["errors"] == [{"code": 404, "msg": "trace not found", "traceID": missing}]


# ------------------------------------------------------------------------------ search


@pytest.mark.parametrize(("params", "want"), [
    ({}, [TRACE_C, TRACE_B, TRACE_A]),                 # newest matching span first
    ({"service": "jg-llm"}, [TRACE_A]),
    ({"service": "nobody"}, []),
    ({"operation": "POST /checkout"}, [TRACE_C, TRACE_A]),
    ({"operation": "chat gpt-4o"}, []),                # a jg-llm operation, not jg-shop's
    # span attributes and resource (process) attributes
    ({"tags": '{"tenant": "acme"}'}, [TRACE_C, TRACE_A]),
    ({"tags": '{"tenant": "globex"}'}, [TRACE_B]),
    ({"tags": '{"retries": 2, "sampled": true}'}, [TRACE_A]),  # JSON numbers and booleans
    ({"tags": '{"deployment.environment": "test"}'}, [TRACE_C, TRACE_B, TRACE_A]),
    ({"tags": '{"host.name": "node-2"}'}, [TRACE_A]),
    ({"tags": '{"tenant": ""}'}, []),
    ({"tags": '{"no.such.key": ""}'}, []),
    # derived tags
    ({"tags": '{"error": "true"}'}, [TRACE_A]),
    ({"tags": '{"error": true}'}, [TRACE_A]),
    ({"tags": '{"error": "false"}'}, []),
    ({"tags": '{"span.kind": "server"}'}, [TRACE_C, TRACE_A]),
    ({"tags": '{"span.kind": "client"}'}, [TRACE_A]),
    ({"tags": '{"otel.status_code": "OK"}'}, [TRACE_A]),
    ({"tags": '{"otel.status_code": "ERROR"}'}, [TRACE_A]),
    ({"tags": '{"otel.status_description": "timeout after 900ms"}'}, [TRACE_A]),
    ({"tags": '{"otel.scope.name": "test.scope", "otel.scope.version": "1.2.3"}'},
     [TRACE_C, TRACE_B, TRACE_A]),
    ({"tags": '{"w3c.tracestate": "vendor=1"}'}, [TRACE_A]),
    # all tags on the same span: A's root has the tenant, its error child the error
    ({"tags": '{"tenant": "acme", "error": "true"}'}, []),
    ({"tags": '{"tenant": "acme", "span.kind": "server"}'}, [TRACE_C, TRACE_A]),
    # GenAI columns
    ({"service": "jg-llm", "tags": '{"gen_ai.provider.name": "openai"}'}, [TRACE_A]),
    ({"tags": '{"gen_ai.provider.name": "anthropic"}'}, [TRACE_B]),
    ({"tags": '{"gen_ai.request.model": "claude-sonnet-4"}'}, [TRACE_B]),
    ({"service": "jg-llm", "tags": '{"gen_ai.request.model": "gpt-4o"}'}, [TRACE_A]),
    ({"service": "jg-llm", "tags": '{"gen_ai.response.model": "gpt-4o-2024-08-06"}'}, [TRACE_A]),
    ({"service": "jg-llm", "tags": '{"gen_ai.operation.name": "chat"}'}, [TRACE_A]),
    ({"service": "jg-llm", "tags": '{"tracehouse.genai.input_tokens": "100"}'}, [TRACE_A]),
    ({"service": "jg-llm", "tags": '{"tracehouse.genai.total_tokens": 120}'}, [TRACE_A]),
    ({"service": "jg-llm", "tags": '{"tracehouse.genai.input_tokens": "101"}'}, []),
    ({"service": "jg-llm", "tags": '{"tracehouse.genai.total_cost_usd": "0.00045"}'}, [TRACE_A]),
    ({"service": "jg-llm", "tags": '{"tracehouse.genai.total_cost_usd": 0.00045}'}, [TRACE_A]),
    ({"service": "jg-llm", "tags": '{"tracehouse.genai.span_kind": "llm", "tracehouse.genai.session_id": '
                                   '"sess-1", "tracehouse.genai.user_id": "user-7"}'}, [TRACE_A]),
    ({"service": "jg-llm", "tags": '{"tracehouse.genai.prompt.name": "checkout-helper", '
                                   '"tracehouse.genai.prompt.version": "3", '
                                   '"tracehouse.genai.cost_source": "computed"}'}, [TRACE_A]),
    ({"tags": '{"tracehouse.genai.tokens_estimated": "false"}'}, [TRACE_B]),  # only spans with tokens
    ({"tags": '{"tracehouse.genai.output_tokens": "5"}'}, [TRACE_B]),
    # logfmt and Jaeger's tag=key:value
    ({"tags": "tenant=acme span.kind=server"}, [TRACE_C, TRACE_A]),
    ({"tags": 'otel.status_description="timeout after 900ms"'}, [TRACE_A]),
    ({"tag": ["tenant:globex"]}, [TRACE_B]),
    ({"tag": ["tenant:acme", "span.kind:client"]}, []),
    # span durations (Go durations, inclusive bounds)
    ({"minDuration": "1s"}, [TRACE_A]),
    ({"minDuration": "60ms"}, [TRACE_A]),
    ({"minDuration": "40ms"}, [TRACE_C, TRACE_A]),
    ({"maxDuration": "5000us"}, [TRACE_B]),
    ({"maxDuration": "4.999ms"}, []),
    ({"minDuration": "10ms", "maxDuration": "0.1s"}, [TRACE_C]),
    ({"minDuration": "2.5s"}, [TRACE_A]),
    ({"minDuration": "2.500001s"}, []),
    ({"minDuration": "1m"}, []),
    # limit
    ({"limit": 1}, [TRACE_C]),
    ({"limit": 2}, [TRACE_C, TRACE_B]),
    ({"limit": 0}, [TRACE_C, TRACE_B, TRACE_A]),  # 0 = the default (100)
    ({"limit": 100_000}, [TRACE_C, TRACE_B, TRACE_A]),  # capped, not refused
    # empty values are "not given" (the Jaeger UI sends minDuration= and maxDuration=)
    ({"minDuration": "", "maxDuration": "", "operation": "", "tags": "", "lookback": "custom"},
     [TRACE_C, TRACE_B, TRACE_A]),
])
async def test_search(api: httpx.AsyncClient, seeded: Seeded, params: dict[str, Any], want: list[str]) -> None:
    assert await find(api, seeded, **params) == want


async def test_search_returns_whole_traces(api: httpx.AsyncClient, seeded: Seeded) -> None:
    body = await ok(api, "/api/traces", service="jg-llm", start=seeded.us(-NS), end=seeded.us(60 * NS))
    [trace] = body["data"]
    detail = (await ok(api, f"/api/traces/{TRACE_A}"))["data"][0]
    assert trace == detail  # all three spans, also the jg-shop ones, exactly as the trace route shows them
    assert len(trace["spans"]) == 3


async def test_search_time_range_is_microseconds_inclusive(api: httpx.AsyncClient, seeded: Seeded) -> None:
    b = seeded.us(10 * NS)  # B's span started 789 ns into this microsecond
    c = seeded.us(20 * NS)
    assert await find(api, seeded, start=b, end=b) == [TRACE_B]
    assert await find(api, seeded, start=b + 1, end=c) == [TRACE_C]
    assert await find(api, seeded, start=b + 1, end=c - 1) == []
    assert await find(api, seeded, end=b - 1) == [TRACE_A]
    assert await find(api, seeded, start=seeded.us(), end=seeded.us()) == [TRACE_A]
    assert await find(api, seeded, start=seeded.us() + 1, end=seeded.us(2 * NS)) == [TRACE_A]  # A's error child
    assert await find(api, seeded, start=seeded.us() + 1, end=seeded.us(2 * NS), operation="POST /checkout") == []


async def test_search_lookback(api: httpx.AsyncClient, seeded: Seeded) -> None:
    default = await ok(api, "/api/traces", service="jg-shop")  # end = now, start = now - 2 days, as Jaeger
    assert [t["traceID"] for t in default["data"]] == [TRACE_C, TRACE_B, TRACE_A, TRACE_E]
    assert [t["traceID"] for t in (await ok(api, "/api/traces", service="jg-shop", lookback="1h"))["data"]] \
        == [TRACE_C, TRACE_B, TRACE_A]
    for lookback in ("4h", "1d", "2d", "1w", "3h30m"):
        body = await ok(api, "/api/traces", service="jg-shop", lookback=lookback)
        assert [t["traceID"] for t in body["data"]] == [TRACE_C, TRACE_B, TRACE_A, TRACE_E], lookback
    assert (await ok(api, "/api/traces", service="jg-shop", lookback="10m"))["data"] == []
    # the lookback counts back from an explicit end
    end = seeded.us(10 * NS)
    body = await ok(api, "/api/traces", service="jg-shop", end=end, lookback="5s")
    assert [t["traceID"] for t in body["data"]] == [TRACE_B]
    # an explicit start wins over the lookback
    body = await ok(api, "/api/traces", service="jg-shop", start=seeded.us(15 * NS), lookback="4h")
    assert [t["traceID"] for t in body["data"]] == [TRACE_C]
    assert (await ok(api, "/api/traces", service="jg-old", lookback="11d"))["data"][0]["traceID"] == TRACE_OLD


async def test_duplicate_rows_are_one_span(api: httpx.AsyncClient, seeded: Seeded) -> None:
    assert seeded.rows(TRACE_A) == 6  # every span of A is stored twice (merges are stopped)
    [trace] = (await ok(api, f"/api/traces/{TRACE_A}"))["data"]
    assert [sp["spanID"] for sp in trace["spans"]] == [A1, A2, A3]
    body = await ok(api, "/api/traces", service="jg-shop", start=seeded.us(-NS), end=seeded.us(60 * NS))
    assert [len(t["spans"]) for t in body["data"]] == [1, 1, 3]
    assert body["total"] == 3  # a trace found twice (two matching rows) is listed once


async def test_response_is_cut_at_max_spans(seeded: Seeded, chdb_endpoint: str) -> None:
    store = make_store(chdb_endpoint, seeded.database)
    try:
        query = JaegerSearchQuery(service="jg-shop", start_ns=seeded.t0 - NS, end_ns=seeded.t0 + 60 * NS,
                                  limit=20, operation="POST /checkout")
        ids = await store.jaeger_search(query, tenant="")
        assert ids == [TRACE_C, TRACE_A]
        rows = await store.traces_spans(ids, 10, tenant="")
        assert [(r["TraceId"], r["SpanId"]) for r in rows] == [(TRACE_C, C1), (TRACE_A, A1), (TRACE_A, A2),
                                                                (TRACE_A, A3)]
        whole = traces_from_rows(ids, rows, max_spans=4)
        assert [len(t["spans"]) for t in whole] == [1, 3] and all(t["warnings"] is None for t in whole)
        cut = traces_from_rows(ids, rows, max_spans=2)
        assert [t["traceID"] for t in cut] == [TRACE_C, TRACE_A]
        assert [len(t["spans"]) for t in cut] == [1, 1]
        assert cut[0]["warnings"] is None and "at most 2 spans" in cut[1]["warnings"][0]
        assert [t["traceID"] for t in traces_from_rows(ids, rows, max_spans=1)] == [TRACE_C]
    finally:
        await store.close()


# ------------------------------------------------------------------------------ dependencies


async def test_dependencies_are_calls_between_services(api: httpx.AsyncClient, seeded: Seeded) -> None:
    # A's jg-llm span is a child of its jg-shop root: one call, though stored twice; A's error
    # child is jg-shop under jg-shop (no edge), B, C and E have no parents.
    body = await ok(api, "/api/dependencies")  # endTs = now, lookback = 24 h
    assert body["data"] == [{"parent": "jg-shop", "child": "jg-llm", "callCount": 1}] and body["errors"] is None
    end_ms = (seeded.t0 + 200 * MS) // MS  # the call started 100 ms after t0
    assert (await ok(api, "/api/dependencies", endTs=end_ms, lookback=150))["data"] == body["data"]
    assert (await ok(api, "/api/dependencies", endTs=end_ms, lookback=50))["data"] == []  # started before
    assert (await ok(api, "/api/dependencies", endTs=end_ms - 150))["data"] == []  # not yet
    assert (await ok(api, "/api/dependencies", service="jg-llm"))["data"] == body["data"]
    assert (await ok(api, "/api/dependencies", service="jg-old"))["data"] == []


async def test_dependencies_are_the_tenant_s(seeded: Seeded, chdb_endpoint: str) -> None:
    store = make_store(chdb_endpoint, seeded.database)
    try:
        start, end = seeded.t0 - NS, seeded.t0 + 60 * NS
        assert await store.jaeger_dependencies(start, end, tenant="") == [
            {"parent": "jg-shop", "child": "jg-llm", "call_count": 1}]
        assert await store.jaeger_dependencies(start, end, tenant="someone-else") == []
    finally:
        await store.close()


# ------------------------------------------------------------------------------ errors


def assert_jaeger_error(resp: httpx.Response, code: int, starts: str) -> None:
    assert resp.status_code == code, resp.text
    body = resp.json()
    assert set(body) == {"data", "total", "limit", "offset", "errors"}
    assert (body["data"], body["total"], body["limit"], body["offset"]) == (None, 0, 0, 0)
    [error] = body["errors"]
    assert error["code"] == code
    assert error["msg"].startswith(starts), error["msg"]


@pytest.mark.parametrize(("path", "params", "parameter"), [
    ("/api/traces", {}, "service"),
    ("/api/traces", {"service": " "}, "service"),
    ("/api/traces", {"service": "jg-shop", "start": "yesterday"}, "start"),
    ("/api/traces", {"service": "jg-shop", "start": "-5"}, "start"),
    ("/api/traces", {"service": "jg-shop", "end": "1.5"}, "end"),
    ("/api/traces", {"service": "jg-shop", "end": "99999999999999999999"}, "end"),
    ("/api/traces", {"service": "jg-shop", "start": "2000", "end": "1000"}, "start"),
    ("/api/traces", {"service": "jg-shop", "lookback": "forever"}, "lookback"),
    ("/api/traces", {"service": "jg-shop", "lookback": "0s"}, "lookback"),
    ("/api/traces", {"service": "jg-shop", "minDuration": "fast"}, "minDuration"),
    ("/api/traces", {"service": "jg-shop", "minDuration": "10"}, "minDuration"),
    ("/api/traces", {"service": "jg-shop", "minDuration": "-1s"}, "minDuration"),
    ("/api/traces", {"service": "jg-shop", "maxDuration": "1d"}, "maxDuration"),
    ("/api/traces", {"service": "jg-shop", "minDuration": "2s", "maxDuration": "1s"}, "maxDuration"),
    ("/api/traces", {"service": "jg-shop", "tags": '{"error": '}, "tags"),
    ("/api/traces", {"service": "jg-shop", "tags": '{"a": null}'}, "tags"),
    ("/api/traces", {"service": "jg-shop", "tags": '{"a": {"b": 1}}'}, "tags"),
    ("/api/traces", {"service": "jg-shop", "tags": "[1, 2]"}, "tags"),
    ("/api/traces", {"service": "jg-shop", "tags": "novalue"}, "tags"),
    ("/api/traces", {"service": "jg-shop", "tags": 'a="unterminated'}, "tags"),
    ("/api/traces", {"service": "jg-shop", "tags": json.dumps({f"k{i}": "v" for i in range(33)})}, "tags"),
    ("/api/traces", {"service": "jg-shop", "tag": "novalue"}, "tag"),
    ("/api/traces", {"service": "jg-shop", "limit": "ten"}, "limit"),
    ("/api/traces", {"service": "jg-shop", "limit": "-1"}, "limit"),
    ("/api/traces", {"traceID": "xyz"}, "traceID"),
    ("/api/traces", {"traceID": [f"{i:032x}" for i in range(1, 102)]}, "traceID"),
    ("/api/traces/xyz", {}, "traceID"),
    ("/api/traces/" + "0" * 32, {}, "traceID"),
    ("/api/traces/" + "a" * 33, {}, "traceID"),
    ("/api/operations", {}, "service"),
    ("/api/operations", {"service": "jg-shop", "spanKind": "sideways"}, "spanKind"),
    ("/api/dependencies", {"endTs": "yesterday"}, "endTs"),
    ("/api/dependencies", {"endTs": "-1"}, "endTs"),
    ("/api/dependencies", {"lookback": "1h"}, "lookback"),
    ("/api/dependencies", {"lookback": "0"}, "lookback"),
])
async def test_bad_parameters_are_jaeger_400s(api: httpx.AsyncClient, path: str, params: dict[str, Any],
                                              parameter: str) -> None:
    assert_jaeger_error(await api.get(path, params=params), 400, f"{parameter}:")


async def test_routing_errors_use_the_envelope_only_on_jaeger_paths(api: httpx.AsyncClient) -> None:
    assert_jaeger_error(await api.get(f"/api/traces/{TRACE_A}/spans"), 404, "Not Found")
    assert_jaeger_error(await api.post("/api/traces"), 405, "Method Not Allowed")
    assert_jaeger_error(await api.delete("/api/services"), 405, "Method Not Allowed")
    # the rest of the API keeps its own shape
    resp = await api.get("/api/v1/nope")
    assert resp.status_code == 404 and resp.json()["error"]["code"] == 404
    resp = await api.get("/api/v1/traces/xyz")
    assert resp.status_code == 400 and resp.json()["error"]["parameter"] == "trace_id"
    resp = await api.get("/api/v1/traces", params={"limit": "ten"})
    assert resp.status_code == 400 and resp.json()["error"]["parameter"] == "limit"


async def test_clickhouse_failure_is_a_jaeger_503(chdb_endpoint: str) -> None:
    store = make_store(chdb_endpoint, f"missing_{uuid.uuid4().hex[:8]}")
    app = create_app(store, FakeHost())
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://q") as api:
            for path, params in (("/api/services", {}), ("/api/services/x/operations", {}),
                                 ("/api/operations", {"service": "x"}), ("/api/traces", {"service": "x"}),
                                 (f"/api/traces/{TRACE_A}", {}), ("/api/traces", {"traceID": TRACE_A}),
                                 ("/api/dependencies", {})):
                resp = await api.get(path, params=params)
                assert_jaeger_error(resp, 503, "the trace store could not answer: ClickHouse error")
                assert resp.headers["retry-after"] == "5"
                assert "Traceback" not in resp.text and "SELECT" not in resp.text
            resp = await api.get(f"/api/v1/traces/{TRACE_A}")
            assert resp.status_code == 503 and resp.json()["error"]["code"] == 503
    finally:
        await store.close()


async def test_openapi_documents_the_jaeger_routes(api: httpx.AsyncClient) -> None:
    resp = await api.get("/openapi.json")
    assert resp.status_code == 200
    doc = resp.json()
    paths = doc["paths"]
    jaeger = ("/api/services", "/api/services/{service}/operations", "/api/operations", "/api/traces",
              "/api/traces/{trace_id}", "/api/dependencies")
    for path in jaeger:
        operation = paths[path]["get"]
        assert operation["tags"] == ["jaeger"], path
        assert "400" in operation["responses"] and "422" not in operation["responses"], path
    for path in ("/api/v1/traces", "/api/v1/traces/{trace_id}", "/healthz"):
        assert "get" in paths[path] and paths[path]["get"]["tags"] != ["jaeger"]
    params = {p["name"] for p in paths["/api/traces"]["get"]["parameters"]}
    assert {"service", "operation", "tags", "start", "end", "limit", "minDuration", "maxDuration", "lookback",
            "traceID"} <= params
    assert "404" in paths["/api/traces/{trace_id}"]["get"]["responses"]
    schemas = doc["components"]["schemas"]
    for name in ("JaegerTracesResponse", "JaegerTrace", "JaegerSpan", "JaegerKeyValue", "JaegerErrorResponse",
                 "TraceDetailResponse"):
        assert name in schemas, name
    assert "HTTPValidationError" not in schemas


# ------------------------------------------------------------------------------ parsers


def test_go_durations() -> None:
    assert parse_go_duration("0", "d") == 0
    assert parse_go_duration("500us", "d") == parse_go_duration("500µs", "d") == 500_000
    assert parse_go_duration("1.5s", "d") == 1_500_000_000
    assert parse_go_duration("100ms", "d") == 100_000_000
    assert parse_go_duration("2m", "d") == 120 * NS
    assert parse_go_duration("1h30m", "d") == 5400 * NS
    assert parse_go_duration(".5s", "d") == 500_000_000
    assert parse_go_duration("7ns", "d") == 7
    assert parse_lookback("2d") == 2 * DAY and parse_lookback("1w") == 7 * DAY
    assert parse_lookback("1h") == 3600 * NS and parse_lookback("custom") is None


def test_logfmt() -> None:
    assert parse_logfmt('a=1 b="two words" c= d="q\\"uote"') == [
        ("a", "1"), ("b", "two words"), ("c", ""), ("d", 'q"uote')]
    assert parse_logfmt("  gen_ai.request.model=gpt-4o  ") == [("gen_ai.request.model", "gpt-4o")]


def test_limits() -> None:
    assert parse_limit("0") == parse_limit("") == DEFAULT_LIMIT == 100  # Jaeger's defaultQueryLimit
    assert parse_limit("7") == 7
    assert parse_limit("5000") == MAX_LIMIT == 1500  # the Jaeger UI's largest choice
