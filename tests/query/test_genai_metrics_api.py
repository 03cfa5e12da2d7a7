"""GET /api/v1/metrics/genai over real data: the captured OTLP fixtures and hand-built spans
with OpenTelemetry GenAI attributes, enriched by the real GenAI processors
(genai_normalize -> genai_tokens -> genai_cost) and written by the real ClickHouse exporter
(which feeds the usage rollup and the prompt registry through its materialized views).

Expected numbers are computed in Python from the raw spans table, read once right after
seeding; the spans table is then emptied, so every answer here can only come from the
rollups. The seeded database is genai_seed.py's, shared with test_prompts_api.py.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tracehouse.query.app import create_app
from tracehouse.query.params import parse_time_ns
from tracehouse.query.rows import format_ns
from tracehouse.query.config import QueryApiConfig, QueryClickHouseConfig
from tracehouse.query.models import GenAIMetricsResponse
from tracehouse.query.store import TraceStore
from tracehouse.sinks.clickhouse.client import open_client

from genai_seed import (
    FIX_END,
    FIX_START,
    HAND_END,
    HAND_START,
    Health,
    NS,
    P_EXPLAIN,
    P_SUMMARIZE,
    Seeded,
    T0,
    in_rollup,
    is_call,
    seeded_data,
)


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
    assert_written_as_the_model(resp.content)
    body: dict[str, Any] = resp.json()
    return body


def assert_written_as_the_model(content: bytes) -> None:
    """The route writes its JSON from dicts (query/rows.py metrics_json): the same bytes the
    response model writes, field order and number formatting included."""
    assert content == GenAIMetricsResponse.model_validate_json(content).model_dump_json().encode()


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
    assert params == {"start", "end", "step", "group_by", "service", "provider", "model", "prompt", "prompt_version",
                      "scores", "score_name"}
    assert "404" in doc["paths"]["/api/v1/prompts/{name}"]["get"]["responses"]
    schemas = doc["components"]["schemas"]
    assert {"GenAIMetricsResponse", "GenAISeries", "GenAIPoint", "LatencyMs", "PromptListResponse",
            "PromptDetailResponse", "PromptVersionDetail"} <= set(schemas)
