"""`GET /api/v1/traces/export`: a search's traces as JSONL and Parquet, over real data (the
captured OTLP payloads through the GenAI processors, the hand-built traces with events, links
and costs, and a second tenant's traces) written by the real exporter into chDB."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from genai_helpers import enrich_all
from test_query_api import (
    FIX_END,
    FIX_START,
    NS,
    T0,
    TRACE_A,
    FakeHost,
    SpanSpec,
    build_batch,
    fixture_batches,
    hand_built_specs,
    make_store,
    seed,
    split_per_span,
)
from tracehouse.core.auth import KeyKind, Principal
from tracehouse.core.errors import UnauthenticatedError
from tracehouse.query import export
from tracehouse.net.asgi_server import AsgiServer
from tracehouse.query.access import Access
from tracehouse.query.app import create_app
from tracehouse.query.config import QueryApiConfig
from tracehouse.query.store import StoreError
from tracehouse.sinks.clickhouse.client import open_client
from tracehouse.sinks.clickhouse.columns import batch_to_columns

FIXTURES = {"start": FIX_START, "end": FIX_END}
DAY = {"start": "2026-01-10T00:00:00Z", "end": "2026-01-11T00:00:00Z"}  # the hand-built traces
SHOP, SHOP_ONLY = "shop", "e5" * 16
KEYS = {"default-key": "", "shop-key": SHOP}


class Keys:
    """Read keys of two tenants: the default one and `shop`."""

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        key = headers.get("authorization", "").removeprefix("Bearer ")
        if key not in KEYS:
            raise UnauthenticatedError("unknown key")
        return Principal(KEYS[key], KeyKind.READ, key)

    def admit(self, tenant: str, spans: int, nbytes: int) -> None:
        pass


def shop_batch() -> Any:
    """Tenant shop's: trace A under the same ids, marked, and a trace only shop has."""
    specs = [dataclasses.replace(s, attrs={**s.attrs, "owner": "shop"}) for s in hand_built_specs(time.time_ns())[:4]]
    specs.append(SpanSpec("shop-only", SHOP_ONLY, "e000000000000001", "", "shop job", T0 + 30 * NS, 1000))
    batch = build_batch(specs)
    batch.tenant = SHOP
    return batch


@pytest.fixture(scope="module")
def seeded(chdb_endpoint: str) -> str:
    """The fixture payloads through the GenAI processors, the hand-built traces, shop's traces."""
    name = f"tx_{uuid.uuid4().hex[:12]}"

    async def write() -> None:
        batches = await enrich_all(fixture_batches())
        await seed(chdb_endpoint, name, [*batches, build_batch(hand_built_specs(time.time_ns())), shop_batch()])

    asyncio.run(write())
    return name


def api_client(app: Any, key: str = "default-key") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://query", timeout=60,
                             headers={"authorization": f"Bearer {key}"})


@pytest.fixture
async def api(chdb_endpoint: str, seeded: str) -> AsyncIterator[httpx.AsyncClient]:
    store = make_store(chdb_endpoint, seeded)
    async with api_client(create_app(store, FakeHost(), access=Access(Keys()))) as client:  # type: ignore[arg-type]
        yield client
    await store.close()


