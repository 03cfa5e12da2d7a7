"""Jaeger's API v3 (query/jaeger/v3.py) over real stored spans: tracehouse's answers compared
with Jaeger's own expected answers (tests/fixtures/jaeger/, its gateway tests' snapshots) for
the same spans, then every route over the Jaeger v2 tests' data (spans stored twice, merges
stopped), against the v2 routes and the OTLP export of the same traces."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from test_jaeger_api import A1, A2, A3, NS, TRACE_A, TRACE_B, TRACE_C, TRACE_OLD, Seeded, stored_twice
from test_query_api import FakeHost, make_store, seed
from tracehouse.core.pdata import TraceBatch, key_values
from tracehouse.query.app import create_app
from tracehouse.query.budget import _TRACE_READS
from tracehouse.query.jaeger.errors import JaegerError
from tracehouse.query.jaeger.v3 import WARNINGS_ATTRIBUTE, traces_result
from tracehouse.query.store import JaegerSearchQuery

FIXTURES = Path(__file__).parent.parent / "fixtures" / "jaeger"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / f"v3_{name}.json").read_text())


# ------------------------------------------------------------------------------ Jaeger's own answers


def jaegers_span(request: ExportTraceServiceRequest, trace_id: int, service: str | None) -> None:
    """The span of Jaeger's gateway tests (makeTestTrace): no times, no attributes."""
    rs = request.resource_spans.add()
    if service:
        rs.resource.attributes.extend(key_values({"service.name": service}))
    span = rs.scope_spans.add().spans.add()
    span.trace_id, span.span_id = trace_id.to_bytes(16, "big"), (2).to_bytes(8, "big")
    span.name, span.kind = "foobar", Span.SPAN_KIND_SERVER
    span.status.code = Status.STATUS_CODE_ERROR


@pytest.fixture(scope="module")
def jaegers_data(chdb_endpoint: str) -> Iterator[str]:
    """The spans behind Jaeger's snapshots: trace 1 as makeTestTrace built it (empty resource),
    the same span as trace 3 in service `foo`, and a recent `foo` server span `get_users`."""
    database = f"tv3_{uuid.uuid4().hex[:12]}"
    request = ExportTraceServiceRequest()
    jaegers_span(request, 1, None)
    jaegers_span(request, 3, "foo")
    rs = request.resource_spans.add()
    rs.resource.attributes.extend(key_values({"service.name": "foo"}))
    users = rs.scope_spans.add().spans.add()
    users.trace_id, users.span_id = (4).to_bytes(16, "big"), (5).to_bytes(8, "big")
    users.name, users.kind = "get_users", Span.SPAN_KIND_SERVER
    users.start_time_unix_nano = time.time_ns() - 60 * NS
    users.end_time_unix_nano = users.start_time_unix_nano + 1000
    asyncio.run(seed(chdb_endpoint, database, [TraceBatch.from_request(request)]))
    yield database


@pytest.fixture
async def jaeger_api(jaegers_data: str, chdb_endpoint: str) -> AsyncIterator[httpx.AsyncClient]:
    store = make_store(chdb_endpoint, jaegers_data)
    app = create_app(store, FakeHost())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://query") as client:
        yield client
    await store.close()


async def answer(api: httpx.AsyncClient, path: str, **params: Any) -> Any:
    resp = await api.get(path, params=params)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/json"
    return resp.json()


async def test_services_and_operations_are_jaegers_answers(jaeger_api: httpx.AsyncClient) -> None:
    assert await answer(jaeger_api, "/api/v3/services") == fixture("GetServices")
    assert await answer(jaeger_api, "/api/v3/operations", service="foo", spanKind="server") \
        == fixture("GetOperations")
    assert await answer(jaeger_api, "/api/v3/operations", service="foo", span_kind="server") \
        == fixture("GetOperations")  # the older name


