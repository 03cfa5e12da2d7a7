"""The query API over real data: spans written by the real ClickHouse exporter into chDB
(the captured OTLP fixtures plus hand-built GenAI traces), read back through the app."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span, Status

from tracehouse.core.component import ComponentID, Kind, Settings
from tracehouse.core.config import load_config_dict
from tracehouse.core.errors import ConfigError
from tracehouse.core.genai import GENAI_FIELDS, GenAIColumns
from otlp_fixtures import FIXTURES
from tracehouse.core.pdata import TraceBatch
from tracehouse.core.registry import get_factory
from tracehouse.core.telemetry import Telemetry
from tracehouse.query.app import create_app
from tracehouse.query.params import parse_time_ns
from tracehouse.query.rows import format_ns
from tracehouse.query.config import QueryApiConfig, QueryClickHouseConfig
from tracehouse.query.extension import QueryApiExtension
from tracehouse.query.store import TraceStore
from tracehouse.sinks.clickhouse.client import open_client
from tracehouse.sinks.clickhouse.columns import SPAN_KIND, STATUS_CODE, attrs_to_map, batch_to_columns
from tracehouse.sinks.clickhouse.genai import GENAI_COLUMNS
from tracehouse.sinks.clickhouse.config import ClickHouseExporterConfig
from tracehouse.sinks.clickhouse.exporter import ClickHouseExporter
from tracehouse.core.pdata import key_values

PAYLOADS = sorted(FIXTURES.glob("*/*.pb"))
# The fixtures were captured on 2026-11-22 between 16:23 and 16:25 UTC.
FIX_START, FIX_END = "2026-11-22T16:00:00Z", "2026-11-22T17:00:00Z"
NS = 1_000_000_000


# ------------------------------------------------------------------------------ helpers


class FakeHost:
    """Just enough of a Host for an exporter and for the API's health endpoints."""

    def __init__(self, ready: bool = True, healthy: bool = True):
        self.telemetry = Telemetry()
        self._ready = ready
        self._healthy = healthy
        self.status_map: dict[str, tuple[str, str | None]] = {"exporter/clickhouse": ("ok", None)}

    def report_status(self, *args: Any, **kwargs: Any) -> None:
        pass

    def statuses(self) -> dict[str, tuple[str, str | None]]:
        return dict(self.status_map)

    def ready(self) -> bool:
        return self._ready

    def healthy(self) -> bool:
        return self._healthy






def genai_of(specs: list[SpanSpec]) -> GenAIColumns:
    """GenAI columns from specs keyed by ClickHouse column name, as a GenAI processor leaves them."""
    cols = GenAIColumns.empty(len(specs))
    for f, column in GENAI_COLUMNS:
        values = [s.genai.get(column, f.default) for s in specs]
        if f.kind is Decimal:
            values = [None if v is None else Decimal(str(v)) for v in values]
        setattr(cols, f.name, values)
    return cols


@dataclass
class SpanSpec:
    service: str
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    start_ns: int
    duration_ns: int
    kind: int = Span.SPAN_KIND_INTERNAL
    code: int = Status.STATUS_CODE_UNSET
    message: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    links: list[tuple[str, str, str, dict[str, Any]]] = field(default_factory=list)
    trace_state: str = ""
    genai: dict[str, Any] = field(default_factory=dict)


def build_batch(specs: list[SpanSpec], scope: tuple[str, str] = ("test.scope", "1.2.3")) -> TraceBatch:
    """One request, one ResourceSpans per service (in first-seen order); GenAI columns in
    batch.genai aligned with the batch's span order, as an enrichment processor leaves them."""
    request = ExportTraceServiceRequest()
    by_service: dict[str, ResourceSpans] = {}
    ordered: list[SpanSpec] = []
    for service in dict.fromkeys(s.service for s in specs):
        rs = request.resource_spans.add()
        rs.resource.attributes.extend(key_values({"service.name": service, "deployment.environment": "test"}))
        ss = rs.scope_spans.add()
        ss.scope.name, ss.scope.version = scope
        by_service[service] = rs
        for spec in (s for s in specs if s.service == service):
            ordered.append(spec)
            span = ss.spans.add()
            span.trace_id = bytes.fromhex(spec.trace_id)
            span.span_id = bytes.fromhex(spec.span_id)
            if spec.parent_id:
                span.parent_span_id = bytes.fromhex(spec.parent_id)
            span.trace_state = spec.trace_state
            span.name = spec.name
            span.kind = spec.kind
            span.start_time_unix_nano = spec.start_ns
            span.end_time_unix_nano = spec.start_ns + spec.duration_ns
            span.status.code = spec.code
            span.status.message = spec.message
            span.attributes.extend(key_values(spec.attrs))
            for t, n, a in spec.events:
                ev = span.events.add()
                ev.time_unix_nano, ev.name = t, n
                ev.attributes.extend(key_values(a))
            for lt, ls, lst, la in spec.links:
                lk = span.links.add()
                lk.trace_id, lk.span_id, lk.trace_state = bytes.fromhex(lt), bytes.fromhex(ls), lst
                lk.attributes.extend(key_values(la))
    batch = TraceBatch.from_request(request)
    if any(s.genai for s in ordered):
        batch.genai = genai_of(ordered)
    return batch


def split_per_span(batch: TraceBatch) -> list[TraceBatch]:
    """The same spans, one request per span (so no insert block repeats an earlier one)."""
    genai = batch.genai
    out = []
    for i, (rs, ss, span) in enumerate(batch.iter_spans()):
        request = ExportTraceServiceRequest()
        new_rs = request.resource_spans.add()
        new_rs.resource.CopyFrom(rs.resource)
        new_ss = new_rs.scope_spans.add()
        new_ss.scope.CopyFrom(ss.scope)
        new_ss.spans.add().CopyFrom(span)
        one = TraceBatch.from_request(request)
        if genai is not None:
            one.genai = GenAIColumns(size=1, **{f.name: [getattr(genai, f.name)[i]] for f in GENAI_FIELDS})
        out.append(one)
    return out


async def seed(endpoint: str, database: str, batches: Iterable[TraceBatch]) -> None:
    """Write through the real exporter (schema migrations included)."""
    exporter = ClickHouseExporter(Settings(ComponentID("clickhouse"), Kind.EXPORTER),
                                  ClickHouseExporterConfig(endpoint=endpoint, database=database))
    await exporter.start(FakeHost())  # type: ignore[arg-type]
    try:
        for batch in batches:
            await exporter.consume(batch)
    finally:
        await exporter.shutdown()


def fixture_batches() -> list[TraceBatch]:
    return [TraceBatch.from_bytes(p.read_bytes()) for p in PAYLOADS]