@pytest.fixture
def small_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages of 2 traces and reads of 3 spans: every trace and most pages span several reads."""
    monkeypatch.setattr(export, "TRACES_PER_PAGE", 2)
    monkeypatch.setattr(export, "SPANS_PER_READ", 3)


async def exported(api: httpx.AsyncClient, fmt: str = "jsonl", **params: Any) -> httpx.Response:
    resp = await api.get("/api/v1/traces/export", params={"format": fmt, **params})
    assert resp.status_code == 200, resp.text
    return resp


def jsonl(resp: httpx.Response) -> list[dict[str, Any]]:
    assert resp.headers["content-type"] == "application/jsonl"
    assert resp.text == "" or resp.text.endswith("\n")
    return [json.loads(line) for line in resp.text.splitlines()]


async def searched(api: httpx.AsyncClient, **params: Any) -> list[str]:
    resp = await api.get("/api/v1/traces", params={"limit": 1000, **params})
    assert resp.status_code == 200, resp.text
    return [t["trace_id"] for t in resp.json()["traces"]]


def by_trace(spans: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Spans grouped by trace, in the order the traces come (each trace's spans contiguous)."""
    out: dict[str, list[dict[str, Any]]] = {}
    last = None
    for span in spans:
        trace_id = span["trace_id"]
        assert trace_id == last or trace_id not in out, "a trace's spans come together"
        out.setdefault(trace_id, []).append(span)
        last = trace_id
    return out


# ------------------------------------------------------------------------------ JSONL


@pytest.mark.parametrize("window", [FIXTURES, DAY], ids=["captures", "hand-built"])
async def test_jsonl_has_every_span_of_every_found_trace_as_the_trace_page_shows_it(
        api: httpx.AsyncClient, window: dict[str, str]) -> None:
    resp = await exported(api, **window)
    stamp = {FIXTURES["start"]: "20261122T160000Z-20261122T170000Z", DAY["start"]: "20260110T000000Z-20260111T000000Z"}
    assert resp.headers["content-disposition"] == f'attachment; filename="traces-{stamp[window["start"]]}.jsonl"'
    traces = by_trace(jsonl(resp))
    assert list(traces) == await searched(api, **window), "the search's traces, in its order"
    assert len(traces) >= 3
    for trace_id, spans in traces.items():
        page = (await api.get(f"/api/v1/traces/{trace_id}")).json()
        assert spans == page["spans"], "line by line the trace page's spans (same shape, same order)"
    if window is DAY:  # the hand-built trace: events, links, GenAI fields and messages made it
        a = traces[TRACE_A]
        assert a[1]["events"][0]["name"] == "gen_ai.content.prompt" and a[1]["links"][0]["trace_state"] == "linked=1"
        assert a[1]["genai"]["total_cost_usd"] == 0.00045 and a[1]["genai"]["prompt_name"] == "checkout-helper"


@pytest.mark.parametrize("params", [
    {"status": "error"},
    {"service": "llm-gateway"},
    {"model": "gpt-4o-mini", "sort": "cost"},
    {"attr": ["gen_ai.request.model=gpt-4o"]},
    {"sort": "duration", "limit": 2},
    {"min_tokens": 50, "sort": "tokens"},
], ids=lambda p: "&".join(f"{k}={v}" for k, v in p.items()))
async def test_the_export_takes_the_search_s_parameters(api: httpx.AsyncClient, small_pieces: None,
                                                        params: dict[str, Any]) -> None:
    found = 0
    for window in (FIXTURES, DAY):
        traces = by_trace(jsonl(await exported(api, **window, **params)))
        assert list(traces) == await searched(api, **window, **params)
        found += len(traces)
    assert found, "the filter finds something"


async def test_the_export_continues_a_search_page_and_has_no_limit_but_the_search_s(
        api: httpx.AsyncClient, small_pieces: None) -> None:
    every = await searched(api, **FIXTURES)
    first = (await api.get("/api/v1/traces", params={**FIXTURES, "limit": 3})).json()
    rest = by_trace(jsonl(await exported(api, cursor=first["next_cursor"])))
    assert list(rest) == every[3:], "from the cursor on, the range the cursor carries"
    assert list(by_trace(jsonl(await exported(api, **FIXTURES, limit=5)))) == every[:5]
    # More traces than a search page may hold (max_limit) and more than one export page.
    assert len(every) > 2 * export.TRACES_PER_PAGE