async def test_get_trace_is_jaegers_answer(jaeger_api: httpx.AsyncClient) -> None:
    assert await answer(jaeger_api, "/api/v3/traces/1") == fixture("GetTrace")
    # the ids as Jaeger's gateway reads them: 32 hex digits, base64 (padded or not, URL-safe)
    b64 = base64.b64encode((1).to_bytes(16, "big")).decode()
    for trace_id in ("0" * 31 + "1", b64, b64.rstrip("="), base64.urlsafe_b64encode((1).to_bytes(16, "big")).decode()):
        assert await answer(jaeger_api, f"/api/v3/traces/{trace_id}") == fixture("GetTrace"), trace_id


async def test_find_traces_is_jaegers_answer(jaeger_api: httpx.AsyncClient) -> None:
    window = {"query.startTimeMin": "1970-01-01T00:00:00Z", "query.startTimeMax": "1970-01-01T00:00:01Z"}
    body = await answer(jaeger_api, "/api/v3/traces", **{"query.serviceName": "foo", **window})
    # Jaeger's mock trace has an empty resource; the one stored here names its service, and its id is 3
    want = fixture("FindTraces")
    [rs] = want["result"]["resourceSpans"]
    rs["resource"] = {"attributes": [{"key": "service.name", "value": {"stringValue": "foo"}}]}
    rs["scopeSpans"][0]["spans"][0]["traceId"] = "0" * 31 + "3"
    assert body == want
    # and with the older snake_case names
    old = {"query.service_name": "foo", "query.start_time_min": window["query.startTimeMin"],
           "query.start_time_max": window["query.startTimeMax"]}
    assert await answer(jaeger_api, "/api/v3/traces", **old) == want


# ------------------------------------------------------------------------------ the v2 tests' data


@pytest.fixture(scope="module")
def seeded(chdb_endpoint: str) -> Iterator[Seeded]:
    yield from stored_twice(chdb_endpoint)


@pytest.fixture
async def api(seeded: Seeded, chdb_endpoint: str) -> AsyncIterator[httpx.AsyncClient]:
    store = make_store(chdb_endpoint, seeded.database)
    app = create_app(store, FakeHost())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://query") as client:
        yield client
    await store.close()



def spans_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [sp for rs in body["result"]["resourceSpans"] for ss in rs["scopeSpans"] for sp in ss["spans"]]


def attrs(item: dict[str, Any]) -> dict[str, Any]:
    return {kv["key"]: kv["value"] for kv in item.get("attributes", [])}


def v3_error(resp: httpx.Response, code: int, message: str) -> None:
    assert resp.status_code == code, resp.text
    body = resp.json()
    assert set(body) == {"error"} and body["error"]["httpCode"] == code, body
    assert body["error"]["message"].startswith(message), body["error"]["message"]


def window(seeded: Seeded, **params: Any) -> dict[str, Any]:
    """FindTraces over [t0 - 1s, t0 + 60s] in jg-shop unless the test says otherwise."""
    def rfc3339(ns: int) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // NS)) + f".{ns % NS:09d}Z"

    return {"query.serviceName": "jg-shop", "query.startTimeMin": rfc3339(seeded.t0 - NS),
            "query.startTimeMax": rfc3339(seeded.t0 + 60 * NS), **params}


async def find_ids(api: httpx.AsyncClient, seeded: Seeded, **params: Any) -> list[str]:
    resp = await api.get("/api/v3/traces", params=window(seeded, **params))
    if resp.status_code == 404:
        v3_error(resp, 404, "No traces found")
        return []
    assert resp.status_code == 200, resp.text
    return list(dict.fromkeys(sp["traceId"] for sp in spans_of(resp.json())))