def expected_from(batches: Iterable[TraceBatch]) -> dict[str, dict[str, Any]]:
    """Per-trace facts computed straight from the OTLP payloads."""
    spans: dict[str, list[tuple[Any, Any, Span]]] = {}
    for batch in batches:
        for rs, ss, span in batch.iter_spans():
            spans.setdefault(span.trace_id.hex(), []).append((rs, ss, span))
    out = {}
    for tid, items in spans.items():
        def service(rs: Any) -> str:
            return attrs_to_map(rs.resource.attributes).get("service.name", "")
        roots = [i for i in items if not i[2].parent_span_id]
        root = min(roots or items, key=lambda i: i[2].start_time_unix_nano)
        start = min(s.start_time_unix_nano for _, _, s in items)
        end = max(s.end_time_unix_nano for _, _, s in items)
        errors = sum(1 for _, _, s in items if s.status.code == Status.STATUS_CODE_ERROR)
        out[tid] = {
            "span_count": len(items),
            "root_span_name": root[2].name,
            "root_service_name": service(root[0]),
            "service_names": sorted({service(rs) for rs, _, _ in items}),
            "start_ns": start,
            "duration_ns": end - start,
            "error_count": errors,
            "status": "error" if errors else "ok",
            "unset": all(s.status.code == Status.STATUS_CODE_UNSET for _, _, s in items),
            "spans": {s.span_id.hex(): (rs, ss, s) for rs, ss, s in items},
        }
    return out


# ------------------------------------------------------------------------------ hand-built traces

T0 = parse_time_ns("2026-01-10T12:00:00.123456789Z")
TRACE_A = "a1" * 16   # two services, GenAI spans, an error, events, links
TRACE_B = "b2" * 16   # one anthropic span, tokens but no cost
TRACE_ORPHAN = "c3" * 16  # its root never arrived
TRACE_RECENT = "d4" * 16  # a few minutes old: found by the default time range


def hand_built_specs(now_ns: int) -> list[SpanSpec]:
    return [
        SpanSpec("shop-api", TRACE_A, "a000000000000001", "", "POST /checkout", T0, 2_500_000_000,
                 kind=Span.SPAN_KIND_SERVER, code=Status.STATUS_CODE_OK,
                 attrs={"http.method": "POST", "tenant": "acme", "retries": 2, "sampled": True,
                        "ratio": 0.25},
                 trace_state="vendor=1"),
        SpanSpec("llm-gateway", TRACE_A, "a000000000000002", "a000000000000001", "chat gpt-4o",
                 T0 + 100_000_001, 800_000_000, kind=Span.SPAN_KIND_CLIENT,
                 attrs={"gen_ai.request.model": "gpt-4o", "tenant": "acme"},
                 events=[(T0 + 100_000_777, "gen_ai.content.prompt", {"gen_ai.prompt": "hi", "n": 1})],
                 links=[(TRACE_B, "b000000000000001", "linked=1", {"link.kind": "follows"})],
                 genai={"GenAIProvider": "openai", "GenAIOperation": "chat", "GenAISpanKind": "LLM",
                        "GenAIRequestModel": "gpt-4o", "GenAIResponseModel": "gpt-4o-2024-08-06",
                        "GenAIInputTokens": 100, "GenAIOutputTokens": 20, "GenAICachedInputTokens": 8,
                        "GenAIReasoningTokens": 5, "GenAITotalTokens": 120, "GenAITokensEstimated": False,
                        "GenAIInputCostUSD": Decimal("0.00025"), "GenAIOutputCostUSD": Decimal("0.0002"),
                        "GenAITotalCostUSD": Decimal("0.00045"), "GenAICostSource": "price_table",
                        "GenAIPromptName": "checkout-helper", "GenAIPromptVersion": "3",
                        "GenAIPromptTemplateHash": "ab" * 32, "GenAIPromptSource": "Langfuse",
                        "GenAISessionId": "sess-1", "GenAIUserId": "user-7"}),
        SpanSpec("llm-gateway", TRACE_A, "a000000000000003", "a000000000000001", "chat gpt-4o-mini",
                 T0 + 1_000_000_000, 300_000_000, kind=Span.SPAN_KIND_CLIENT,
                 genai={"GenAIProvider": "openai", "GenAIRequestModel": "gpt-4o-mini",
                        "GenAIResponseModel": "gpt-4o-mini-2024-07-18", "GenAIInputTokens": 50,
                        "GenAIOutputTokens": 10, "GenAITotalTokens": 60, "GenAITokensEstimated": True,
                        "GenAITotalCostUSD": Decimal("0.00005"), "GenAICostSource": "price_table",
                        "GenAISessionId": "sess-1", "GenAIUserId": "user-7"}),
        SpanSpec("shop-api", TRACE_A, "a000000000000004", "a000000000000001", "SELECT orders",
                 T0 + 1_500_000_000, 900_000_000, kind=Span.SPAN_KIND_CLIENT,
                 code=Status.STATUS_CODE_ERROR, message="timeout after 900ms"),
        SpanSpec("batch-worker", TRACE_B, "b000000000000001", "", "nightly-job", T0 + 10 * NS, 5_000_000,
                 genai={"GenAIProvider": "anthropic", "GenAIRequestModel": "claude-sonnet-4",
                        "GenAIInputTokens": 10, "GenAIOutputTokens": 5}),
        SpanSpec("batch-worker", TRACE_ORPHAN, "c000000000000002", "c000000000000001", "late child",
                 T0 + 20 * NS, 1_000_000),
        SpanSpec("recent-svc", TRACE_RECENT, "d000000000000001", "", "recent root", now_ns - 300 * NS, 1_000),
    ]


@dataclass
class Seeded:
    database: str
    expected: dict[str, dict[str, Any]]  # fixture traces only
    hand_built: TraceBatch


@pytest.fixture(scope="module")
def seeded(chdb_endpoint: str) -> Iterator[Seeded]:
    """One database with every fixture payload and the hand-built traces, shared read-only."""
    database = f"tq_{uuid.uuid4().hex[:12]}"
    batches = fixture_batches()
    hand_built = build_batch(hand_built_specs(time.time_ns()))
    asyncio.run(seed(chdb_endpoint, database, [*batches, hand_built]))
    yield Seeded(database, expected_from(batches), hand_built)


def make_store(endpoint: str, database: str) -> TraceStore:
    return TraceStore(QueryClickHouseConfig(endpoint=endpoint, database=database), max_workers=2)


@pytest.fixture
async def api(seeded: Seeded, chdb_endpoint: str) -> AsyncIterator[httpx.AsyncClient]:
    store = make_store(chdb_endpoint, seeded.database)
    app = create_app(store, FakeHost(), settings=QueryApiConfig(max_limit=100))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://query") as client:
        yield client
    await store.close()