async def test_small_pages_and_reads_export_the_same_bytes(api: httpx.AsyncClient,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    whole = (await exported(api, **FIXTURES)).content
    monkeypatch.setattr(export, "TRACES_PER_PAGE", 2)
    monkeypatch.setattr(export, "SPANS_PER_READ", 1)
    assert (await exported(api, **FIXTURES)).content == whole


async def test_an_empty_search_exports_an_empty_file(api: httpx.AsyncClient) -> None:
    empty = {"start": "2020-01-01T00:00:00Z", "end": "2020-01-02T00:00:00Z"}
    assert (await exported(api, **empty)).content == b""
    table = pq.read_table(io.BytesIO((await exported(api, "parquet", **empty)).content))
    assert table.num_rows == 0 and table.schema == export.SPAN_SCHEMA


@pytest.mark.parametrize("per_read", [1, 2, 5000])
async def test_a_span_stored_twice_is_exported_once(chdb_endpoint: str, database: str, per_read: int,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Copies written past the exporter's gate, merges stopped: whichever read a copy falls in."""
    batch = build_batch(hand_built_specs(time.time_ns()))
    await seed(chdb_endpoint, database, [batch])
    client = open_client(chdb_endpoint)
    store = make_store(chdb_endpoint, database)
    monkeypatch.setattr(export, "SPANS_PER_READ", per_read)
    try:
        client.command(f"SYSTEM STOP MERGES {database}.otel_traces")
        for one in split_per_span(batch):
            names, data = batch_to_columns(one)
            client.insert(f"{database}.otel_traces", data, column_names=names, column_oriented=True)
        assert client.query(f"SELECT count() FROM {database}.otel_traces").result_rows[0][0] == 2 * batch.span_count
        async with api_client(create_app(store, FakeHost())) as api:
            traces = by_trace(jsonl(await exported(api, **DAY)))
            assert len(traces) == 3
            for trace_id, spans in traces.items():
                assert spans == (await api.get(f"/api/v1/traces/{trace_id}")).json()["spans"]
    finally:
        await store.close()
        client.close()
    assert sum(len(spans) for spans in traces.values()) == 6


# ------------------------------------------------------------------------------ Parquet


def as_parquet_row(span: dict[str, Any]) -> dict[str, Any]:
    """A JSONL span as pyarrow reads its Parquet row back: maps as (key, value) pairs, the
    nanosecond strings as integers (`start_time` cast to int64 nanoseconds)."""
    def maps(value: Any, key: str = "") -> Any:
        if isinstance(value, dict) and key.endswith("attributes"):
            return list(value.items())
        if isinstance(value, dict):
            return {k: maps(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [maps(v) for v in value]
        return value

    row = maps(span)
    row.update(start_time=int(span["start_time_unix_nano"]), start_time_unix_nano=int(span["start_time_unix_nano"]),
               end_time_unix_nano=int(span["end_time_unix_nano"]))
    for event in row["events"]:
        event["time_unix_nano"] = int(event["time_unix_nano"])
    return row


async def test_parquet_has_the_jsonl_spans_in_typed_columns(api: httpx.AsyncClient, small_pieces: None,
                                                            tmp_path: Path, chdb_endpoint: str) -> None:
    lines = jsonl(await exported(api, **DAY)) + jsonl(await exported(api, **FIXTURES))
    files = [await exported(api, "parquet", **DAY), await exported(api, "parquet", **FIXTURES)]
    assert files[0].headers["content-type"] == "application/vnd.apache.parquet"
    assert files[0].headers["content-disposition"] == \
        'attachment; filename="traces-20260110T000000Z-20260111T000000Z.parquet"'
    table = pa.concat_tables([pq.read_table(io.BytesIO(f.content)) for f in files])
    assert pq.ParquetFile(io.BytesIO(files[1].content)).num_row_groups > 1, "a row group per read"
    types = {f.name: f.type for f in table.schema}
    assert types["start_time"] == pa.timestamp("ns", tz="UTC")
    assert types["duration_ns"] == types["start_time_unix_nano"] == pa.int64()
    assert types["attributes"] == pa.map_(pa.string(), pa.field("value", pa.string(), nullable=False))
    genai = {f.name: f for f in types["genai"]}
    assert genai["input_tokens"].type == pa.int64() and genai["input_tokens"].nullable
    assert genai["total_cost_usd"].type == pa.float64() and genai["tokens_estimated"].type == pa.bool_()
    assert types["events"].value_type.field("time_unix_nano").type == pa.int64()
    start = table.schema.get_field_index("start_time")
    rows = table.set_column(start, "start_time", table["start_time"].cast(pa.int64())).to_pylist()
    assert rows == [as_parquet_row(span) for span in lines]

    # ClickHouse reads the file with the same types the spans table has.
    path = tmp_path / "spans.parquet"
    path.write_bytes(files[0].content)
    client = open_client(chdb_endpoint)
    try:
        described = dict(r[:2] for r in client.query(f"DESCRIBE file('{path}', Parquet)").result_rows)
        count, cost, estimated = client.query(
            f"SELECT count(), sum(genai.total_cost_usd), countIf(genai.tokens_estimated) FROM file('{path}', Parquet)"
        ).result_rows[0]
    finally:
        client.close()
    assert described["start_time"] == "DateTime64(9, 'UTC')" and described["attributes"] == "Map(String, String)"
    assert count == len(jsonl(await exported(api, **DAY)))
    assert cost == pytest.approx(sum(s["genai"]["total_cost_usd"] or 0 for s in jsonl(await exported(api, **DAY))))
    assert estimated == 1


# ------------------------------------------------------------------------------ streaming


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
async def test_an_export_is_streamed_a_read_at_a_time(chdb_endpoint: str, seeded: str, small_pieces: None,
                                                       fmt: str) -> None:
    """Each read of spans goes out before the next is made: memory holds one read, whatever
    the number of traces (the ASGI messages are watched directly; httpx's test transport
    would collect the body first)."""
    store = make_store(chdb_endpoint, seeded)
    reads: list[int] = []
    read_spans = store.traces_spans

    async def counted(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        rows = await read_spans(*args, **kwargs)
        reads.append(len(rows))
        return rows

    store.traces_spans = counted  # type: ignore[method-assign]
    app = create_app(store, FakeHost())
    sent: list[tuple[dict[str, Any], int]] = []

    requests = [{"type": "http.request", "body": b"", "more_body": False}]
    finished = asyncio.Event()

    async def receive() -> dict[str, Any]:
        if requests:
            return requests.pop()
        await finished.wait()  # the client stays until the body is whole
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append((message, len(reads)))
        if message["type"] == "http.response.body" and not message.get("more_body"):
            finished.set()

    query = urlencode({**FIXTURES, "format": fmt}).encode()
    try:
        await app({"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                   "scheme": "http", "path": "/api/v1/traces/export", "raw_path": b"/api/v1/traces/export",
                   "query_string": query, "root_path": "", "headers": [(b"host", b"query")],
                   "client": ("127.0.0.1", 5000), "server": ("query", 80)}, receive, send)
    finally:
        await store.close()
    start, *bodies = sent
    assert start[0]["status"] == 200 and b"content-length" not in dict(start[0]["headers"])
    chunks = [(m["body"], after) for m, after in bodies if m.get("body")]
    assert max(reads) <= export.SPANS_PER_READ and len(reads) > 10
    after_reads = [after for _, after in chunks[:-1 if fmt == "parquet" else None]]  # not the Parquet footer
    assert after_reads[0] == 1, "the first spans go out after the first read"
    assert after_reads == sorted(set(after_reads)), "one read per chunk at most"
    assert len([r for r in reads if r]) == len(chunks) - (fmt == "parquet"), "then the Parquet footer"
    body = b"".join(b for b, _ in chunks)
    if fmt == "jsonl":
        assert len(body.splitlines()) == sum(reads)
    else:
        assert pq.read_table(io.BytesIO(body)).num_rows == sum(reads)


async def test_exports_take_their_own_slots_and_never_hold_up_a_trace_page(chdb_endpoint: str,
                                                                            seeded: str) -> None:
    store = make_store(chdb_endpoint, seeded)
    gate = asyncio.Event()
    search = store.search

    async def slow_search(*args: Any, **kwargs: Any) -> Any:
        await gate.wait()  # an export that takes a while
        return await search(*args, **kwargs)

    store.search = slow_search  # type: ignore[method-assign]
    settings = QueryApiConfig(max_concurrent_exports=1, max_concurrent_trace_reads=1, read_queue_timeout=0.2)
    try:
        async with api_client(create_app(store, FakeHost(), settings=settings)) as api:
            first = asyncio.create_task(api.get("/api/v1/traces/export", params=FIXTURES,
                                                headers={"authorization": "Bearer one"}))
            await asyncio.sleep(0.1)
            busy = await api.get("/api/v1/traces/export", params=FIXTURES, headers={"authorization": "Bearer two"})
            assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
            assert "busy with other exports" in busy.json()["error"]["message"]
            page = await api.get(f"/api/v1/traces/{TRACE_A}", headers={"authorization": "Bearer three"})
            assert page.status_code == 200, "the trace page's slot is not the export's"
            gate.set()
            assert (await first).status_code == 200
            again = await api.get("/api/v1/traces/export", params=FIXTURES, headers={"authorization": "Bearer two"})
            assert again.status_code == 200 and again.content == (await first).content
    finally:
        await store.close()


async def test_a_store_failing_is_a_503_before_the_body_and_a_cut_stream_after(
        chdb_endpoint: str, seeded: str, small_pieces: None) -> None:
    """Over a real socket: a failure once the body has started cannot become a status; the
    stream is cut (no closing chunk), so no client takes a truncated export for a whole one."""
    store = make_store(chdb_endpoint, seeded)
    read_spans, search = store.traces_spans, store.search
    failing = {"search": False}

    async def flaky_search(*args: Any, **kwargs: Any) -> Any:
        if failing["search"]:
            raise StoreError("Code: 241. DB::Exception: Memory limit exceeded")
        return await search(*args, **kwargs)

    async def second_read_fails(*args: Any, **kwargs: Any) -> Any:
        if len(calls) == 1:
            raise StoreError("Code: 159. DB::Exception: Timeout exceeded")
        calls.append(1)
        return await read_spans(*args, **kwargs)

    calls: list[int] = []
    store.search, store.traces_spans = flaky_search, second_read_fails  # type: ignore[method-assign]
    server = AsgiServer(create_app(store, FakeHost()), "127.0.0.1:0", name="query_api")
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=30) as http:
            async with http.stream("GET", "/api/v1/traces/export", params=FIXTURES) as resp:
                assert resp.status_code == 200
                with pytest.raises(httpx.RemoteProtocolError):
                    await resp.aread()
            failing["search"] = True
            refused = await http.get("/api/v1/traces/export", params=FIXTURES)
            assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
            assert "Memory limit exceeded" in refused.json()["error"]["message"]
    finally:
        await server.stop()
        await store.close()


# ------------------------------------------------------------------------------ tenants, errors


async def test_a_key_exports_only_its_tenant_s_traces(chdb_endpoint: str, seeded: str) -> None:
    store = make_store(chdb_endpoint, seeded)
    app = create_app(store, FakeHost(), access=Access(Keys()))  # type: ignore[arg-type]
    try:
        async with api_client(app, "shop-key") as shop, api_client(app) as default:
            shop_spans = jsonl(await exported(shop, **DAY))
            assert list(by_trace(shop_spans)) == [SHOP_ONLY, TRACE_A]
            assert all(s["attributes"].get("owner") == "shop" for s in shop_spans if s["trace_id"] == TRACE_A)
            parquet = pq.read_table(io.BytesIO((await exported(shop, "parquet", **DAY)).content))
            assert sorted(set(parquet["trace_id"].to_pylist())) == sorted([SHOP_ONLY, TRACE_A])
            default_spans = jsonl(await exported(default, **DAY))
            assert SHOP_ONLY not in by_trace(default_spans) and TRACE_A in by_trace(default_spans)
            assert not any(s["attributes"].get("owner") for s in default_spans)
            assert (await default.get(f"/api/v1/traces/{SHOP_ONLY}", params={"format": "otlp"})).status_code == 404
            otlp = (await shop.get(f"/api/v1/traces/{TRACE_A}", params={"format": "otlp"})).json()
            owners = {kv["value"]["stringValue"] for rs in otlp["resourceSpans"] for ss in rs["scopeSpans"]
                      for span in ss["spans"] for kv in span["attributes"] if kv["key"] == "owner"}
            assert owners == {"shop"}
            nobody = await default.get("/api/v1/traces/export", params=DAY, headers={"authorization": "Bearer nope"})
            assert nobody.status_code == 401
    finally:
        await store.close()


@pytest.mark.parametrize(("path", "params", "parameter"), [
    ("/api/v1/traces/export", {"format": "csv"}, "format"),
    ("/api/v1/traces/export", {"format": ""}, "format"),
    ("/api/v1/traces/export", {"limit": 0}, "limit"),
    ("/api/v1/traces/export", {"limit": "many"}, "limit"),
    ("/api/v1/traces/export", {"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, "start"),
    ("/api/v1/traces/export", {"min_tokens": 10, "max_tokens": 5}, "max_tokens"),
    ("/api/v1/traces/export", {"status": "broken"}, "status"),
    ("/api/v1/traces/export", {"attr": "no-equals-sign"}, "attr"),
    ("/api/v1/traces/export", {"cursor": "not-a-cursor"}, "cursor"),
    (f"/api/v1/traces/{TRACE_A}", {"format": "xml"}, "format"),
    ("/api/v1/traces/not-a-trace-id", {"format": "otlp"}, "trace_id"),
])
async def test_bad_parameters_are_400s_naming_them(api: httpx.AsyncClient, path: str, params: dict[str, Any],
                                                   parameter: str) -> None:
    resp = await api.get(path, params=params)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["parameter"] == parameter
    assert resp.json()["error"]["message"].startswith(f"{parameter}:")


async def test_a_cursor_of_another_sort_is_a_400_and_an_unknown_trace_a_404(api: httpx.AsyncClient) -> None:
    first = (await api.get("/api/v1/traces", params={**FIXTURES, "limit": 1, "sort": "cost"})).json()
    resp = await api.get("/api/v1/traces/export", params={"cursor": first["next_cursor"]})
    assert resp.status_code == 400 and resp.json()["error"]["parameter"] == "cursor"
    missing = await api.get(f"/api/v1/traces/{'f' * 32}", params={"format": "otlp"})
    assert missing.status_code == 404 and missing.json()["error"]["message"] == f"trace {'f' * 32} not found"


def test_the_openapi_document_lists_the_export_and_its_media_types(chdb_endpoint: str) -> None:
    store = make_store(chdb_endpoint, "unused")  # never queried
    paths = create_app(store, FakeHost()).openapi()["paths"]
    asyncio.run(store.close())
    export_op = paths["/api/v1/traces/export"]["get"]
    assert set(export_op["responses"]["200"]["content"]) == {"application/jsonl", "application/vnd.apache.parquet"}
    names = [p["name"] for p in export_op["parameters"]]
    search_names = [p["name"] for p in paths["/api/v1/traces"]["get"]["parameters"]]
    assert set(names) == set(search_names) | {"format"}, "the search's parameters, and the format"
    detail = {p["name"]: p for p in paths["/api/v1/traces/{trace_id}"]["get"]["parameters"]}
    assert detail["format"]["schema"]["enum"] == ["json", "otlp"]