async def test_trace_matches_the_otlp_export(api: httpx.AsyncClient) -> None:
    body = await answer(api, f"/api/v3/traces/{TRACE_A.upper()}")
    export = (await api.get(f"/api/v1/traces/{TRACE_A}", params={"format": "otlp"})).json()
    spans = spans_of(body)
    # each once, though stored twice; one ResourceSpans per resource (A3's has another host)
    assert [sp["spanId"] for sp in spans] == [A1, A2, A3] and len(body["result"]["resourceSpans"]) == 3
    exported = {sp["spanId"]: sp for rs in export["resourceSpans"] for ss in rs["scopeSpans"] for sp in ss["spans"]}
    for sp in spans:
        want = exported[sp["spanId"]]
        assert {k: v for k, v in sp.items() if k not in ("attributes", "status")} == \
            {k: v for k, v in want.items() if k not in ("attributes", "status")}
        assert attrs(sp) == attrs(want) and sp["status"] == want.get("status", {})
        # Jaeger's query service sorts attributes by key (unless raw traces are asked for)
        assert [kv["key"] for kv in sp.get("attributes", [])] == sorted(attrs(sp))
    root = next(sp for sp in spans if sp["spanId"] == A1)
    assert attrs(root)["retries"] == {"intValue": "2"} and attrs(root)["sampled"] == {"boolValue": True}
    assert root["kind"] == 2 and root["status"] == {"code": 1} and root["traceState"] == "vendor=1"
    chat = next(sp for sp in spans if sp["spanId"] == A2)
    assert attrs(chat)["gen_ai.request.temperature"] == {"doubleValue": 1.0}
    assert attrs(chat)["gen_ai.usage.input_tokens"] == {"intValue": "100"}
    assert chat["parentSpanId"] == A1 and chat["links"][0]["traceId"] == TRACE_B
    assert chat["events"][0]["name"] == "gen_ai.content.prompt"
    for rs in body["result"]["resourceSpans"]:
        assert set(rs) == {"resource", "scopeSpans"} and all(set(ss) == {"scope", "spans"} for ss in rs["scopeSpans"])


async def test_raw_traces_keep_the_stored_order(api: httpx.AsyncClient) -> None:
    for params in ({"rawTraces": "true"}, {"raw_traces": "1"}):
        body = await answer(api, f"/api/v3/traces/{TRACE_A}", **params)
        root = next(sp for sp in spans_of(body) if sp["spanId"] == A1)
        assert [kv["key"] for kv in root["attributes"]] == ["http.method", "tenant", "retries", "sampled"]
    adjusted = await answer(api, f"/api/v3/traces/{TRACE_A}", rawTraces="false")
    root = next(sp for sp in spans_of(adjusted) if sp["spanId"] == A1)
    assert [kv["key"] for kv in root["attributes"]] == ["http.method", "retries", "sampled", "tenant"]


async def test_sixty_four_bit_ids_and_unknown_traces(api: httpx.AsyncClient) -> None:
    body = await answer(api, "/api/v3/traces/1234567890abcdef")
    assert [sp["traceId"] for sp in spans_of(body)] == [TRACE_OLD]
    resp = await api.get("/api/v3/traces/0123456789abcdef0123456789abcdef")
    assert resp.json() == {"error": {"httpCode": 404, "message": "No traces found"}}
    v3_error(resp, 404, "No traces found")


@pytest.mark.parametrize(("params", "want"), [
    ({}, [TRACE_C, TRACE_B, TRACE_A]),
    ({"query.serviceName": "jg-llm"}, [TRACE_A]),
    ({"query.operationName": "POST /checkout"}, [TRACE_C, TRACE_A]),
    ({"query.operation_name": "POST /checkout"}, [TRACE_C, TRACE_A]),
    ({"query.attributes": '{"tenant":"acme"}'}, [TRACE_C, TRACE_A]),
    ({"query.attributes": '{"tenant":"acme","span.kind":"server"}'}, [TRACE_C, TRACE_A]),
    ({"query.attributes": '{"error":"true"}'}, [TRACE_A]),
    ({"query.attributes": '{"tenant":"nobody"}'}, []),
    ({"query.durationMin": "1s"}, [TRACE_A]),
    ({"query.duration_min": "40ms", "query.durationMax": "0.1s"}, [TRACE_C]),
    ({"query.searchDepth": "1"}, [TRACE_C]),
    ({"query.search_depth": "2"}, [TRACE_C, TRACE_B]),
    ({"query.num_traces": "1"}, [TRACE_C]),
    ({"query.searchDepth": "0"}, [TRACE_C, TRACE_B, TRACE_A]),  # 0 = the default, 100
    ({"query.serviceName": "nobody"}, []),
    ({"query.startTimeMax": "2262-04-11T23:47:16.854775807Z"}, [TRACE_C, TRACE_B, TRACE_A]),  # the last ns
])
async def test_find_traces(api: httpx.AsyncClient, seeded: Seeded, params: dict[str, str], want: list[str]) -> None:
    assert await find_ids(api, seeded, **params) == want