async def search(api: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    params.setdefault("start", FIX_START)
    params.setdefault("end", FIX_END)
    params.setdefault("limit", 100)
    resp = await api.get("/api/v1/traces", params=params)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def ids(body: dict[str, Any]) -> list[str]:
    return [t["trace_id"] for t in body["traces"]]


def expected_order(expected: dict[str, dict[str, Any]], keep: Any = lambda e: True) -> list[str]:
    items = [(tid, e) for tid, e in expected.items() if keep(e)]
    return [tid for tid, _ in sorted(items, key=lambda kv: (-kv[1]["start_ns"], kv[0]))]


def assert_bad_param(resp: httpx.Response, parameter: str) -> None:
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert body["error"]["code"] == 400
    assert body["error"]["parameter"] == parameter
    assert body["error"]["message"]


# ------------------------------------------------------------------------------ search


async def test_search_returns_every_fixture_trace(api: httpx.AsyncClient, seeded: Seeded) -> None:
    body = await search(api)
    assert len(seeded.expected) == 16
    assert ids(body) == expected_order(seeded.expected)
    assert body["next_cursor"] is None
    for row in body["traces"]:
        exp = seeded.expected[row["trace_id"]]
        assert row["span_count"] == exp["span_count"]
        assert row["root_span_name"] == exp["root_span_name"]
        assert row["root_service_name"] == exp["root_service_name"]
        assert row["service_names"] == exp["service_names"]
        assert row["duration_ns"] == exp["duration_ns"]
        assert row["start_time_unix_nano"] == str(exp["start_ns"])
        assert row["start_time"] == format_ns(exp["start_ns"])
        assert row["error_count"] == exp["error_count"]
        assert row["status"] == exp["status"]
        # the exporter alone fills no GenAI columns: unknown, not zero
        assert row["input_tokens"] is None and row["total_tokens"] is None
        assert row["total_cost_usd"] is None and row["models"] == []
    agent = next(r for r in body["traces"] if r["trace_id"] == "75beb1925d8388da1263a80c9f293a4b")
    assert (agent["root_span_name"], agent["span_count"], agent["service_names"]) == (
        "umbrella_advisor", 3, ["mlflow-app"])
    assert agent["start_time"] == "2026-11-22T16:24:48.989033908Z"
    assert agent["start_time_unix_nano"] == "1795364688989033908"


async def test_search_genai_rollups_and_root_fallback(api: httpx.AsyncClient) -> None:
    body = await search(api, start="2026-01-10T00:00:00Z", end="2026-01-11T00:00:00Z")
    rows = {r["trace_id"]: r for r in body["traces"]}
    assert list(rows) == [TRACE_ORPHAN, TRACE_B, TRACE_A]
    a = rows[TRACE_A]
    assert a["root_span_name"] == "POST /checkout" and a["root_service_name"] == "shop-api"
    assert a["service_names"] == ["llm-gateway", "shop-api"]
    assert a["span_count"] == 4 and a["error_count"] == 1 and a["status"] == "error"
    assert a["duration_ns"] == 2_500_000_000
    assert a["start_time"] == "2026-01-10T12:00:00.123456789Z"
    assert (a["input_tokens"], a["output_tokens"], a["total_tokens"]) == (150, 30, 180)
    assert a["total_cost_usd"] == pytest.approx(0.0005)
    assert a["models"] == ["gpt-4o", "gpt-4o-2024-08-06", "gpt-4o-mini", "gpt-4o-mini-2024-07-18"]
    b = rows[TRACE_B]
    assert (b["input_tokens"], b["output_tokens"]) == (10, 5)
    assert b["total_tokens"] is None and b["total_cost_usd"] is None
    assert b["models"] == ["claude-sonnet-4"] and b["status"] == "ok"
    orphan = rows[TRACE_ORPHAN]
    assert orphan["root_span_name"] == "late child" and orphan["root_service_name"] == "batch-worker"


async def test_search_default_range_is_the_last_hour(api: httpx.AsyncClient) -> None:
    resp = await api.get("/api/v1/traces")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert ids(body) == [TRACE_RECENT]
    start, end = parse_time_ns(body["start"], "start"), parse_time_ns(body["end"], "end")
    assert end - start == 3600 * NS
    assert abs(end - time.time_ns()) < 120 * NS


@pytest.mark.parametrize(("params", "keep"), [
    ({"service": "mlflow-app"}, lambda e: e["service_names"] == ["mlflow-app"]),
    ({"span_name": "umbrella_advisor"}, lambda e: e["root_span_name"] == "umbrella_advisor"),
    ({"span_name": "Completions", "service": "openinference-app"}, lambda e: False),
    ({"status": "error"}, lambda e: e["status"] == "error"),
    ({"status": "ok"}, lambda e: e["status"] == "ok"),
    ({"status": "unset"}, lambda e: e["unset"]),
    ({"min_duration_ms": 50}, lambda e: e["duration_ns"] >= 50_000_000),
    ({"min_duration_ms": 44, "status": "error"},
     lambda e: e["duration_ns"] >= 44_000_000 and e["error_count"]),
])
async def test_search_filters_narrow(api: httpx.AsyncClient, seeded: Seeded, params: dict[str, Any],
                                     keep: Any) -> None:
    body = await search(api, **params)
    want = expected_order(seeded.expected, keep)
    assert ids(body) == want
    assert len(want) < len(seeded.expected)


async def test_search_status_counts(api: httpx.AsyncClient) -> None:
    assert len(ids(await search(api, status="error"))) == 4
    assert len(ids(await search(api, status="ok"))) == 12
    assert len(ids(await search(api, status="unset"))) == 6


async def test_search_attribute_filters(api: httpx.AsyncClient, seeded: Seeded) -> None:
    gpt4o = await search(api, attr="gen_ai.request.model=gpt-4o")
    assert sorted(ids(gpt4o)) == sorted([
        "dd61d6b102e149940f791ad3ac4b4b48", "9807aecd007a54aaed6220be4ba125c4",
        "63bbec46d3f616d5ad85a22fff1a3a03", "3a4ed01ece958e317b2fd6081e1daef7"])
    # a resource attribute
    resource = await search(api, attr="service.name=openinference-app")
    assert ids(resource) == expected_order(
        seeded.expected, lambda e: e["service_names"] == ["openinference-app"])
    # every attr must hold on the same span: the agent span has no request model
    mixed = ["gen_ai.request.model=gpt-4o", "gen_ai.operation.name=invoke_agent"]
    assert ids(await search(api, attr=mixed)) == []
    both = await search(api, attr=["gen_ai.request.model=gpt-4o", "gen_ai.operation.name=chat",
                                   "service.name=otel-openai-v2-app"])
    assert sorted(ids(both)) == sorted(ids(gpt4o))
    assert ids(await search(api, attr="session.id=sess-42")) == ["913f8e3e8e90634152899d9a3aaa9923"]
    # a missing key does not match an empty value; a value with '=' in it is kept whole
    assert ids(await search(api, attr="no.such.key=")) == []
    gold = await search(api, attr='metadata={"tier": "gold"}')
    assert ids(gold) == ["913f8e3e8e90634152899d9a3aaa9923"]


async def test_sessions_group_turns_with_their_tokens_and_cost(api: httpx.AsyncClient) -> None:
    day = {"start": "2026-01-10T00:00:00Z", "end": "2026-01-11T00:00:00Z"}
    resp = await api.get("/api/v1/sessions", params=day)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    turns = (await search(api, **day, session="sess-1"))
    assert body["total"] == 1 and [s["session_id"] for s in body["sessions"]] == ["sess-1"]
    session = body["sessions"][0]
    assert session["user_id"] == "user-7" and session["turns"] == len(turns["traces"]) == 1
    assert session["input_tokens"] == turns["totals"]["input_tokens"]
    assert session["output_tokens"] == turns["totals"]["output_tokens"]
    assert session["cost_usd"] == pytest.approx(turns["totals"]["cost_usd"])
    assert (await api.get("/api/v1/sessions", params={**day, "user": "nobody"})).json()["sessions"] == []
    assert (await api.get("/api/v1/sessions", params={"start": "2000-01-01T00:00:00Z",
                                                      "end": "2000-01-02T00:00:00Z"})).json()["total"] == 0
    assert_bad_param(await api.get("/api/v1/sessions", params={"start": "soon"}), "start")


async def test_search_genai_filters(api: httpx.AsyncClient) -> None:
    day = {"start": "2026-01-10T00:00:00Z", "end": "2026-01-11T00:00:00Z"}
    assert ids(await search(api, **day, provider="anthropic")) == [TRACE_B]
    assert ids(await search(api, **day, provider="openai")) == [TRACE_A]
    assert ids(await search(api, **day, model="gpt-4o-2024-08-06")) == [TRACE_A]  # response model
    assert ids(await search(api, **day, model="claude-sonnet-4")) == [TRACE_B]   # request model
    assert ids(await search(api, **day, session="sess-1")) == [TRACE_A]
    assert ids(await search(api, **day, user="user-7")) == [TRACE_A]
    assert ids(await search(api, **day, user="nobody")) == []
    assert ids(await search(api, **day, prompt="checkout-helper")) == [TRACE_A]
    assert ids(await search(api, **day, min_tokens=100)) == [TRACE_A]
    assert ids(await search(api, **day, min_tokens=15)) == [TRACE_B, TRACE_A]  # B: input + output
    assert ids(await search(api, **day, min_cost_usd=0.0001)) == [TRACE_A]
    assert ids(await search(api, **day, attr="tenant=acme", service="llm-gateway")) == [TRACE_A]


async def test_search_bounds_from_above_and_prompt_versions(api: httpx.AsyncClient) -> None:
    day = {"start": "2026-01-10T00:00:00Z", "end": "2026-01-11T00:00:00Z"}
    # A: 2.5 s, 180 tokens, $0.0005; B: 5 ms, 15 tokens (input + output), no cost; orphan: 1 ms, none.
    assert ids(await search(api, **day)) == [TRACE_ORPHAN, TRACE_B, TRACE_A]
    assert ids(await search(api, **day, max_tokens=100)) == [TRACE_ORPHAN, TRACE_B]
    assert ids(await search(api, **day, min_tokens=15, max_tokens=15)) == [TRACE_B]
    assert ids(await search(api, **day, max_cost_usd=0.0001)) == [TRACE_ORPHAN, TRACE_B]  # no cost counts as 0
    assert ids(await search(api, **day, min_cost_usd=0.0004, max_cost_usd=0.0005)) == [TRACE_A]
    assert ids(await search(api, **day, max_duration_ms=10)) == [TRACE_ORPHAN, TRACE_B]
    assert ids(await search(api, **day, min_duration_ms=2, max_duration_ms=10)) == [TRACE_B]
    assert ids(await search(api, **day, min_duration_ms=1e300)) == []  # beyond any duration, not a 500
    assert ids(await search(api, **day, prompt="checkout-helper", prompt_version="3")) == [TRACE_A]
    assert ids(await search(api, **day, prompt="checkout-helper", prompt_version="2")) == []
    assert ids(await search(api, **day, prompt_version="3")) == [TRACE_A]
    totals = (await search(api, **day, max_tokens=100))["totals"]
    assert totals == {"traces": 2, "input_tokens": 10, "output_tokens": 5, "cost_usd": 0.0, "estimated": False}


async def test_a_trace_across_the_range_start_is_listed_whole(chdb_endpoint: str, database: str) -> None:
    t0 = parse_time_ns("2026-03-01T10:00:00Z")
    hour = 3600 * NS
    long_trace, before = "e5" * 16, "f6" * 16
    # A two-hour agent run whose spans arrive in two exports, and a trace that ends before the range.
    root = SpanSpec("agent", long_trace, "e000000000000001", "", "nightly agent", t0, 2 * hour)
    child = SpanSpec("agent", long_trace, "e000000000000002", "e000000000000001", "late tool call",
                     t0 + 90 * 60 * NS, NS, code=Status.STATUS_CODE_ERROR)
    early = SpanSpec("agent", before, "f000000000000001", "", "early", t0 + 10 * 60 * NS, NS)
    await seed(chdb_endpoint, database, [build_batch([root, early]), build_batch([child])])
    store = make_store(chdb_endpoint, database)
    in_range = {"start": "2026-03-01T11:00:00Z", "end": "2026-03-01T13:00:00Z", "limit": 10}
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(store, FakeHost())),
                                     base_url="http://q") as api:
            [row] = (await search(api, **in_range))["traces"]
            assert row["trace_id"] == long_trace
            assert (row["span_count"], row["error_count"], row["root_span_name"]) == (2, 1, "nightly agent")
            assert (row["start_time"], row["duration_ns"]) == ("2026-03-01T10:00:00.000000000Z", 2 * hour)
            # no span starts in the last half hour of the run: not listed there
            assert (await search(api, start="2026-03-01T11:31:00Z", end="2026-03-01T13:00:00Z"))["traces"] == []
        # A list told traces last at most 30 minutes sums only the part inside that reach.
        short = create_app(store, FakeHost(), settings=QueryApiConfig(max_trace_duration=1800))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=short), base_url="http://q") as api:
            [row] = (await search(api, **in_range))["traces"]
            assert (row["span_count"], row["root_span_name"]) == (1, "late tool call")
            assert (await api.get(f"/api/v1/traces/{long_trace}")).json()["totals"]["span_count"] == 2
    finally:
        await store.close()


