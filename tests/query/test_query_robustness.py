"""What a hostile or unlucky client gets from the query API: a 400 naming the parameter for
any numeric value (never a 500), every stored trace readable (spans after 2106 included),
and ClickHouse failures that do not say where ClickHouse runs."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from test_query_api import FakeHost, SpanSpec, build_batch, make_store, seed
from tracehouse.query.app import create_app
from tracehouse.query.config import QueryClickHouseConfig
from tracehouse.query.store import TraceStore

NS = 10**9
# Starts after 2106-02-07 (where ClickHouse's DateTime, the trace-id lookup's type, ends) and
# before 2262-04-11 (where DateTime64(9), the spans' type, ends).
Y2200 = 7_258_118_400 * NS  # 2200-01-01T00:00:00Z
TRACE_FUTURE = "f0" * 16
TRACE_MIXED = "e1" * 16  # one span now-ish, one after 2106
T_NOW = 1_795_000_000 * NS


@pytest.fixture(scope="module")
def future_db(chdb_endpoint: str) -> str:
    database = f"tr_{uuid.uuid4().hex[:12]}"
    specs = [
        SpanSpec("far", TRACE_FUTURE, "f000000000000001", "", "root", Y2200, 2 * NS, kind=Span.SPAN_KIND_SERVER),
        SpanSpec("far", TRACE_FUTURE, "f000000000000002", "f000000000000001", "child", Y2200 + NS, NS),
        SpanSpec("mixed", TRACE_MIXED, "e000000000000001", "", "root", T_NOW, NS),
        SpanSpec("mixed", TRACE_MIXED, "e000000000000002", "e000000000000001", "late", Y2200 + 5 * NS, NS),
    ]
    asyncio.run(seed(chdb_endpoint, database, [build_batch(specs)]))
    return database


@pytest.fixture
async def api(future_db: str, chdb_endpoint: str) -> AsyncIterator[httpx.AsyncClient]:
    store = make_store(chdb_endpoint, future_db)
    app = create_app(store, FakeHost())  # type: ignore[arg-type]
    # A route's exception becomes the app's 500, as a server would answer, not a test error.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://query") as client:
        yield client
    await store.close()


async def test_a_trace_starting_after_2106_is_readable(api: httpx.AsyncClient) -> None:
    for trace, spans in ((TRACE_FUTURE, {"f000000000000001", "f000000000000002"}),
                         (TRACE_MIXED, {"e000000000000001", "e000000000000002"})):
        resp = await api.get(f"/api/v1/traces/{trace}")
        assert resp.status_code == 200, resp.text
        assert {s["span_id"] for s in resp.json()["spans"]} == spans
        jaeger = await api.get(f"/api/traces/{trace}")
        assert jaeger.status_code == 200, jaeger.text
        assert len(jaeger.json()["data"][0]["spans"]) == 2
    listed = await api.get("/api/v1/traces", params={"start": "2199-12-31T00:00:00Z", "end": "2200-01-02T00:00:00Z"})
    assert listed.status_code == 200, listed.text
    # (The mixed trace spans 174 years, far past the list's max_trace_duration window.)
    assert {t["trace_id"] for t in listed.json()["traces"]} == {TRACE_FUTURE}


# Every query parameter that takes a number (or a duration, time or count) on every route.
NUMERIC_PARAMETERS: dict[str, list[str]] = {
    "/api/v1/traces": ["start", "end", "min_duration_ms", "max_duration_ms", "min_tokens", "max_tokens",
                       "min_cost_usd", "max_cost_usd", "limit"],
    "/api/v1/traces/export": ["start", "end", "min_duration_ms", "max_duration_ms", "min_tokens", "max_tokens",
                              "min_cost_usd", "max_cost_usd", "limit"],
    "/api/v1/metrics/genai": ["start", "end", "step"],
    "/api/v1/sessions": ["start", "end", "limit"],
    "/api/v1/prompts": ["limit", "offset"],
    "/api/v1/prompts/some-prompt": ["start", "end"],
    "/api/traces": ["start", "end", "limit", "minDuration", "maxDuration", "lookback"],
}
HUGE = ["9" * 400, "9" * 5000, "-" + "9" * 400, "1e309", "-1e309", "1" + "0" * 400 + ".5", "nan", "inf",
        "9" * 400 + "m", "9" * 400 + "d", "9" * 400 + "h", "9" * 5000 + "ms", "9" * 400 + "w"]


async def test_no_numeric_parameter_answers_500(api: httpx.AsyncClient) -> None:
    doc = (await api.get("/openapi.json")).json()
    numeric_kinds = {"integer", "number"}
    for path, ops in doc["paths"].items():
        for p in ops.get("get", {}).get("parameters", []):
            schema = p.get("schema", {})
            kinds = {schema.get("type")} | {s.get("type") for s in schema.get("anyOf", [])}
            concrete = path.replace("{name}", "some-prompt").replace("{name:path}", "some-prompt")
            if p["in"] == "query" and kinds & numeric_kinds:  # a new numeric parameter must be listed
                assert p["name"] in NUMERIC_PARAMETERS.get(concrete, []), (path, p["name"])
    for path, names in NUMERIC_PARAMETERS.items():
        for name in names:
            for value in HUGE:
                params: dict[str, Any] = {name: value}
                if path == "/api/traces":
                    params["service"] = "far"
                resp = await api.get(path, params=params)
                assert resp.status_code < 500, (path, name, value[:12], resp.text[:300])
                if resp.status_code == 400:
                    body = resp.json()
                    if path.startswith("/api/v1"):
                        assert body["error"]["parameter"] == name, (path, name, body)
                    else:
                        assert body["errors"][0]["msg"].startswith(f"{name}:"), (path, name, body)


async def test_metrics_step_of_400_digits_is_400(api: httpx.AsyncClient) -> None:
    resp = await api.get("/api/v1/metrics/genai", params={"step": "9" * 400})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["parameter"] == "step"


async def test_jaeger_limit_of_5000_digits_is_capped_not_500(api: httpx.AsyncClient) -> None:
    resp = await api.get("/api/traces", params={"service": "far", "limit": "9" * 5000,
                                                "start": str(Y2200 // 1000 - 10**6), "end": str(Y2200 // 1000 + 10**8)})
    assert resp.status_code == 200, resp.text[:300]
    assert [t["traceID"] for t in resp.json()["data"]] == [TRACE_FUTURE]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_clickhouse_errors_shown_to_clients_do_not_say_where_it_runs() -> None:
    port = closed_port()
    store = TraceStore(QueryClickHouseConfig(endpoint=f"http://127.0.0.1:{port}", database="nowhere"), max_workers=1)
    app = create_app(store, FakeHost())  # type: ignore[arg-type]
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                                     base_url="http://q") as api:
            for path in ("/api/v1/traces", f"/api/v1/traces/{TRACE_FUTURE}", "/api/v1/metrics/genai",
                         "/api/v1/prompts", "/api/traces?service=x", f"/api/traces/{TRACE_FUTURE}"):
                resp = await api.get(path)
                assert resp.status_code == 503, (path, resp.text)
                assert str(port) not in resp.text and "127.0.0.1" not in resp.text, (path, resp.text)
                assert "HTTPConnectionPool" not in resp.text, resp.text
    finally:
        await store.close()