async def test_find_traces_returns_whole_traces_as_the_trace_route(api: httpx.AsyncClient, seeded: Seeded) -> None:
    found = await answer(api, "/api/v3/traces", **window(seeded, **{"query.serviceName": "jg-llm"}))
    assert found == await answer(api, f"/api/v3/traces/{TRACE_A}")


async def test_services_and_operations(api: httpx.AsyncClient) -> None:
    assert await answer(api, "/api/v3/services") == {"services": ["jg-llm", "jg-shop"]}
    body = await answer(api, "/api/v3/operations", service="jg-shop")
    # an unspecified kind shows as `internal`, as Jaeger's gateway shows it
    assert body == {"operations": [{"name": "GET /health", "spanKind": "internal"},
                                   {"name": "POST /checkout", "spanKind": "server"},
                                   {"name": "SELECT orders", "spanKind": "client"}]}
    assert await answer(api, "/api/v3/operations", service="jg-shop", spanKind="client") == \
        {"operations": [{"name": "SELECT orders", "spanKind": "client"}]}
    assert await answer(api, "/api/v3/operations", service="nobody") == {"operations": []}


@pytest.mark.parametrize(("path", "params", "message"), [
    ("/api/v3/traces", {}, "query.startTimeMin and query.startTimeMax are required"),
    ("/api/v3/traces", {"query.startTimeMin": "2026-01-01T00:00:00Z"},
     "query.startTimeMin and query.startTimeMax are required"),
    ("/api/v3/traces", {"query.startTimeMin": "yesterday", "query.startTimeMax": "2026-01-01T00:00:00Z"},
     "malformed parameter query.startTimeMin:"),
    ("/api/v3/traces", {"query.start_time_min": "1700000000", "query.startTimeMax": "2026-01-01T00:00:00Z"},
     "malformed parameter query.start_time_min:"),
    ("/api/v3/traces", {"query.startTimeMin": "2026-01-02T00:00:00Z", "query.startTimeMax": "2026-01-01T00:00:00Z"},
     "query.startTimeMin must be before query.startTimeMax"),
    ("/api/v3/traces", {"query.startTimeMin": "2026-01-01T00:00:00Z", "query.startTimeMax": "2026-01-02T00:00:00Z"},
     "this storage backend requires a service name"),
    ("/api/v3/traces", {"query.attributes": "{", "query.serviceName": "x"}, "malformed parameter query.attributes:"),
    ("/api/v3/traces", {"query.attributes": '{"n": 1}', "query.serviceName": "x"},
     "malformed parameter query.attributes:"),
    ("/api/v3/traces", {"query.filter": "{}", "query.serviceName": "x"}, "malformed parameter query.filter:"),
    ("/api/v3/traces", {"query.serviceName": "x", "query.startTimeMin": "2026-01-01T00:00:00Z",
                        "query.startTimeMax": "2026-01-02T00:00:00Z", "query.durationMin": "fast"},
     "malformed parameter query.durationMin:"),
    ("/api/v3/traces", {"query.serviceName": "x", "query.startTimeMin": "2026-01-01T00:00:00Z",
                        "query.startTimeMax": "2026-01-02T00:00:00Z", "query.searchDepth": "many"},
     "malformed parameter query.searchDepth:"),
    ("/api/v3/traces", {"query.serviceName": "x", "query.startTimeMin": "2026-01-01T00:00:00Z",
                        "query.startTimeMax": "2026-01-02T00:00:00Z", "query.raw_traces": "yes"},
     "malformed parameter query.raw_traces:"),
    ("/api/v3/traces", {"query.servicename": "x"}, "malformed parameter query.servicename: unknown parameter"),
    ("/api/v3/traces/xyz!", {}, "malformed parameter trace_id:"),
    ("/api/v3/traces/" + "0" * 32, {}, "malformed parameter trace_id:"),
    ("/api/v3/traces/" + "a" * 33, {}, "malformed parameter trace_id:"),
    (f"/api/v3/traces/{TRACE_A}", {"startTime": "abc"}, "malformed parameter startTime:"),
    (f"/api/v3/traces/{TRACE_A}", {"end_time": "xyz"}, "malformed parameter end_time:"),
    (f"/api/v3/traces/{TRACE_A}", {"rawTraces": "foobar"}, "malformed parameter rawTraces:"),
    ("/api/v3/operations", {}, "malformed parameter service:"),
    ("/api/v3/operations", {"service": "jg-shop", "spanKind": "sideways"}, "malformed parameter spanKind:"),
])
async def test_bad_parameters_are_gateway_400s(api: httpx.AsyncClient, path: str, params: dict[str, str],
                                               message: str) -> None:
    v3_error(await api.get(path, params=params), 400, message)