async def test_traces_stored_before_the_list_read_the_rollup_are_still_listed(
        chdb_endpoint: str, database: str) -> None:
    from tracehouse.sinks.clickhouse.schema import planned, schema_params

    params = schema_params(database, "otel_traces", 0, 100)
    client = open_client(chdb_endpoint)
    try:
        client.command(f"CREATE DATABASE {database}")
        for mig, statements in planned(params):  # the schema as a release before 005 left it
            if mig.version <= 4:
                for statement in statements:
                    client.command(statement)
        client.command(f"CREATE TABLE {database}.tracehouse_schema_migrations (version UInt32, name String, "
                       "applied_at DateTime64(3) DEFAULT now64(3)) ENGINE = ReplacingMergeTree ORDER BY version")
        client.insert(f"{database}.tracehouse_schema_migrations", [[v, "old"] for v in range(1, 5)],
                      column_names=["version", "name"])
        specs = hand_built_specs(time.time_ns())
        names, data = batch_to_columns(build_batch(specs[:2]))  # trace A's root and first call
        old = [i for i, name in enumerate(names) if name != "GenAIUsageScope"]  # added by 009
        client.insert(f"{database}.otel_traces", [data[i] for i in old], column_names=[names[i] for i in old],
                      column_oriented=True)
    finally:
        client.close()
    # The exporter of this release migrates (005) and stores the rest of trace A.
    await seed(chdb_endpoint, database, [build_batch(specs[2:5])])
    store = make_store(chdb_endpoint, database)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(store, FakeHost())),
                                     base_url="http://q") as api:
            rows = {r["trace_id"]: r for r in (await search(
                api, start="2026-01-10T00:00:00Z", end="2026-01-11T00:00:00Z"))["traces"]}
    finally:
        await store.close()
    a = rows[TRACE_A]
    assert (a["span_count"], a["error_count"], a["root_span_name"], a["root_service_name"]) == (
        4, 1, "POST /checkout", "shop-api")
    assert a["start_time"] == "2026-01-10T12:00:00.123456789Z" and a["duration_ns"] == 2_500_000_000
    # the older rows knew one model per span (the request's); the newer ones both
    assert a["models"] == ["gpt-4o", "gpt-4o-mini", "gpt-4o-mini-2024-07-18"]
    assert (a["input_tokens"], a["total_tokens"]) == (150, 180)
    assert a["total_cost_usd"] == pytest.approx(0.0005)
    assert rows[TRACE_B]["total_tokens"] is None  # written after the migration: unknown, not 0


