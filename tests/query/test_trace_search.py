"""Trace search that answers questions: every sort both ways, bounds, attribute operators,
span kinds, session and user, over hand-built traces written by the real exporter into
chDB. Every expectation is computed here from the specs the traces were built from (an
independent computation, not the API's answers); strictness of parameters on every route.

The GenAI columns are set as the GenAI processors would leave them (no SDK emits them)."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal
from string import Template
from typing import Any

import httpx
import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from test_query_api import FakeHost, SpanSpec, assert_bad_param, build_batch, make_store, seed
from tracehouse.query.app import create_app
from tracehouse.query.config import QueryApiConfig, QueryClickHouseConfig
from tracehouse.query.params import parse_time_ns
from tracehouse.query.search import SearchLimits, parse_search
from tracehouse.query.store import AttributeFilter, MetricsQuery, SearchQuery, TraceStore, load_sql
from tracehouse.core.pdata import key_values
from tracehouse.sinks.clickhouse.client import open_client
from tracehouse.sinks.clickhouse.columns import attrs_to_map

NS = 10**9
DAY = {"start": "2026-02-03T00:00:00Z", "end": "2026-02-04T00:00:00Z"}
T0 = parse_time_ns("2026-02-03T09:00:00Z")
TRACES = 41
OTEL_KIND = {Span.SPAN_KIND_SERVER: "server", Span.SPAN_KIND_INTERNAL: "internal", Span.SPAN_KIND_CLIENT: "client"}


@dataclass
class Built:
    trace_id: str
    specs: list[SpanSpec]

    @property
    def start(self) -> int:
        return min(s.start_ns for s in self.specs)

    @property
    def duration(self) -> int:
        return max(s.start_ns + s.duration_ns for s in self.specs) - self.start

    def _sum(self, column: str) -> Any:
        values = [s.genai[column] for s in self.specs if s.genai.get(column) is not None]
        return sum(values) if values else None

    @property
    def tokens(self) -> int:
        total = self._sum("GenAITotalTokens")
        return total if total is not None else (self._sum("GenAIInputTokens") or 0) + (self._sum("GenAIOutputTokens") or 0)

    @property
    def cost(self) -> Decimal | None:
        return self._sum("GenAITotalCostUSD")

    def trace_value(self, column: str) -> str:
        """The trace's session or user as the rollup keeps it: the greatest of its spans'."""
        return max((s.genai.get(column, "") for s in self.specs), default="")


def _trace(rng: random.Random, n: int) -> Built:
    """A root (server or internal) with an LLM call (priced, unpriced, or no usage at all), a
    tool and sometimes a retriever; attributes drawn so every operator has hits and misses."""
    trace_id = f"{n + 1:04x}" + uuid.UUID(int=rng.getrandbits(128)).hex[4:]
    start = T0 + n * 60 * NS + rng.randint(0, 59) * NS
    service = rng.choice(["shop-api", "support-bot", "batch"])
    # Durations, token counts and costs repeat across traces, so ties are broken by trace id.
    duration = rng.choice([50, 120, 120, 900, 4000]) * 1_000_000
    kind = rng.choice([Span.SPAN_KIND_SERVER, Span.SPAN_KIND_INTERNAL])
    root = SpanSpec(service, trace_id, f"{n + 1:04x}000000000001", "", "handle", start, duration, kind=kind,
                    attrs={"http.status_code": rng.choice([200, 404, 500, 1000]),
                           "customer.tier": rng.choice(["gold", "silver", "Gold"]),
                           "ratio": rng.choice([0.25, 0.3, -5, 12.5])},
                    genai={"GenAISpanKind": "agent"})
    llm_attrs: dict[str, Any] = {"note": rng.choice(["Refund requested", "all good", "REFUND denied", "n/a"])}
    if rng.random() < 0.5:
        llm_attrs["customer.tier"] = rng.choice(["gold", "bronze"])
    genai: dict[str, Any] = {"GenAISpanKind": rng.choice(["llm", "llm", "embedding"]),
                             "GenAIRequestModel": rng.choice(["gpt-4o", "gpt-4o-mini"]),
                             "GenAISessionId": rng.choice(["", "s-1", "s-2"]),
                             "GenAIUserId": rng.choice(["", "ana", "bo"])}
    usage = rng.random()
    if usage < 0.7:  # usage reported; priced three times in four
        genai.update(GenAIInputTokens=rng.choice([10, 100, 100]), GenAIOutputTokens=rng.choice([5, 50]))
        if rng.random() < 0.5:
            genai["GenAITotalTokens"] = genai["GenAIInputTokens"] + genai["GenAIOutputTokens"] + 7
        if rng.random() < 0.75:
            genai["GenAITotalCostUSD"] = Decimal(rng.choice([1, 25, 25, 400])) / Decimal(10**6)
    llm = SpanSpec("llm-gateway", trace_id, f"{n + 1:04x}000000000002", root.span_id, "chat", start + 1_000_000,
                   duration // 2, kind=Span.SPAN_KIND_CLIENT, attrs=llm_attrs, genai=genai,
                   code=Status.STATUS_CODE_ERROR if rng.random() < 0.2 else Status.STATUS_CODE_UNSET)
    tool = SpanSpec(service, trace_id, f"{n + 1:04x}000000000003", root.span_id, "tool", start + 2_000_000,
                    duration // 4, attrs={"tool.name": rng.choice(["search", "sql"])},
                    genai={"GenAISpanKind": "tool"})
    specs = [root, llm, tool]
    if rng.random() < 0.3:
        specs.append(SpanSpec(service, trace_id, f"{n + 1:04x}000000000004", tool.span_id, "retrieve",
                              start + 3_000_000, 1_000_000, attrs={"docs": 3},
                              genai={"GenAISpanKind": "retriever"}))
    return Built(trace_id, specs)


@pytest.fixture(scope="module")
def built(chdb_endpoint: str) -> tuple[str, list[Built]]:
    database = f"ts_{uuid.uuid4().hex[:12]}"
    rng = random.Random(20260203)
    traces = [_trace(rng, n) for n in range(TRACES)]
    # Two exports, so the rollup holds partial rows that every query must merge.
    specs = [s for t in traces for s in t.specs]
    asyncio.run(seed(chdb_endpoint, database, [build_batch(specs[::2]), build_batch(specs[1::2])]))
    return database, traces


def at_scale_store(endpoint: str, database: str) -> TraceStore:
    """A store that answers every range as one of millions of traces: estimated totals."""
    return TraceStore(QueryClickHouseConfig(endpoint=endpoint, database=database), max_workers=2,
                      exact_totals_max_traces=0)


@pytest.fixture(params=["exact", "at_scale"])
def search_mode(request: pytest.FixtureRequest) -> str:
    """Every search test runs twice: as the store answers a range of few traces (exact
    totals), and as it answers one of millions (query/store.py, "search at scale": the page
    from candidates, estimated totals), here forced for 41 traces with candidate rounds
    small enough that pages of a few rows take every branch (a first round enough, a round
    grown, and none enough)."""
    return str(request.param)


@pytest.fixture
async def api(built: tuple[str, list[Built]], chdb_endpoint: str, search_mode: str) -> AsyncIterator[httpx.AsyncClient]:
    if search_mode == "exact":
        store = make_store(chdb_endpoint, built[0])
    else:
        store = at_scale_store(chdb_endpoint, built[0])
        store.CANDIDATE_ROUNDS = (3, 12, 24)
        store.FEW_SPAN_TRACES = 5  # span filters that pick fewer traces are grouped by id
    app = create_app(store, FakeHost(), settings=QueryApiConfig(max_limit=100))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://query") as client:
        yield client
    await store.close()


async def search(api: httpx.AsyncClient, params: Any = ()) -> dict[str, Any]:
    items = list(params.items()) if isinstance(params, dict) else list(params)
    items += [(k, v) for k, v in DAY.items() if k not in {name for name, _ in items}]
    resp = await api.get("/api/v1/traces", params=items)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def ids(body: dict[str, Any]) -> list[str]:
    return [t["trace_id"] for t in body["traces"]]


INT64_MAX = 2**63 - 1


def sort_key(t: Built, sort: str, order: str) -> int:
    if sort == "cost":
        cost = t.cost
        return (INT64_MAX if order == "asc" else -1) if cost is None else round(float(cost) * 1e9)
    return {"tokens": t.tokens, "duration": t.duration, "time": t.start}[sort]


def expected_order(traces: list[Built], sort: str, order: str) -> list[str]:
    """Descending: largest first, ties by trace id; ascending: the reverse (unpriced last both ways)."""
    if order == "desc":
        return [t.trace_id for t in sorted(traces, key=lambda t: (-sort_key(t, sort, order), t.trace_id))]
    by_id_desc = sorted(traces, key=lambda t: t.trace_id, reverse=True)
    return [t.trace_id for t in sorted(by_id_desc, key=lambda t: sort_key(t, sort, order))]


def assert_summaries_whole(body: dict[str, Any], traces: list[Built]) -> None:
    """Each row is its whole trace: start, duration, spans, tokens and cost of every span,
    never of the part that one rollup row holds."""
    by_id = {t.trace_id: t for t in traces}
    for row in body["traces"]:
        t = by_id[row["trace_id"]]
        assert (int(row["start_time_unix_nano"]), row["duration_ns"], row["span_count"]) == \
            (t.start, t.duration, len(t.specs)), row["trace_id"]
        cost = t.cost
        assert row["total_cost_usd"] == (None if cost is None else pytest.approx(float(cost))), row["trace_id"]
        root = next(s for s in t.specs if not s.parent_id)
        models = {s.genai.get(c, "") for s in t.specs for c in ("GenAIRequestModel", "GenAIResponseModel")} - {""}
        assert (row["root_span_name"], row["root_service_name"], row["service_names"], row["models"]) == \
            (root.name, root.service, sorted({s.service for s in t.specs}), sorted(models)), row["trace_id"]


async def walk(api: httpx.AsyncClient, params: dict[str, Any], limit: int,
               traces: list[Built] | None = None) -> tuple[list[str], list[Any]]:
    seen: list[str] = []
    totals = []
    cursor = None
    for _ in range(100):
        body = await search(api, {**params, "limit": limit, **({"cursor": cursor} if cursor else {})})
        assert len(body["traces"]) <= limit
        if traces is not None:
            assert_summaries_whole(body, traces)
        seen += ids(body)
        totals.append(body["totals"])
        cursor = body["next_cursor"]
        if cursor is None:
            return seen, totals
    raise AssertionError("more than 100 pages")


# ------------------------------------------------------------------------------ sorting


@pytest.mark.parametrize("order", ["desc", "asc"])
@pytest.mark.parametrize("sort", ["time", "cost", "tokens", "duration"])
async def test_every_sort_pages_through_every_trace_once_in_both_orders(
        api: httpx.AsyncClient, built: tuple[str, list[Built]], sort: str, order: str) -> None:
    traces = built[1]
    seen, totals = await walk(api, {"sort": sort, "order": order}, limit=6, traces=traces)
    assert seen == expected_order(traces, sort, order)
    assert len(seen) == len(set(seen)) == TRACES
    assert all(t == totals[0] for t in totals) and totals[0]["traces"] == TRACES, totals
    # ties exist, so the tie order is tested
    assert len({sort_key(t, sort, order) for t in traces}) < TRACES or sort == "time"


async def test_ascending_is_the_reverse_of_descending_with_unpriced_traces_last_both_ways(
        api: httpx.AsyncClient, built: tuple[str, list[Built]]) -> None:
    desc, _ = await walk(api, {"sort": "cost"}, limit=50)
    asc, _ = await walk(api, {"sort": "cost", "order": "asc"}, limit=50)
    unpriced = {t.trace_id for t in built[1] if t.cost is None}
    assert 3 < len(unpriced) < TRACES - 3
    assert set(desc[-len(unpriced):]) == set(asc[-len(unpriced):]) == unpriced
    assert desc[:-len(unpriced)] == asc[:-len(unpriced)][::-1]
    body = await search(api, {"sort": "duration", "order": "asc", "limit": 3})
    assert (body["sort"], body["order"]) == ("duration", "asc")


async def test_a_cursor_continues_only_its_sort_and_order(api: httpx.AsyncClient) -> None:
    cursor = (await search(api, {"sort": "tokens", "order": "asc", "limit": 2}))["next_cursor"]
    for params in ({"sort": "tokens"}, {"sort": "tokens", "order": "desc"}, {"sort": "cost", "order": "asc"}):
        resp = await api.get("/api/v1/traces", params={**DAY, **params, "cursor": cursor})
        assert_bad_param(resp, "cursor")
        assert "sorted by tokens ascending" in resp.json()["error"]["message"]
    ok = await search(api, {"sort": "tokens", "order": "asc", "cursor": cursor, "limit": 2})
    assert len(ok["traces"]) == 2


async def test_a_filtered_walk_in_both_orders_matches_the_filter(
        api: httpx.AsyncClient, built: tuple[str, list[Built]]) -> None:
    params = {"min_tokens": 60, "max_cost_usd": 0.0001, "sort": "tokens"}
    keep = [t for t in built[1] if t.tokens >= 60 and float(t.cost or 0) <= 0.0001]
    assert 3 < len(keep) < TRACES
    for order in ("desc", "asc"):
        seen, totals = await walk(api, {**params, "order": order}, limit=4, traces=built[1])
        assert seen == expected_order(keep, "tokens", order)
        assert totals[0]["traces"] == len(keep)


async def test_at_scale_a_page_is_whole_wherever_its_candidates_end(
        built: tuple[str, list[Built]], chdb_endpoint: str) -> None:
    # Each trace has two rollup rows (its spans came in two exports) starting 1 ms apart, so
    # some candidate cuts fall between a trace's rows: that trace must neither be shown from
    # its later row alone nor be missed.
    store = at_scale_store(chdb_endpoint, built[0])
    app = create_app(store, FakeHost(), settings=QueryApiConfig(max_limit=100))  # type: ignore[arg-type]
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://query") as api:
            for order in ("desc", "asc"):
                want = expected_order(built[1], "time", order)
                for rows in range(1, 2 * TRACES + 1):
                    store.CANDIDATE_ROUNDS = (rows,)
                    body = await search(api, {"order": order, "limit": 2})
                    assert ids(body) == want[:2], (order, rows)
                    assert_summaries_whole(body, built[1])
                    assert body["totals"]["estimated"] is True
    finally:
        await store.close()


async def test_at_scale_a_long_trace_seen_by_a_late_row_does_not_take_a_newer_traces_place(
        chdb_endpoint: str) -> None:
    # Two long traces started first, and their last spans came later, in another export:
    # their late rollup rows are the newest rows. A newest-first page cut from the newest rows
    # sees them as candidates, but each starts before the cut, so the traces that started
    # after them (and had no row among the newest) come first.
    database = f"ts_{uuid.uuid4().hex[:12]}"
    short = [SpanSpec("svc", f"{n:032x}", f"{n:016x}", "", "short", T0 + n * 60 * NS, NS) for n in range(1, 6)]
    roots = [SpanSpec("svc", f"{0xA0 + n:032x}", f"{0xA0 + n:016x}", "", "long", T0 + n * NS, 900 * NS)
             for n in range(2)]
    late = [SpanSpec("svc", r.trace_id, f"{0xB0 + n:016x}", r.span_id, "late", T0 + (600 + n) * NS, NS)
            for n, r in enumerate(roots)]
    await seed(chdb_endpoint, database, [build_batch(short + roots), build_batch(late)])
    store = at_scale_store(chdb_endpoint, database)
    app = create_app(store, FakeHost(), settings=QueryApiConfig(max_limit=100))  # type: ignore[arg-type]
    newest = [short[4].trace_id, short[3].trace_id, short[2].trace_id]
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://query") as api:
            for rows in range(1, 10):
                store.CANDIDATE_ROUNDS = (rows,)
                body = await search(api, {"limit": 2})
                assert ids(body) == newest[:2], rows
                assert ids(await search(api, {"limit": 3})) == newest, rows
    finally:
        await store.close()


async def test_at_scale_oldest_first_skips_what_ended_before_the_range_and_keeps_what_crosses_it(
        chdb_endpoint: str) -> None:
    # Oldest first over a range with hours of traces just before it (any "last 24 h" of a
    # running store): those rows are not candidates, so the first round's cut falls inside
    # the range. Two traces crossing the range's start come first: one whole in one row, and
    # one still in two rows: the first (with the root) ended before the range, the other is
    # the trace's only row in it and comes after every candidate cut.
    database = f"ts_{uuid.uuid4().hex[:12]}"
    start = T0 + 3600 * NS
    before = [SpanSpec("svc", f"{0x10000 + n:032x}", f"{0x10000 + n:016x}", "", "before", start - (3000 - n * 5) * NS, NS)
              for n in range(300)]
    inside = [SpanSpec("svc", f"{0x20000 + n:032x}", f"{0x20000 + n:016x}", "", "inside", start + (10 + n) * NS, NS)
              for n in range(8)]
    whole = SpanSpec("svc", f"{0xA1:032x}", f"{0xA1:016x}", "", "crossing", start - 600 * NS, 700 * NS)
    child = SpanSpec("svc", whole.trace_id, f"{0xA4:016x}", whole.span_id, "step", start + 2 * NS, NS)
    root = SpanSpec("svc", f"{0xA2:032x}", f"{0xA2:016x}", "", "split", start - 900 * NS, 10 * NS)
    late = SpanSpec("svc", root.trace_id, f"{0xA3:016x}", root.span_id, "late", start + 1800 * NS, NS)
    await seed(chdb_endpoint, database, [build_batch([*before, *inside, whole, child, root]), build_batch([late])])
    store = at_scale_store(chdb_endpoint, database)
    app = create_app(store, FakeHost(), settings=QueryApiConfig(max_limit=100))  # type: ignore[arg-type]
    want = [root.trace_id, whole.trace_id] + [s.trace_id for s in inside]
    reads: list[str] = []
    run = store._run
    store._run = lambda name, *args: reads.append(name) or run(name, *args)  # type: ignore[method-assign]
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://query") as api:
            for rounds in [(4,), (10, 300), (50,)]:
                store.CANDIDATE_ROUNDS = rounds
                reads.clear()
                body = await search(api, {"start": str(start / NS), "end": str(start / NS + 3600),
                                          "order": "asc", "limit": 3})
                assert ids(body) == want[:3], (rounds, reads, body)
                assert reads.count("trace_search_cutoff") == 1, (rounds, reads)
            store.CANDIDATE_ROUNDS = (4,)
            seen, _ = await walk(api, {"start": str(start / NS), "end": str(start / NS + 3600), "order": "asc"}, 3)
            assert seen == want
    finally:
        await store.close()


async def test_at_scale_a_cheap_models_page_by_cost_is_cut_among_that_models_traces(chdb_endpoint: str) -> None:
    # Sorted by cost and narrowed to a model whose traces are all cheaper than another's: a
    # cut among every trace would hold only the other model's, round after round. The rollup
    # keeps each trace's models, so the cut counts that model's traces only: one round.
    database = f"ts_{uuid.uuid4().hex[:12]}"
    start = T0 + 3600 * NS

    def chat(n: int, model: str, cost: str, response_model: str = "") -> SpanSpec:
        return SpanSpec("svc", f"{0x30000 + n:032x}", f"{0x30000 + n:016x}", "", f"chat {n}", start + n * NS, NS,
                        genai={"GenAIRequestModel": model, "GenAIResponseModel": response_model or model,
                               "GenAITotalCostUSD": Decimal(cost)})

    costly = [chat(n, "big", f"0.{n + 10:02d}") for n in range(60)]
    cheap = [chat(100 + n, "small", f"0.00{n + 1}") for n in range(6)]
    dated = chat(200, "tiny", "0.0095", response_model="small")  # the model it answered with
    await seed(chdb_endpoint, database, [build_batch([*costly, *cheap, dated])])
    store = at_scale_store(chdb_endpoint, database)
    store.FEW_SPAN_TRACES = 2  # the model's 7 traces are "many"
    store.CANDIDATE_ROUNDS = (4, 16, 64)
    app = create_app(store, FakeHost(), settings=QueryApiConfig(max_limit=100))  # type: ignore[arg-type]
    reads: list[str] = []
    run = store._run
    store._run = lambda name, *args: reads.append(name) or run(name, *args)  # type: ignore[method-assign]
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://query") as api:
            window = {"start": str(start / NS), "end": str(start / NS + 3600)}
            body = await search(api, {**window, "sort": "cost", "model": "small", "limit": 3})
            assert ids(body) == [dated.trace_id, cheap[5].trace_id, cheap[4].trace_id]
            assert reads.count("trace_search_top") == 1, reads
            reads.clear()
            body = await search(api, {**window, "sort": "cost", "order": "asc", "service": "svc", "limit": 2})
            assert ids(body) == [cheap[0].trace_id, cheap[1].trace_id] and reads.count("trace_search_top") == 1
            seen, _ = await walk(api, {**window, "sort": "cost", "model": "small"}, 3)
            assert seen == [dated.trace_id, *[t.trace_id for t in reversed(cheap)]]
    finally:
        await store.close()


async def test_at_scale_span_filtered_totals_are_scaled_from_the_candidates(
        built: tuple[str, list[Built]], chdb_endpoint: str) -> None:
    # A span filter's totals would read the whole range's spans (for a text search over
    # messages, seconds): at scale they come from the page's candidates, scaled to the
    # range's traces, and say they are estimated. Every trace a candidate, or the filter's
    # traces few enough to group by id: exact.
    store = at_scale_store(chdb_endpoint, built[0])
    store.FEW_SPAN_TRACES = 0
    app = create_app(store, FakeHost(), settings=QueryApiConfig(max_limit=100))  # type: ignore[arg-type]
    want = [t for t in built[1] if any(s.genai.get("GenAIRequestModel") == "gpt-4o" for s in t.specs)]
    assert 3 < len(want) < TRACES
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://query") as api:
            store.CANDIDATE_ROUNDS = (1000,)
            whole = await search(api, {"model": "gpt-4o", "limit": 2})
            assert ids(whole) == expected_order(want, "time", "desc")[:2]
            assert whole["totals"]["traces"] == len(want) and whole["totals"]["estimated"] is False
            assert whole["totals"]["input_tokens"] == sum(t._sum("GenAIInputTokens") or 0 for t in want)
            store.CANDIDATE_ROUNDS = (24,)
            sliced = await search(api, {"model": "gpt-4o", "limit": 2})
            assert ids(sliced) == ids(whole)
            assert_summaries_whole(sliced, built[1])
            # The rollup's rows: one per trace and export (the fixture's two), at its spans' first start.
            specs = [sp for t in built[1] for sp in t.specs]
            rows: dict[tuple[str, int], int] = {}
            for i, sp in enumerate(specs):
                rows[sp.trace_id, i % 2] = min(rows.get((sp.trace_id, i % 2), sp.start_ns), sp.start_ns)
            cutoff = sorted(rows.values(), reverse=True)[23]
            candidates = [t for t in want if t.start >= cutoff]
            assert sliced["totals"]["estimated"] is True
            assert sliced["totals"]["traces"] == round(len(candidates) * len(rows) / 24)
            store.FEW_SPAN_TRACES = 1000
            few = await search(api, {"model": "gpt-4o", "limit": 2})
            assert ids(few) == ids(whole) and few["totals"] == whole["totals"]
    finally:
        await store.close()


@pytest.mark.parametrize("sort", ["cost", "tokens", "duration"])
async def test_at_scale_a_span_filtered_page_by_value_tests_its_candidates_spans_only(
        built: tuple[str, list[Built]], chdb_endpoint: str, sort: str) -> None:
    # Sorted by a value, a page's candidates are spread over the whole range: the span filters
    # test the candidates' spans, not every span of the range (seconds over a day of 10M
    # spans with a map filter), and the totals are the newest-first page's estimate (the
    # value's candidates are no sample of the range), never a read of every span either.
    store = at_scale_store(chdb_endpoint, built[0])
    store.FEW_SPAN_TRACES = 0
    store.CANDIDATE_ROUNDS = (3, 24)
    app = create_app(store, FakeHost(), settings=QueryApiConfig(max_limit=100))  # type: ignore[arg-type]
    want = [t for t in built[1] if any(s.genai.get("GenAIRequestModel") == "gpt-4o" for s in t.specs)]
    reads: list[tuple[str, str]] = []
    run = store._run
    store._run = lambda name, params, sql=None: reads.append((name, sql or "")) or run(name, params, sql)  # type: ignore[method-assign]
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://query") as api:
            newest = await search(api, {"model": "gpt-4o", "limit": 2})
            reads.clear()
            body = await search(api, {"model": "gpt-4o", "sort": sort, "limit": 2})
            assert ids(body) == expected_order(want, sort, "desc")[:2]
            assert_summaries_whole(body, built[1])
            assert body["totals"] == newest["totals"] and body["totals"]["estimated"] is True
            assert "trace_search_totals" not in [name for name, _ in reads]
            # The page reads its candidate rows (the rows reaching the cut UNION ALL the split
            # traces' rows) twice: to group them, and to pick the spans the filters test.
            (page,) = [sql for name, sql in reads if name == "trace_search" and "UNION ALL" in sql]
            assert page.count("UNION ALL") == 2, page
    finally:
        await store.close()


@pytest.fixture(scope="module")
def mostly_whole(chdb_endpoint: str) -> tuple[str, list[Built]]:
    """30 traces each sent in one export (one rollup row), 6 of them with a late child span
    sent in a second export (two rows, one without the root)."""
    database = f"ts_{uuid.uuid4().hex[:12]}"
    rng = random.Random(20261203)
    traces = [_trace(rng, n) for n in range(30)]
    late = []
    for t in traces[::5]:
        root = t.specs[0]
        extra = SpanSpec(root.service, t.trace_id, t.trace_id[:12] + "0009", root.span_id, "late",
                         root.start_ns + root.duration_ns + 5 * NS, 2 * NS,
                         genai={"GenAIInputTokens": 500, "GenAIOutputTokens": 70,
                                "GenAITotalCostUSD": Decimal(3) / Decimal(10**4)})
        t.specs.append(extra)
        late.append(extra)
    first = [sp for t in traces for sp in t.specs if sp not in late]
    asyncio.run(seed(chdb_endpoint, database, [build_batch(first), build_batch(late)]))
    return database, traces


@pytest.mark.parametrize("sort", ["cost", "tokens", "duration"])
async def test_at_scale_a_page_sorted_by_a_value_is_whole_wherever_its_candidates_end(
        mostly_whole: tuple[str, list[Built]], chdb_endpoint: str, sort: str) -> None:
    # Candidates: the traces with a row whose own key reaches the cut, and every trace in
    # several rows (its late part has no root span, and may be what lifts it over the cut).
    database, traces = mostly_whole
    store = at_scale_store(chdb_endpoint, database)
    app = create_app(store, FakeHost(), settings=QueryApiConfig(max_limit=100))  # type: ignore[arg-type]
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://query") as api:
            for order in ("desc", "asc"):
                want = expected_order(traces, sort, order)
                for rows in range(1, 37, 2):
                    store.CANDIDATE_ROUNDS = (rows,)
                    body = await search(api, {"sort": sort, "order": order, "limit": 3})
                    assert ids(body) == want[:3], (order, rows)
                    assert_summaries_whole(body, traces)
                store.CANDIDATE_ROUNDS = (4, 8)
                seen, _ = await walk(api, {"sort": sort, "order": order}, limit=3, traces=traces)
                assert seen == want, order
    finally:
        await store.close()


@pytest.mark.parametrize(("sort", "key_column"), [("cost", "TotalCostUSD"), ("tokens", "TotalTokens"),
                                                 ("duration", "End")])
@pytest.mark.parametrize("order", ["desc", "asc"])
def test_at_scale_a_value_sorted_page_reads_its_rows_by_the_projection_in_that_order(
        mostly_whole: tuple[str, list[Built]], chdb_endpoint: str, sort: str, key_column: str, order: str) -> None:
    # Sorted by trace id, the rows reaching the cut lie in every granule; the page reads them
    # in a projection sorted by the same key (migration 013). ClickHouse applies a
    # projection's index only to the very expression it is sorted by: the key the page tests
    # and the projection's order must not drift apart.
    database, _ = mostly_whole
    shared = {"score_traces": load_sql("trace_search_scores", database, "otel_traces"),
              "row_filters": load_sql("trace_search_row_filters", database, "otel_traces")}
    query = parse_search([("start", str(T0 / 1e9 - 3600)), ("sort", sort), ("order", order)],
                         SearchLimits(lookback_ns=3600 * NS, window_ns=6 * 3600 * NS, max_limit=100))
    sql = query.sql(load_sql("trace_search", database, "otel_traces", **shared),
                    load_sql("trace_search_spans", database, "otel_traces"), f"{database}.otel_traces_trace_rollup",
                    exact_totals=False, candidates=True)
    cut = {"key_floor": 1} if order == "desc" else {"key_ceiling": 10**12}
    client = open_client(chdb_endpoint)
    plan = [row[0].strip() for row in client.query(f"EXPLAIN indexes = 1, projections = 1 {sql}",
                                                   parameters={**query.parameters(), "tenant": "", **cut}).result_rows]
    if any(line.endswith(f"ReadFromPreparedSource (by_{sort})") for line in plan):
        return  # chosen: it reads fewer granules, which only its index can make it
    at = plan.index(f"Name: by_{sort}")
    condition = next(line for line in plan[at:] if line.startswith("Condition:"))
    assert key_column in condition, f"the projection's index does not apply: {condition}"


async def totals_of_both(endpoint: str, database: str, params: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    """The search's totals as the exact store and as the store at scale give them."""
    found = []
    for store in (make_store(endpoint, database), at_scale_store(endpoint, database)):
        app = create_app(store, FakeHost(), settings=QueryApiConfig(max_limit=100))  # type: ignore[arg-type]
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://query") as api:
                found.append((await search(api, params))["totals"])
        finally:
            await store.close()
    return tuple(found)