async def test_routing_and_store_errors_use_the_gateway_shape(api: httpx.AsyncClient, chdb_endpoint: str) -> None:
    v3_error(await api.get("/api/v3/nope"), 404, "Not Found")
    v3_error(await api.post("/api/v3/traces"), 405, "Method Not Allowed")
    store = make_store(chdb_endpoint, f"missing_{uuid.uuid4().hex[:8]}")
    app = create_app(store, FakeHost())
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://q") as broken:
            for path in ("/api/v3/services", "/api/v3/operations?service=x", f"/api/v3/traces/{TRACE_A}"):
                resp = await broken.get(path)
                v3_error(resp, 503, "the trace store could not answer: ClickHouse error")
                assert resp.headers["retry-after"] == "5" and "SELECT" not in resp.text
    finally:
        await store.close()


async def test_a_response_is_cut_at_max_spans_and_says_so(seeded: Seeded, chdb_endpoint: str) -> None:
    store = make_store(chdb_endpoint, seeded.database)
    try:
        ids = await store.jaeger_search(JaegerSearchQuery(service="jg-shop", start_ns=seeded.t0 - NS,
                                                          end_ns=seeded.t0 + 60 * NS, limit=20,
                                                          operation="POST /checkout"), tenant="")
        assert ids == [TRACE_C, TRACE_A]
        rows = await store.traces_spans(ids, 10, tenant="")
        whole = spans_of(traces_result(ids, rows, adjusted=True, max_spans=4))
        assert len(whole) == 4 and not any(WARNINGS_ATTRIBUTE in attrs(sp) for sp in whole)
        cut = spans_of(traces_result(ids, rows, adjusted=True, max_spans=2))
        assert [(sp["traceId"], sp["spanId"]) for sp in cut] == [(TRACE_C, "c000000000000001"), (TRACE_A, A1)]
        assert attrs(cut[1])[WARNINGS_ATTRIBUTE] == {"arrayValue": {"values": [
            {"stringValue": "the response holds at most 2 spans; the spans after this one were left out"}]}}
        with pytest.raises(JaegerError, match="No traces found"):
            traces_result(ids, [], adjusted=True)
    finally:
        await store.close()


def test_v3_trace_reads_take_a_trace_slot() -> None:
    assert _TRACE_READS.match("/api/v3/traces") and _TRACE_READS.match(f"/api/v3/traces/{TRACE_A}")
    assert not _TRACE_READS.match("/api/v3/services")


async def test_openapi_documents_the_v3_routes(api: httpx.AsyncClient) -> None:
    paths = (await answer(api, "/openapi.json"))["paths"]
    for path in ("/api/v3/services", "/api/v3/operations", "/api/v3/traces", "/api/v3/traces/{trace_id}"):
        assert paths[path]["get"]["tags"] == ["jaeger-v3"], path
        assert "400" in paths[path]["get"]["responses"] and "422" not in paths[path]["get"]["responses"]
    names = {p["name"] for p in paths["/api/v3/traces"]["get"]["parameters"]}
    assert {"query.serviceName", "query.service_name", "query.attributes", "query.startTimeMin",
            "query.searchDepth", "query.num_traces", "query.rawTraces"} <= names