async def test_search_time_range(api: httpx.AsyncClient, seeded: Seeded) -> None:
    empty = await search(api, start="2000-01-01T00:00:00Z", end="2000-01-02T00:00:00Z")
    assert empty["traces"] == [] and empty["next_cursor"] is None
    # unix seconds work too, fractional ones included; end is exclusive
    mlflow_agent = seeded.expected["75beb1925d8388da1263a80c9f293a4b"]["start_ns"]
    body = await search(api, start="1795364688.93", end=f"{mlflow_agent // NS}.{mlflow_agent % NS:09d}")
    assert ids(body) == ["d3d6c96a7f7e073c36dcac16a240d629"]
    # RFC 3339 with an offset and nanoseconds, inclusive start
    body = await search(api, start="2026-11-22T17:24:48.989033908+01:00", end=FIX_END)
    assert ids(body) == ["00bd99aaa270de4462163aae0f9d3527", "75beb1925d8388da1263a80c9f293a4b"]


async def test_pagination_walks_every_trace_once(api: httpx.AsyncClient, seeded: Seeded) -> None:
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        body = await search(api, **params)
        pages += 1
        assert len(body["traces"]) <= 2
        seen += ids(body)
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert pages < 20
    assert seen == expected_order(seeded.expected)
    assert len(seen) == len(set(seen)) == 16
    assert pages == 8


def _sort_key(sort: str, t: dict[str, Any]) -> int:
    """The order the API promises, computed from the summaries it returns."""
    if sort == "cost":
        return round(t["total_cost_usd"] * 1e9) if t["total_cost_usd"] is not None else -1
    if sort == "tokens":
        return t["total_tokens"] if t["total_tokens"] is not None else (t["input_tokens"] or 0) + (t["output_tokens"] or 0)
    return t["duration_ns"]