def assert_same_totals(exact: dict[str, Any], estimated: dict[str, Any]) -> None:
    assert exact["estimated"] is False and (estimated["estimated"] is True or exact["traces"] == 0)
    assert {k: v for k, v in estimated.items() if k not in ("estimated", "cost_usd")} == \
        {k: v for k, v in exact.items() if k not in ("estimated", "cost_usd")}
    assert estimated["cost_usd"] == pytest.approx(exact["cost_usd"])


def minute_bounds(traces: list[Built], shape: str) -> tuple[int, int]:
    """A range (ns) of the given shape over the fixture's traces, which start one a minute,
    at a random second."""
    if shape == "one-minute":  # around a trace that starts mid-minute
        t = next(t for t in traces if 10 <= t.start // NS % 60 < 50)
        return t.start - 5 * NS, t.start + 5 * NS
    return {"mid-minute": (T0 + (10 * 60 + 30) * NS, T0 + (30 * 60 + 30) * NS),
            "from-before": (T0 - 3600 * NS, T0 + 20 * 60 * NS),
            "all": (T0, T0 + (41 * 60 + 59) * NS)}[shape]


@pytest.mark.parametrize("status", ["", "error", "ok", "unset"])
@pytest.mark.parametrize("shape", ["mid-minute", "one-minute", "from-before", "all"])
async def test_at_scale_totals_of_whole_and_partial_minutes_are_those_of_the_rows(
        built: tuple[str, list[Built]], chdb_endpoint: str, shape: str, status: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Without filters but a status, the estimated totals read the range's whole minutes
    # from the rollup's per-minute totals (migration 015) and its partial minutes from the
    # rows: the same figures as from every row (each of the fixture's traces is in two
    # rollup rows). Those are exact but for `ok` and `unset`, which each row passes on its
    # own (a trace whose error is in its other row counts).
    start, end = minute_bounds(built[1], shape)
    params = {"start": str(start / NS), "end": str(end / NS), **({"status": status} if status else {})}
    exact, by_minute = await totals_of_both(chdb_endpoint, built[0], params)
    monkeypatch.setattr(SearchQuery, "minute_totals", lambda self: "")
    _, by_rows = await totals_of_both(chdb_endpoint, built[0], params)
    assert by_minute["traces"] > 0 or status
    assert by_minute == {**by_rows, "cost_usd": pytest.approx(by_rows["cost_usd"])}
    if status in ("", "error"):
        assert_same_totals(exact, by_minute)


@pytest.mark.parametrize("status", ["", "error", "ok", "unset"])
def test_at_scale_totals_without_filters_read_the_per_minute_projection(
        built: tuple[str, list[Built]], chdb_endpoint: str, status: str) -> None:
    # A projection is read only when its expressions are the query's own: the totals must
    # not drift from migration 015's. (The edges read the projection by start where it
    # reads fewer granules than the table: not in a store this small.)
    database = built[0]
    query = parse_search([("start", str(T0 / 1e9 - 3600)), ("status", status)],
                         SearchLimits(lookback_ns=3600 * NS, window_ns=6 * 3600 * NS, max_limit=100))
    sql = Template(load_sql("trace_search_totals_by_minute", database, "otel_traces")).substitute(
        aggregates=query.minute_totals())
    client = open_client(chdb_endpoint)
    plan = [row[0] for row in client.query(f"EXPLAIN projections = 1 {sql}",
                                           parameters={**query.parameters(), "tenant": ""}).result_rows]
    reads = [line.split("ReadFromMergeTree ")[1] for line in plan if "ReadFromMergeTree" in line]
    assert len(reads) == 2 and reads[0] == "(totals_by_minute)", plan


@pytest.mark.parametrize("params", [
    [("min_tokens", "10")], [("max_cost_usd", "1")], [("min_duration_ms", "1")], [("model", "gpt-4o")],
    [("attr.note", "contains:refund")], [("session", "s-1")], [("score", "helpful>0")], [("status", "error"), ("user", "ana")]])
def test_with_another_filter_the_totals_are_not_by_minute(params: list[tuple[str, str]]) -> None:
    limits = SearchLimits(lookback_ns=3600 * NS, window_ns=6 * 3600 * NS, max_limit=100)
    assert parse_search([("start", "0"), *params], limits).minute_totals() == ""
    assert parse_search([("start", "0"), ("sort", "cost"), ("order", "asc")], limits).minute_totals()


async def test_at_scale_totals_leave_out_a_deleted_trace(chdb_endpoint: str) -> None:
    # The per-minute totals cannot subtract: a trace's deletion has the engine rebuild them
    # (migration 012's projection settings).
    database = f"ts_{uuid.uuid4().hex[:12]}"
    rng = random.Random(20261204)
    traces = [_trace(rng, n) for n in range(6)]
    await seed(chdb_endpoint, database, [build_batch([s for t in traces for s in t.specs])])
    gone = next(t for t in traces if t.tokens)
    store = at_scale_store(chdb_endpoint, database)
    try:
        assert await store.delete_trace(gone.trace_id, tenant="") == len(gone.specs)
    finally:
        await store.close()
    exact, estimated = await totals_of_both(chdb_endpoint, database, DAY)
    assert exact["traces"] == 5
    assert_same_totals(exact, estimated)


# ------------------------------------------------------------------------------ bounds


@pytest.mark.parametrize(("params", "keep"), [
    ({"min_cost_usd": 0.0001}, lambda t: float(t.cost or 0) >= 0.0001),
    ({"max_cost_usd": 0.00003}, lambda t: float(t.cost or 0) <= 0.00003),
    ({"min_cost_usd": 0.000002, "max_cost_usd": 0.00003}, lambda t: 0.000002 <= float(t.cost or 0) <= 0.00003),
    ({"min_tokens": 100, "max_tokens": 155}, lambda t: 100 <= t.tokens <= 155),
    ({"max_tokens": 0}, lambda t: t.tokens == 0),
    ({"min_duration_ms": 120, "max_duration_ms": 900}, lambda t: 120e6 <= t.duration <= 900e6),
    ({"max_duration_ms": 120}, lambda t: t.duration <= 120e6),
])
async def test_lower_and_upper_bounds(api: httpx.AsyncClient, built: tuple[str, list[Built]], params: dict[str, Any],
                                      keep: Callable[[Built], bool]) -> None:
    want = [t for t in built[1] if keep(t)]
    assert 0 < len(want) < TRACES, params
    assert ids(await search(api, {**params, "limit": 100})) == expected_order(want, "time", "desc")


@pytest.mark.parametrize(("params", "parameter"), [
    ({"min_cost_usd": 0.5, "max_cost_usd": 0.1}, "max_cost_usd"),
    ({"min_tokens": 5, "max_tokens": 4}, "max_tokens"),
    ({"min_duration_ms": 2, "max_duration_ms": 1}, "max_duration_ms"),
    ({"min_cost_usd": "-0.1"}, "min_cost_usd"),
    ({"max_cost_usd": "1e999"}, "max_cost_usd"),
    ({"max_tokens": "12.5"}, "max_tokens"),
    ({"max_tokens": "abc"}, "max_tokens"),
    ({"min_duration_ms": "0x10"}, "min_duration_ms"),
    ({"order": "up"}, "order"),
    ({"sort": "price"}, "sort"),
    ({"span_kind": "robot"}, "span_kind"),
    ({"span_kind": "llm,robot"}, "span_kind"),
    ({"attr.": "x"}, "attr."),
    ({"attr.http.status_code": "gt:many"}, "attr.http.status_code"),
    ({"attr.ratio": "lte:nan"}, "attr.ratio"),
    ({"attr.note": "contains:"}, "attr.note"),
    ({"modle": "gpt-4o"}, "modle"),
    ({"min_cost": 1}, "min_cost"),
])
async def test_malformed_or_unknown_search_parameters_are_400(
        api: httpx.AsyncClient, params: dict[str, Any], parameter: str) -> None:
    resp = await api.get("/api/v1/traces", params={**DAY, **params})
    assert_bad_param(resp, parameter)
    assert resp.json()["error"]["message"].startswith(f"{parameter}:")


async def test_a_single_valued_parameter_given_twice_is_400_and_a_repeatable_one_is_not(
        api: httpx.AsyncClient, built: tuple[str, list[Built]]) -> None:
    resp = await api.get("/api/v1/traces", params=[*DAY.items(), ("sort", "cost"), ("sort", "time")])
    assert_bad_param(resp, "sort")
    assert "more than once" in resp.json()["error"]["message"]
    # two conditions on one attribute: a range
    both = await search(api, [("attr.ratio", "gt:0"), ("attr.ratio", "lt:1"), ("limit", 100)])
    want = [t for t in built[1] if t.specs[0].attrs["ratio"] in (0.25, 0.3)]
    assert 0 < len(want) < TRACES and ids(both) == expected_order(want, "time", "desc")


# ------------------------------------------------------------------------------ attributes and span kinds


def stored(attrs: dict[str, Any]) -> dict[str, str]:
    """Attribute values as the exporter stores them (strings, the Collector's encoding)."""
    return attrs_to_map(key_values(attrs))


def _holds(values: dict[str, str], f: AttributeFilter) -> bool:
    if f.key not in values:
        return False
    value = values[f.key]
    if f.op in ("gt", "gte", "lt", "lte"):
        try:
            number = float(value)
        except ValueError:
            return False
        return {"gt": number > f.number, "gte": number >= f.number, "lt": number < f.number,
                "lte": number <= f.number}[f.op]
    return {"eq": value == f.value, "ne": value != f.value, "contains": f.value.lower() in value.lower(),
            "exists": True}[f.op]


def span_passes(span: SpanSpec, filters: list[AttributeFilter], kinds: tuple[str, ...] = ()) -> bool:
    resource = {"service.name": span.service, "deployment.environment": "test"}
    genai_kind = span.genai.get("GenAISpanKind", "")
    if kinds and genai_kind not in kinds and OTEL_KIND.get(span.kind, "") not in kinds:
        return False
    return all(_holds(stored(span.attrs), f) or _holds(resource, f) for f in filters)


def matching(traces: list[Built], filters: list[AttributeFilter], kinds: tuple[str, ...] = ()) -> list[Built]:
    return [t for t in traces if any(span_passes(s, filters, kinds) for s in t.specs)]


@pytest.mark.parametrize(("params", "filters"), [
    ({"attr.customer.tier": "gold"}, [AttributeFilter("customer.tier", "eq", "gold")]),
    ({"attr.customer.tier": "eq:Gold"}, [AttributeFilter("customer.tier", "eq", "Gold")]),
    ({"attr.customer.tier": "ne:gold"}, [AttributeFilter("customer.tier", "ne", "gold")]),
    ({"attr.note": "contains:refund"}, [AttributeFilter("note", "contains", "refund")]),
    ({"attr.note": "contains:ReFuNd d"}, [AttributeFilter("note", "contains", "ReFuNd d")]),
    # numbers compare as numbers: "1000" > "500" although "1000" < "500" as text
    ({"attr.http.status_code": "gt:500"}, [AttributeFilter("http.status_code", "gt", number=500)]),
    ({"attr.http.status_code": "gte:500"}, [AttributeFilter("http.status_code", "gte", number=500)]),
    ({"attr.http.status_code": "lt:404"}, [AttributeFilter("http.status_code", "lt", number=404)]),
    ({"attr.ratio": "lte:0.25"}, [AttributeFilter("ratio", "lte", number=0.25)]),
    ({"attr.ratio": "lt:-1"}, [AttributeFilter("ratio", "lt", number=-1)]),
    ({"attr.ratio": "gt:1e1"}, [AttributeFilter("ratio", "gt", number=10)]),
    ({"attr.docs": "exists"}, [AttributeFilter("docs", "exists")]),
    ({"attr.note": "gt:1"}, [AttributeFilter("note", "gt", number=1)]),  # text is never a number
    # resource attributes
    ({"attr.service.name": "batch"}, [AttributeFilter("service.name", "eq", "batch")]),
    ({"attr.deployment.environment": "exists"}, [AttributeFilter("deployment.environment", "exists")]),
    # every filter on the same span: the LLM span's tier, or the root's
    ({"attr.customer.tier": "gold", "attr.note": "contains:refund"},
     [AttributeFilter("customer.tier", "eq", "gold"), AttributeFilter("note", "contains", "refund")]),
    ({"attr.customer.tier": "gold", "attr.http.status_code": "gte:500"},
     [AttributeFilter("customer.tier", "eq", "gold"), AttributeFilter("http.status_code", "gte", number=500)]),
    # the older form still works, with the newer one
    ({"attr": "customer.tier=silver", "attr.ratio": "gt:0"},
     [AttributeFilter("customer.tier", "eq", "silver"), AttributeFilter("ratio", "gt", number=0)]),
])
async def test_attribute_operators(api: httpx.AsyncClient, built: tuple[str, list[Built]], params: dict[str, Any],
                                   filters: list[AttributeFilter]) -> None:
    want = matching(built[1], filters)
    if filters[0].key != "note" or filters[0].op != "gt":
        assert 0 < len(want) < TRACES or params.get("attr.deployment.environment"), params
    assert ids(await search(api, {**params, "limit": 100})) == expected_order(want, "time", "desc")


async def test_attribute_values_with_operator_words_are_compared_whole(api: httpx.AsyncClient) -> None:
    # a value starting with an unknown word and a colon is a plain value; `eq:` escapes a known one
    for value in ("nope:gold", "eq:gt:5", "eq:exists"):
        assert ids(await search(api, {"attr.customer.tier": value})) == []


@pytest.mark.parametrize(("span_kind", "kinds"), [
    ("llm", ("llm",)), ("chat", ("llm",)), ("LLM", ("llm",)), ("tool", ("tool",)), ("retriever", ("retriever",)),
    ("embedding", ("embedding",)), ("agent", ("agent",)), ("server", ("server",)), ("client", ("client",)),
    ("retriever,embedding", ("retriever", "embedding")), ("retriever, server", ("retriever", "server")),
])
async def test_span_kind(api: httpx.AsyncClient, built: tuple[str, list[Built]], span_kind: str,
                         kinds: tuple[str, ...]) -> None:
    want = matching(built[1], [], kinds)
    assert want and (len(want) < TRACES or kinds in (("llm",), ("tool",), ("agent",), ("client",)))
    assert ids(await search(api, {"span_kind": span_kind, "limit": 100})) == expected_order(want, "time", "desc")


async def test_span_kind_and_attributes_hold_on_the_same_span(
        api: httpx.AsyncClient, built: tuple[str, list[Built]]) -> None:
    # the root has a tier and is an agent; the LLM span sometimes has one
    llm_gold = matching(built[1], [AttributeFilter("customer.tier", "eq", "gold")], ("llm",))
    agent_gold = matching(built[1], [AttributeFilter("customer.tier", "eq", "gold")], ("agent",))
    assert llm_gold != agent_gold and llm_gold and agent_gold
    assert ids(await search(api, {"span_kind": "llm", "attr.customer.tier": "gold", "limit": 100})) == \
        expected_order(llm_gold, "time", "desc")
    assert ids(await search(api, {"span_kind": "agent", "attr.customer.tier": "gold", "limit": 100})) == \
        expected_order(agent_gold, "time", "desc")


async def test_session_and_user_are_the_trace_s(api: httpx.AsyncClient, built: tuple[str, list[Built]]) -> None:
    # Only the LLM span carries them: the trace is found by its session and user all the same.
    for params, keep in (({"session": "s-1"}, lambda t: t.trace_value("GenAISessionId") == "s-1"),
                         ({"user": "bo"}, lambda t: t.trace_value("GenAIUserId") == "bo"),
                         ({"session": "s-2", "user": "ana"},
                          lambda t: (t.trace_value("GenAISessionId"), t.trace_value("GenAIUserId")) == ("s-2", "ana"))):
        want = [t for t in built[1] if keep(t)]
        assert 0 < len(want) < TRACES
        assert ids(await search(api, {**params, "limit": 100})) == expected_order(want, "time", "desc")
    sessions = (await api.get("/api/v1/sessions", params=DAY)).json()["sessions"]
    s1 = next(s for s in sessions if s["session_id"] == "s-1")
    assert s1["turns"] == (await search(api, {"session": "s-1"}))["totals"]["traces"]


def test_parse_search_returns_the_typed_search() -> None:
    query = parse_search([("start", "1000"), ("end", "2000"), ("sort", "cost"), ("order", "asc"),
                          ("attr.http.status_code", "gte:500"), ("attr.note", "contains:x"), ("attr", "a=b"),
                          ("span_kind", "chat,server"), ("max_tokens", "10"), ("limit", "5"), ("format", "csv")])
    assert isinstance(query, SearchQuery)
    assert (query.start_ns, query.end_ns, query.sort, query.order, query.limit) == (1000 * NS, 2000 * NS, "cost", "asc", 5)
    assert list(query.attributes) == [AttributeFilter("a", "eq", "b"), AttributeFilter("http.status_code", "gte", number=500),
                                      AttributeFilter("note", "contains", "x")]
    assert (query.genai_kinds, query.otel_kinds, query.max_tokens) == (("llm",), ("Server",), 10)


async def test_attribute_filters_use_the_skip_indexes(chdb_endpoint: str, built: tuple[str, list[Built]]) -> None:
    """The store's SQL for attribute filters lets the bloom filters on both maps' keys (value
    tests) and values (equality) skip granules; with a value no span has, every granule."""
    store = make_store(chdb_endpoint, built[0])
    query = parse_search([*DAY.items(), ("attr.customer.tier", "platinum"), ("attr.http.status_code", "gt:5")])
    sql = query.span_sql(store._sql["trace_search_spans"])
    await store.close()
    client = open_client(chdb_endpoint)
    try:
        plan = [r[0].strip() for r in client.query("EXPLAIN indexes = 1 " + sql,
                                                   parameters={**query.parameters(), "tenant": ""}).result_rows]
    finally:
        client.close()
    for index in ("idx_span_attr_key", "idx_span_attr_value", "idx_res_attr_key", "idx_res_attr_value"):
        assert f"Name: {index}" in plan, plan
    skipped = plan[plan.index("Name: <Combined skip indexes>"):]
    assert next(line for line in skipped if line.startswith("Granules:")).startswith("Granules: 0/"), plan


# ------------------------------------------------------------------------------ every route is strict


def _concrete(path: str) -> str:
    return (path.replace("{trace_id}", "a1" * 16).replace("{name}", "p").replace("{name:path}", "p")
            .replace("{service:path}", "svc").replace("{experiment_id}", "1").replace("{run_id}", "r1"))


async def test_every_route_refuses_an_unknown_parameter_naming_it(api: httpx.AsyncClient) -> None:
    doc = (await api.get("/openapi.json")).json()
    paths = [_concrete(p) for p, ops in doc["paths"].items() if "get" in ops]
    assert len(paths) >= 15 and "/api/traces/{trace_id}" in doc["paths"]
    for path in paths:
        resp = await api.get(path, params={"bogus_param": "1"})
        assert resp.status_code == 400, (path, resp.status_code, resp.text[:200])
        body = resp.json()
        if path.startswith("/api/v1/") or not path.startswith("/api/"):
            assert body["error"]["parameter"] == "bogus_param", (path, body)
            assert body["error"]["message"].startswith("bogus_param: unknown parameter"), body
        elif path.startswith("/api/v3/"):  # Jaeger's API v3: its gateway's error
            assert body["error"]["httpCode"] == 400, (path, body)
            assert body["error"]["message"].startswith("malformed parameter bogus_param: unknown parameter"), body
        else:  # Jaeger's routes answer in Jaeger's envelope
            assert body["data"] is None and body["errors"][0]["code"] == 400, (path, body)
            assert body["errors"][0]["msg"].startswith("bogus_param: unknown parameter"), body


@pytest.mark.parametrize(("path", "params", "parameter"), [
    ("/api/v1/metrics/genai", [("step", "60s"), ("step", "5m")], "step"),
    ("/api/v1/sessions", [("user", "a"), ("user", "b")], "user"),
    ("/api/v1/metrics/genai", [("groupby", "model")], "groupby"),
    ("/api/v1/sessions", [("session", "s-1")], "session"),
    ("/api/v1/prompts", [("name", "x")], "name"),
    ("/healthz", [("verbose", "1")], "verbose"),
])
async def test_other_routes_name_the_unknown_or_repeated_parameter(
        api: httpx.AsyncClient, path: str, params: list[tuple[str, str]], parameter: str) -> None:
    assert_bad_param(await api.get(path, params=params), parameter)


async def test_repeatable_parameters_stay_repeatable(api: httpx.AsyncClient) -> None:
    resp = await api.get("/api/v1/metrics/genai", params=[*DAY.items(), ("group_by", "model"), ("group_by", "service")])
    assert resp.status_code == 200, resp.text
    assert resp.json()["group_by"] == ["model", "service"]
    resp = await api.get("/api/traces", params=[("traceID", "a1" * 16), ("traceID", "b2" * 16)])
    assert resp.status_code == 200, resp.text


async def test_grafana_s_and_the_jaeger_ui_s_parameters_are_taken(
        api: httpx.AsyncClient, built: tuple[str, list[Built]]) -> None:
    trace = built[1][0]
    start_us, end_us = parse_time_ns(DAY["start"]) // 1000, parse_time_ns(DAY["end"]) // 1000
    # What Grafana's Jaeger datasource sends for a search (lookback=custom, its time range,
    # the tags as JSON) and for a trace with "time range for trace ID queries" on.
    search = await api.get("/api/traces", params={
        "service": trace.specs[0].service, "operation": "handle", "tags": '{"customer.tier":"gold"}',
        "minDuration": "1ms", "maxDuration": "10s", "limit": "20", "start": str(start_us), "end": str(end_us),
        "lookback": "custom"})
    assert search.status_code == 200, search.text
    one = await api.get(f"/api/traces/{trace.trace_id}", params={"start": str(start_us), "end": str(end_us)})
    assert one.status_code == 200 and one.json()["data"][0]["traceID"] == trace.trace_id
    bad = await api.get(f"/api/traces/{trace.trace_id}", params={"start": "yesterday"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["msg"].startswith("start:")
    # the Jaeger UI: empty duration fields, spanKind on operations
    ui = await api.get("/api/traces", params={"service": "batch", "lookback": "1h", "minDuration": "",
                                              "maxDuration": "", "limit": "20"})
    assert ui.status_code == 200, ui.text
    ops = await api.get("/api/operations", params={"service": "batch", "spanKind": "server"})
    assert ops.status_code == 200, ops.text


async def test_the_explorer_page_takes_its_own_url_state(api: httpx.AsyncClient) -> None:
    resp = await api.get("/", params={"since": "24h", "sort": "cost", "order": "asc", "attr.note": "contains:x",
                                      "view": "traces", "anything": "1"})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")


# ------------------------------------------------------------------------------ metrics by user and session


def _usage_by(traces: list[Built], column: str) -> dict[str, dict[str, Any]]:
    """Per trace user (or session): the model calls' usage, as the rollup's definitions count it."""
    out: dict[str, dict[str, Any]] = {}
    for t in traces:
        group = out.setdefault(t.trace_value(column), {"requests": 0, "errors": 0, "input_tokens": 0,
                                                       "output_tokens": 0, "total_tokens": 0,
                                                       "cost": Decimal(0), "unpriced": 0, "duration": 0})
        for s in t.specs:
            if s.genai.get("GenAISpanKind") not in ("llm", "embedding"):
                continue
            group["requests"] += 1
            group["errors"] += s.code == Status.STATUS_CODE_ERROR
            group["input_tokens"] += s.genai.get("GenAIInputTokens") or 0
            group["output_tokens"] += s.genai.get("GenAIOutputTokens") or 0
            group["total_tokens"] += s.genai.get("GenAITotalTokens") or 0
            group["cost"] += s.genai.get("GenAITotalCostUSD") or 0
            group["unpriced"] += s.genai.get("GenAITotalCostUSD") is None
            group["duration"] += s.duration_ns
    return out


@pytest.mark.parametrize(("dimension", "column"), [("user", "GenAIUserId"), ("session", "GenAISessionId")])
async def test_metrics_group_by_the_trace_s_user_and_session(
        api: httpx.AsyncClient, built: tuple[str, list[Built]], dimension: str, column: str) -> None:
    resp = await api.get("/api/v1/metrics/genai", params={**DAY, "step": "1h", "group_by": dimension})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    want = _usage_by(built[1], column)
    got = {s["group"][dimension]: s["totals"] for s in body["series"]}
    assert set(got) == set(want) and len(want) == 3  # "" (not recorded) and two values
    for value, usage in want.items():
        t = got[value]
        assert (t["requests"], t["errors"], t["input_tokens"], t["output_tokens"], t["total_tokens"],
                t["unpriced_requests"]) == (usage["requests"], usage["errors"], usage["input_tokens"],
                                            usage["output_tokens"], usage["total_tokens"], usage["unpriced"]), value
        assert t["cost_usd"] == pytest.approx(float(usage["cost"]), rel=1e-12, abs=1e-15)
        assert t["latency_ms"]["avg"] == pytest.approx(usage["duration"] / usage["requests"] / 1e6)
        series = next(s for s in body["series"] if s["group"][dimension] == value)
        assert sum(p["requests"] for p in series["points"]) == usage["requests"]
    # the same grand total as the usage rollup's answer without the dimension
    rollup = (await api.get("/api/v1/metrics/genai", params={**DAY, "step": "1h"})).json()["totals"]
    totals = body["totals"]
    for name in ("spans", "requests", "errors", "input_tokens", "output_tokens", "total_tokens", "unpriced_requests"):
        assert totals[name] == rollup[name], name
    assert totals["cost_usd"] == pytest.approx(rollup["cost_usd"], rel=1e-12)


@pytest.mark.parametrize(("dimension", "other"), [("user", "GenAISessionId"), ("session", "GenAIUserId")])
def test_usage_from_spans_keeps_a_row_per_value_grouped_by_not_per_value_of_the_other(
        built: tuple[str, list[Built]], chdb_endpoint: str, dimension: str, other: str) -> None:
    # A day's sessions are as many as its traces: a usage row (and quantile state) per session
    # when grouping by user was 2 GiB over 10M spans. Grouped by one, the other is not a key.
    start_s = parse_time_ns(DAY["start"]) // NS
    query = MetricsQuery(start_s=start_s, end_s=start_s + 86400, step_s=3600, group_by=(dimension,))
    rows_sql = load_sql("genai_usage_spans", built[0], "otel_traces")
    client = open_client(chdb_endpoint)
    try:
        result = client.query(f"SELECT UserId, SessionId FROM ({rows_sql})",
                              parameters={**query.parameters(), "tenant": ""})
    finally:
        client.close()
    column = 0 if dimension == "user" else 1
    assert {row[1 - column] for row in result.result_rows} == {""}
    values = {row[column] for row in result.result_rows}
    others = {t.trace_value(other) for t in built[1]} - {""}
    assert len(values) == 3 and len(others) >= 2  # "" and two values; the other key had two too


async def test_metrics_by_user_with_another_dimension_and_a_filter(
        api: httpx.AsyncClient, built: tuple[str, list[Built]]) -> None:
    resp = await api.get("/api/v1/metrics/genai", params={**DAY, "step": "1h", "group_by": "user,model",
                                                          "model": "gpt-4o"})
    assert resp.status_code == 200, resp.text
    got = {(s["group"]["user"], s["group"]["model"]): s["totals"]["requests"] for s in resp.json()["series"]}
    want: dict[tuple[str, str], int] = {}
    for t in built[1]:
        for s in t.specs:
            if s.genai.get("GenAIRequestModel") == "gpt-4o":
                key = (t.trace_value("GenAIUserId"), "gpt-4o")
                want[key] = want.get(key, 0) + 1
    assert got == want and len(want) > 1