@pytest.mark.parametrize("sort", ["cost", "tokens", "duration"])
async def test_sorting_pages_through_every_trace_once_largest_first(api: httpx.AsyncClient, sort: str) -> None:
    everything = (await search(api))["traces"]
    expected = [t["trace_id"] for t in sorted(everything, key=lambda t: (-_sort_key(sort, t), t["trace_id"]))]
    seen: list[str] = []
    totals = []
    cursor = None
    while True:
        body = await search(api, sort=sort, limit=3, **({"cursor": cursor} if cursor else {}))
        seen += ids(body)
        totals.append(body["totals"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == expected and len(set(seen)) == len(everything) > 10
    assert len({json.dumps(t, sort_keys=True) for t in totals}) == 1, "every page reports the same totals"


async def test_totals_are_those_of_the_whole_filtered_set(api: httpx.AsyncClient) -> None:
    for params in ({}, {"status": "error"}, {"provider": "openai"}, {"min_tokens": 1}):
        everything = (await search(api, **params))["traces"]
        first_page = await search(api, limit=2, **params)
        assert first_page["totals"] == {
            "traces": len(everything),
            "input_tokens": sum(t["input_tokens"] or 0 for t in everything),
            "output_tokens": sum(t["output_tokens"] or 0 for t in everything),
            "cost_usd": pytest.approx(sum(t["total_cost_usd"] or 0 for t in everything)),
            "estimated": False,
        }, params
    empty = await search(api, start="2000-01-01T00:00:00Z", end="2000-01-02T00:00:00Z")
    assert empty["totals"] == {"traces": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0, "estimated": False}


async def test_a_cursor_continues_only_the_sort_it_came_from(api: httpx.AsyncClient) -> None:
    cursor = (await search(api, sort="cost", limit=2))["next_cursor"]
    resp = await api.get("/api/v1/traces", params={"cursor": cursor, "sort": "time"})
    assert_bad_param(resp, "cursor")
    assert "sorted by cost" in resp.json()["error"]["message"]


async def test_pagination_keeps_the_default_range(api: httpx.AsyncClient) -> None:
    first = await api.get("/api/v1/traces", params={"start": FIX_START, "end": FIX_END, "limit": 5})
    cursor = first.json()["next_cursor"]
    # the second page names no range: the cursor carries the first page's
    second = await api.get("/api/v1/traces", params={"cursor": cursor, "limit": 5})
    assert second.status_code == 200
    assert second.json()["start"] == first.json()["start"] and second.json()["end"] == first.json()["end"]
    assert len(second.json()["traces"]) == 5
    assert not set(ids(first.json())) & set(ids(second.json()))


# ------------------------------------------------------------------------------ trace detail


async def test_trace_detail_matches_the_payload(api: httpx.AsyncClient, seeded: Seeded) -> None:
    for tid, exp in seeded.expected.items():
        resp = await api.get(f"/api/v1/traces/{tid}")
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["trace_id"] == tid and body["truncated"] is False
        spans = body["spans"]
        assert len(spans) == exp["span_count"]
        assert {s["span_id"] for s in spans} == set(exp["spans"])
        starts = [int(s["start_time_unix_nano"]) for s in spans]
        assert starts == sorted(starts)
        for s in spans:
            rs, ss, span = exp["spans"][s["span_id"]]
            assert s["trace_id"] == tid
            assert s["parent_span_id"] == span.parent_span_id.hex()
            assert s["trace_state"] == span.trace_state
            assert s["name"] == span.name
            assert s["kind"] == SPAN_KIND[span.kind]
            assert s["service_name"] == attrs_to_map(rs.resource.attributes)["service.name"]
            assert s["start_time_unix_nano"] == str(span.start_time_unix_nano)
            assert s["end_time_unix_nano"] == str(span.end_time_unix_nano)
            assert s["duration_ns"] == span.end_time_unix_nano - span.start_time_unix_nano
            assert s["start_time"] == format_ns(span.start_time_unix_nano)
            assert s["status"] == {"code": STATUS_CODE[span.status.code], "message": span.status.message}
            assert s["resource_attributes"] == attrs_to_map(rs.resource.attributes)
            assert s["scope"] == {"name": ss.scope.name, "version": ss.scope.version}
            assert s["attributes"] == attrs_to_map(span.attributes)
            assert s["events"] == [{"time_unix_nano": str(e.time_unix_nano), "name": e.name,
                                    "attributes": attrs_to_map(e.attributes)} for e in span.events]
            assert s["links"] == [{"trace_id": lk.trace_id.hex(), "span_id": lk.span_id.hex(),
                                   "trace_state": lk.trace_state, "attributes": attrs_to_map(lk.attributes)}
                                  for lk in span.links]
            assert s["genai"]["input_tokens"] is None and s["genai"]["provider"] == ""
        totals = body["totals"]
        assert totals["span_count"] == exp["span_count"]
        assert totals["error_count"] == exp["error_count"]
        assert totals["start_time_unix_nano"] == str(exp["start_ns"])
        assert totals["duration_ns"] == exp["duration_ns"]
        assert totals["services"] == exp["service_names"]
        assert totals["total_tokens"] is None and totals["total_cost_usd"] is None


async def test_trace_detail_genai_events_links(api: httpx.AsyncClient) -> None:
    resp = await api.get(f"/api/v1/traces/{TRACE_A.upper()}")  # ids are case-insensitive
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["trace_id"] == TRACE_A
    spans = body["spans"]
    assert [s["span_id"] for s in spans] == [
        "a000000000000001", "a000000000000002", "a000000000000003", "a000000000000004"]
    root, chat, mini, sql = spans
    assert root["parent_span_id"] == "" and root["trace_state"] == "vendor=1"
    assert root["kind"] == "Server" and root["status"] == {"code": "Ok", "message": ""}
    assert root["attributes"] == {"http.method": "POST", "tenant": "acme", "retries": "2",
                                  "sampled": "true", "ratio": "0.25"}
    assert root["resource_attributes"] == {"service.name": "shop-api", "deployment.environment": "test"}
    assert root["scope"] == {"name": "test.scope", "version": "1.2.3"}
    assert root["start_time_unix_nano"] == str(T0)
    assert root["end_time_unix_nano"] == str(T0 + 2_500_000_000)
    assert chat["parent_span_id"] == "a000000000000001" and chat["service_name"] == "llm-gateway"
    assert chat["start_time"] == "2026-01-10T12:00:00.223456790Z"
    assert chat["events"] == [{"time_unix_nano": str(T0 + 100_000_777), "name": "gen_ai.content.prompt",
                               "attributes": {"gen_ai.prompt": "hi", "n": "1"}}]
    assert chat["links"] == [{"trace_id": TRACE_B, "span_id": "b000000000000001", "trace_state": "linked=1",
                              "attributes": {"link.kind": "follows"}}]
    assert chat["genai"] == {
        "provider": "openai", "operation": "chat", "span_kind": "LLM", "request_model": "gpt-4o",
        "response_model": "gpt-4o-2024-08-06", "input_tokens": 100, "output_tokens": 20,
        "cached_input_tokens": 8, "reasoning_tokens": 5, "total_tokens": 120, "tokens_estimated": False,
        "usage_scope": "", "input_cost_usd": 0.00025, "output_cost_usd": 0.0002, "total_cost_usd": 0.00045,
        "cost_source": "price_table", "price_version": "", "prompt_name": "checkout-helper", "prompt_version": "3",
        "prompt_template_hash": "ab" * 32, "prompt_source": "Langfuse",
        "session_id": "sess-1", "user_id": "user-7"}
    assert mini["genai"]["tokens_estimated"] is True and mini["genai"]["input_cost_usd"] is None
    assert sql["status"] == {"code": "Error", "message": "timeout after 900ms"} and sql["kind"] == "Client"
    assert sql["genai"]["provider"] == "" and sql["genai"]["total_tokens"] is None
    assert body["totals"] == {
        "span_count": 4, "error_count": 1, "start_time_unix_nano": str(T0), "duration_ns": 2_500_000_000,
        "input_tokens": 150, "output_tokens": 30, "total_tokens": 180, "total_cost_usd": 0.0005,
        "services": ["llm-gateway", "shop-api"]}


async def test_trace_detail_errors(api: httpx.AsyncClient) -> None:
    for bad in ("xyz", "a1" * 15, "a1" * 16 + "0", "g" * 32):
        assert_bad_param(await api.get(f"/api/v1/traces/{bad}"), "trace_id")
    assert_bad_param(await api.get(f"/api/v1/traces/{'0' * 32}"), "trace_id")
    unknown = "0123456789abcdef0123456789abcdef"
    resp = await api.get(f"/api/v1/traces/{unknown}")
    assert resp.status_code == 404
    assert resp.json() == {"error": {"code": 404, "message": f"trace {unknown} not found"}}


# ------------------------------------------------------------------------------ duplicates


async def test_spans_sent_again_count_once_in_the_list_and_show_once_in_the_trace(
        chdb_endpoint: str, database: str) -> None:
    payload = TraceBatch.from_bytes((FIXTURES / "mlflow" / "http-protobuf.pb").read_bytes())
    genai = build_batch(hand_built_specs(time.time_ns())[:4])  # trace A, with GenAI columns
    expected = expected_from([payload])
    # As sent, then every span again, one request per span: a client retrying after lost
    # acknowledgements, re-batched, so ClickHouse's block deduplication cannot help. The
    # exporter's gate (sinks/clickhouse/dedup.py) keeps the copies out of the table and so out
    # of the per-trace rollup the list reads.
    await seed(chdb_endpoint, database, [payload, genai, *split_per_span(payload), *split_per_span(genai)])
    # Copies written past the gate (two writers racing, or a stock Collector sharing the
    # table) reach the spans table; ReplacingMergeTree would collapse them on its next merge
    # (eventually): keep them apart, as between inserts and merges, to test the read path.
    client = open_client(chdb_endpoint)
    try:
        raw_before = client.query(f"SELECT count() FROM {database}.otel_traces").result_rows[0][0]
        client.command(f"SYSTEM STOP MERGES {database}.otel_traces")
        store = make_store(chdb_endpoint, database)
        app = create_app(store, FakeHost())
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://q") as api:
            listed = await search(api)
            day = await search(api, start="2026-01-10T00:00:00Z", end="2026-01-11T00:00:00Z")
            for batch in [*split_per_span(payload), *split_per_span(genai)]:
                names, data = batch_to_columns(batch)
                client.insert(f"{database}.otel_traces", data, column_names=names, column_oriented=True)
            raw_after = client.query(f"SELECT count() FROM {database}.otel_traces").result_rows[0][0]
            details = {tid: (await api.get(f"/api/v1/traces/{tid}")).json() for tid in [*expected, TRACE_A]}
        await store.close()
    finally:
        client.close()
    assert raw_before == payload.span_count + genai.span_count
    assert raw_after == 2 * raw_before

    assert {r["trace_id"]: r["span_count"] for r in listed["traces"]} == {
        tid: e["span_count"] for tid, e in expected.items()}
    [a] = day["traces"]
    assert (a["span_count"], a["error_count"]) == (4, 1)
    assert (a["input_tokens"], a["output_tokens"], a["total_tokens"]) == (150, 30, 180)
    assert a["total_cost_usd"] == pytest.approx(0.0005)
    assert day["totals"] == {"traces": 1, "input_tokens": 150, "output_tokens": 30, "cost_usd": pytest.approx(0.0005),
                             "estimated": False}

    for tid, exp in expected.items():
        span_ids = [s["span_id"] for s in details[tid]["spans"]]
        assert len(span_ids) == len(set(span_ids)) == exp["span_count"]
        assert details[tid]["totals"]["span_count"] == exp["span_count"]
    assert len(details[TRACE_A]["spans"]) == 4
    assert details[TRACE_A]["totals"]["total_tokens"] == 180
    assert details[TRACE_A]["totals"]["total_cost_usd"] == pytest.approx(0.0005)


# ------------------------------------------------------------------------------ bad parameters


@pytest.mark.parametrize(("params", "parameter"), [
    ({"limit": 0}, "limit"),
    ({"limit": -1}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"limit": 101}, "limit"),  # over max_limit
    ({"start": "yesterday"}, "start"),
    ({"start": "2026-13-01T00:00:00Z"}, "start"),
    ({"start": "2026-01-01T00:00:00"}, "start"),  # no zone
    ({"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, "start"),
    ({"end": "99999999999999999999"}, "end"),
    ({"status": "failed"}, "status"),
    ({"cursor": "!!!"}, "cursor"),
    ({"cursor": base64.urlsafe_b64encode(b'{"v":1}').decode()}, "cursor"),
    ({"cursor": base64.urlsafe_b64encode(json.dumps(
        {"v": 1, "t": 1, "id": "nothex", "s": 0, "e": 5}).encode()).decode()}, "cursor"),
    ({"attr": "novalue"}, "attr"),
    ({"attr": "=value"}, "attr"),
    ({"min_duration_ms": -1}, "min_duration_ms"),
    ({"min_duration_ms": "slow"}, "min_duration_ms"),
    ({"min_tokens": -5}, "min_tokens"),
    ({"min_duration_ms": "1e309"}, "min_duration_ms"),  # infinite
    ({"max_duration_ms": -1}, "max_duration_ms"),
    ({"max_cost_usd": "nan"}, "max_cost_usd"),
    ({"min_tokens": 10, "max_tokens": 5}, "max_tokens"),
    ({"min_cost_usd": 1, "max_cost_usd": 0.5}, "max_cost_usd"),
    ({"min_duration_ms": 10, "max_duration_ms": 5}, "max_duration_ms"),
])
async def test_bad_parameters_are_400(api: httpx.AsyncClient, params: dict[str, Any], parameter: str) -> None:
    assert_bad_param(await api.get("/api/v1/traces", params=params), parameter)


async def test_unknown_route_is_json_404(api: httpx.AsyncClient) -> None:
    resp = await api.get("/api/v1/nope")
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == 404


async def test_clickhouse_failure_is_503(chdb_endpoint: str) -> None:
    store = make_store(chdb_endpoint, f"missing_{uuid.uuid4().hex[:8]}")
    app = create_app(store, FakeHost())
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://q") as api:
            for path in ("/api/v1/traces", f"/api/v1/traces/{TRACE_A}"):
                resp = await api.get(path)
                assert resp.status_code == 503, resp.text
                error = resp.json()["error"]
                assert error["code"] == 503
                assert "ClickHouse error" in error["message"]
                assert "Traceback" not in resp.text and "SELECT" not in resp.text
    finally:
        await store.close()
    # after close the store refuses politely
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://q") as api:
        resp = await api.get("/api/v1/traces")
        assert resp.status_code == 503 and "shutting down" in resp.json()["error"]["message"]


# ------------------------------------------------------------------------------ openapi, health


async def test_openapi_documents_the_endpoints(api: httpx.AsyncClient) -> None:
    doc = (await api.get("/openapi.json")).json()
    paths = doc["paths"]
    for path in ("/api/v1/traces", "/api/v1/traces/{trace_id}", "/healthz", "/readyz", "/metrics"):
        assert "get" in paths[path], path
    params = {p["name"] for p in paths["/api/v1/traces"]["get"]["parameters"]}
    assert {"start", "end", "service", "span_name", "status", "provider", "model", "session", "user",
            "min_duration_ms", "attr", "limit", "cursor"} <= params
    search_get = paths["/api/v1/traces"]["get"]["responses"]
    assert "400" in search_get and "503" in search_get and "422" not in search_get
    assert "404" in paths["/api/v1/traces/{trace_id}"]["get"]["responses"]
    schemas = doc["components"]["schemas"]
    for name in ("TraceSummary", "TraceSearchResponse", "SpanDetail", "GenAIFields", "TraceTotals",
                 "TraceDetailResponse", "ErrorResponse"):
        assert name in schemas, name
    assert schemas["TraceSummary"]["properties"]["start_time_unix_nano"]["type"] == "string"


async def test_metrics_is_prometheus_text(seeded: Seeded, chdb_endpoint: str) -> None:
    host = FakeHost()
    host.telemetry.exporter_sent_spans.labels("clickhouse").inc(7)
    store = make_store(chdb_endpoint, seeded.database)
    app = create_app(store, host)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://q") as api:
        resp = await api.get("/metrics")
    await store.close()
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert 'tracehouse_exporter_sent_spans_total{exporter="clickhouse"} 7.0' in resp.text
    assert "# TYPE tracehouse_receiver_accepted_spans_total counter" in resp.text


async def test_health_and_readiness_follow_the_host(seeded: Seeded, chdb_endpoint: str) -> None:
    host = FakeHost(ready=False, healthy=True)
    host.status_map = {"exporter/clickhouse": ("starting", None),
                       "receiver/otlp": ("permanent_error", "cannot listen on :4317")}
    store = make_store(chdb_endpoint, seeded.database)
    app = create_app(store, host)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://q") as api:
        resp = await api.get("/readyz")
        assert resp.status_code == 503
        assert resp.json() == {"status": "not_ready", "components": {
            "exporter/clickhouse": {"status": "starting", "error": None},
            "receiver/otlp": {"status": "permanent_error", "error": "cannot listen on :4317"}}}
        assert (await api.get("/healthz")).json() == {"status": "ok"}
        host._ready = True
        host.status_map = {"exporter/clickhouse": ("ok", None)}
        resp = await api.get("/readyz")
        assert resp.status_code == 200 and resp.json()["status"] == "ready"
        host._healthy = False
        resp = await api.get("/healthz")
        assert resp.status_code == 503 and resp.json() == {"status": "unhealthy"}
    await store.close()


# ------------------------------------------------------------------------------ extension, config


async def test_extension_serves_over_a_real_socket(seeded: Seeded, chdb_endpoint: str) -> None:
    config = QueryApiConfig(endpoint="localhost:0",
                            clickhouse=QueryClickHouseConfig(endpoint=chdb_endpoint,
                                                             database=seeded.database))
    extension = QueryApiExtension(Settings(ComponentID("query_api"), Kind.EXTENSION), config)
    await extension.shutdown()  # before start: a no-op
    await extension.start(FakeHost())  # type: ignore[arg-type]
    try:
        assert extension.port
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{extension.port}") as client:
            resp = await client.get("/healthz")
            assert resp.status_code == 200 and resp.json() == {"status": "ok"}
            resp = await client.get("/api/v1/traces/75beb1925d8388da1263a80c9f293a4b")
            assert resp.status_code == 200 and len(resp.json()["spans"]) == 3
    finally:
        await extension.shutdown()
        await extension.shutdown()
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{extension.port}") as client:
            await client.get("/healthz")


async def test_extension_health_from_statuses_only() -> None:
    from tracehouse.query.extension import health_of

    class StatusOnlyHost:
        telemetry = Telemetry()

        def __init__(self) -> None:
            self.map: dict[str, tuple[str, str | None]] = {"exporter/x": ("ok", None)}

        def report_status(self, *a: Any) -> None:
            pass

        def statuses(self) -> dict[str, tuple[str, str | None]]:
            return self.map

    host = StatusOnlyHost()
    health = health_of(host)
    assert health.ready() and health.healthy()
    host.map["exporter/x"] = ("recoverable_error", "down")
    assert health.ready() and health.healthy()
    host.map["exporter/x"] = ("fatal_error", "boom")
    assert not health.ready() and not health.healthy()


def test_config_defaults_and_validation() -> None:
    cfg = QueryApiConfig()
    assert cfg.endpoint == "localhost:8080" and cfg.max_workers == 4 and cfg.max_limit == 1000
    assert cfg.default_lookback == 3600.0
    assert cfg.clickhouse.endpoint == "chdb://./data/clickhouse"
    assert (cfg.clickhouse.database, cfg.clickhouse.traces_table_name) == ("tracehouse", "otel_traces")
    assert cfg.clickhouse.timeout == 30.0
    assert QueryApiConfig.model_validate({"default_lookback": "30m"}).default_lookback == 1800.0
    loaded = load_config_dict({
        "receivers": {"otlp": {}}, "exporters": {"clickhouse": {}},
        "extensions": {"query_api": {"endpoint": "0.0.0.0:9090", "clickhouse": {"timeout": "5s"}}},
        "service": {"extensions": ["query_api"],
                    "pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["clickhouse"]}}},
    })
    entry = loaded.entry(Kind.EXTENSION, ComponentID("query_api"))
    assert isinstance(entry.config, QueryApiConfig)
    assert entry.config.endpoint == "0.0.0.0:9090" and entry.config.clickhouse.timeout == 5.0
    for bad, path in (({"endpoint": "http://x:1"}, "endpoint"), ({"endpoint": "host:99999"}, "endpoint"),
                      ({"max_limit": 0}, "max_limit"), ({"clickhouse": {"database": "a-b"}}, "database"),
                      ({"clickhouse": {"endpoint": "tcp://x"}}, "endpoint"), ({"bogus": 1}, "bogus")):
        with pytest.raises(ConfigError) as exc:
            load_config_dict({
                "receivers": {"otlp": {}}, "exporters": {"clickhouse": {}},
                "extensions": {"query_api": bad},
                "service": {"extensions": ["query_api"],
                            "pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["clickhouse"]}}},
            })
        assert path in str(exc.value)


def test_factory_builds_the_extension() -> None:
    factory = get_factory(Kind.EXTENSION, "query_api")
    assert factory is not None and factory.config_type is QueryApiConfig
    component = factory.create(Settings(ComponentID("query_api"), Kind.EXTENSION), QueryApiConfig(), None)
    assert isinstance(component, QueryApiExtension)


def test_time_parsing_keeps_nanoseconds() -> None:
    assert parse_time_ns("2026-11-22T16:24:48.989033908Z", "start") == 1795364688989033908
    assert parse_time_ns("2026-11-22T17:24:48.989033908+01:00", "start") == 1795364688989033908
    assert parse_time_ns("1795364688.989033908", "start") == 1795364688989033908
    assert parse_time_ns("1795364688", "start") == 1795364688 * NS
    assert format_ns(1795364688989033908) == "2026-11-22T16:24:48.989033908Z"
