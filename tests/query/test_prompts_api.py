"""GET /api/v1/prompts and /api/v1/prompts/{name} over real data: prompt links on the
captured fixtures and on hand-built spans (Traceloop and Langfuse attributes), enriched by
the real GenAI processors and written by the real exporter, whose PromptRegistry fills the
registry table. The database is the one genai_seed.py seeds (`seeded_data`):
expectations come from the raw spans and registry rows read right after seeding, and the
spans table is empty while the API answers."""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI

from genai_seed import (
    GREETING_TEMPLATES,
    NS,
    P_EXPLAIN,
    P_GREETING,
    P_SUMMARIZE,
    TEMPLATES,
    UNUSED_PROMPT,
    Health,
    Seeded,
    is_call,
    seeded_data,
)
from tracehouse.query.app import create_app
from tracehouse.query.params import parse_time_ns
from tracehouse.query.rows import format_ns
from tracehouse.query.config import QueryClickHouseConfig
from tracehouse.query.store import TraceStore


@pytest.fixture(scope="module")
def seeded(chdb_endpoint: str) -> Seeded:
    return seeded_data(chdb_endpoint)


@pytest.fixture(scope="module")
def app(seeded: Seeded) -> Iterator[FastAPI]:
    store = TraceStore(QueryClickHouseConfig(endpoint=seeded.endpoint, database=seeded.database), max_workers=2)
    yield create_app(store, Health())
    asyncio.run(store.close())


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://query") as client:
        yield client


async def get_json(api: httpx.AsyncClient, path: str, **params: Any) -> dict[str, Any]:
    resp = await api.get(path, params=params)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def detail(api: httpx.AsyncClient, name: str, **params: Any) -> dict[str, Any]:
    return await get_json(api, f"/api/v1/prompts/{quote(name, safe='')}", **params)


# ------------------------------------------------------------------------------ expectations


def registry_entries(seeded: Seeded) -> dict[tuple[str, str], dict[str, Any]]:
    """(name, version) -> its entry: the earliest claim, ties by the smaller hash."""
    entries: dict[tuple[str, str], dict[str, Any]] = {}
    for row in sorted(seeded.registry, key=lambda r: (r["registered_ns"], r["hash"])):
        entries.setdefault((row["name"], row["version"]), row)
    return entries


def uses(seeded: Seeded, name: str, version: str | None = None) -> list[dict[str, Any]]:
    return [s for s in seeded.raw if s["GenAIPromptName"] == name
            and (version is None or s["GenAIPromptVersion"] == version)]


def expected_order(seeded: Seeded, name: str) -> list[str]:
    """The documented version order, written independently of the API's code."""
    entries = registry_entries(seeded)
    versions = {v for (n, v) in entries if n == name} | {s["GenAIPromptVersion"] for s in uses(seeded, name)}
    numeric = all(v == "" or re.fullmatch(r"[0-9]+", v) for v in versions)

    def when(v: str) -> int:
        entry = entries.get((name, v))
        return int(entry["registered_ns"]) if entry else min(s["ts_ns"] for s in uses(seeded, name, v))

    return sorted(versions, key=lambda v: (v != "", int(v) if numeric and v else when(v), v))


def assert_cost(got: float, spans: list[dict[str, Any]]) -> None:
    exact = sum((s["GenAITotalCostUSD"] or Decimal(0) for s in spans), Decimal(0))
    assert math.isclose(got, float(exact), rel_tol=1e-12, abs_tol=0.0), (got, exact)


def all_names(seeded: Seeded) -> list[str]:
    return sorted({n for (n, _) in registry_entries(seeded)} | {s["GenAIPromptName"] for s in seeded.raw} - {""})


# ------------------------------------------------------------------------------ list


async def test_list_equals_registry_and_raw_usage(api: httpx.AsyncClient, seeded: Seeded) -> None:
    body = await get_json(api, "/api/v1/prompts")
    names = all_names(seeded)
    assert {P_EXPLAIN, P_SUMMARIZE, P_GREETING, UNUSED_PROMPT} <= set(names)
    assert "template-86eddd102733" in names, "the OpenInference fixture's prompt template"
    assert [p["name"] for p in body["prompts"]] == names
    assert (body["total"], body["limit"], body["offset"]) == (len(names), 100, 0)
    entries = registry_entries(seeded)
    for item in body["prompts"]:
        name = item["name"]
        spans = uses(seeded, name)
        registered = {v: e for (n, v), e in entries.items() if n == name}
        order = expected_order(seeded, name)
        assert item["version_count"] == len(order), name
        assert item["latest_version"] == order[-1], name
        assert item["usage"]["spans"] == len(spans), name
        assert item["usage"]["requests"] == sum(1 for s in spans if is_call(s)), name
        assert item["usage"]["total_tokens"] == sum(s["GenAITotalTokens"] or 0 for s in spans), name
        assert_cost(item["usage"]["cost_usd"], spans)
        if spans:
            assert item["first_seen"] == format_ns(min(s["ts_ns"] for s in spans))
            assert item["last_seen"] == format_ns(max(s["ts_ns"] for s in spans))
        else:
            assert item["first_seen"] is item["last_seen"] is None
        if registered:
            newest = max(registered.values(), key=lambda e: (e["registered_ns"], e["version"]))
            assert item["source"] == newest["source"], name
            assert item["registered_at"] == format_ns(min(int(e["registered_ns"]) for e in registered.values()))
        else:
            assert item["source"] is item["registered_at"] is None


async def test_list_latest_version_agrees_with_detail(api: httpx.AsyncClient) -> None:
    body = await get_json(api, "/api/v1/prompts")
    latest = {p["name"]: p["latest_version"] for p in body["prompts"]}
    assert latest[P_EXPLAIN] == "10"  # numeric, not string order
    assert latest[P_GREETING] == "2"  # numbered by the registry
    for name, version in latest.items():
        versions = (await detail(api, name))["versions"]
        assert versions[-1]["version"] == version, name
        assert len(versions) == next(p["version_count"] for p in body["prompts"] if p["name"] == name)


async def test_list_filter_and_pages(api: httpx.AsyncClient, seeded: Seeded) -> None:
    names = all_names(seeded)
    explain = await get_json(api, "/api/v1/prompts", q="EXPLAIN")
    assert [p["name"] for p in explain["prompts"]] == [P_EXPLAIN] and explain["total"] == 1
    dotted = await get_json(api, "/api/v1/prompts", q=".")
    assert [p["name"] for p in dotted["prompts"]] == [n for n in names if "." in n]
    assert (await get_json(api, "/api/v1/prompts", q="no such prompt")) == {
        "prompts": [], "total": 0, "limit": 100, "offset": 0}
    walked = []
    for offset in range(0, len(names) + 2, 2):
        page = await get_json(api, "/api/v1/prompts", limit=2, offset=offset)
        assert page["total"] == len(names) and len(page["prompts"]) <= 2
        walked += [p["name"] for p in page["prompts"]]
    assert walked == names
    past = await get_json(api, "/api/v1/prompts", limit=5, offset=len(names) + 10)
    assert past["prompts"] == [] and past["total"] == len(names)


# ------------------------------------------------------------------------------ detail


def check_versions(body: dict[str, Any], seeded: Seeded, name: str,
                   window: tuple[int, int] | None = None) -> None:
    """Every version: registry entry, all-time first/last use, usage within the window."""
    entries = registry_entries(seeded)
    assert body["name"] == name
    assert [v["version"] for v in body["versions"]] == expected_order(seeded, name)
    assert body["latest_version"] == body["versions"][-1]["version"]
    for v in body["versions"]:
        version = v["version"]
        entry = entries.get((name, version))
        if entry is None:
            assert v["template"] is v["template_hash"] is v["source"] is v["registered_at"] is None
        else:
            assert (v["template"], v["template_hash"], v["source"]) == (
                entry["template"], entry["hash"], entry["source"])
            assert v["registered_at"] == format_ns(int(entry["registered_ns"]))
        all_uses = uses(seeded, name, version)
        if all_uses:
            assert v["first_seen"] == format_ns(min(s["ts_ns"] for s in all_uses))
            assert v["last_seen"] == format_ns(max(s["ts_ns"] for s in all_uses))
        else:
            assert v["first_seen"] is v["last_seen"] is None
        counted = [s for s in all_uses if window is None or window[0] <= s["ts_ns"] // NS // 60 * 60 < window[1]]
        calls = [s for s in counted if is_call(s)]
        usage = v["usage"]
        assert usage["spans"] == len(counted), version
        assert usage["requests"] == len(calls), version
        assert usage["errors"] == sum(1 for s in calls if s["StatusCode"] == "Error"), version
        for key, column in (("input_tokens", "GenAIInputTokens"), ("output_tokens", "GenAIOutputTokens"),
                            ("total_tokens", "GenAITotalTokens")):
            assert usage[key] == sum(s[column] or 0 for s in counted), (version, key)
        assert_cost(usage["cost_usd"], counted)
        if not calls:
            assert usage["latency_ms"] is None
            continue
        durations = [int(s["Duration"]) for s in calls]
        latency = usage["latency_ms"]
        assert latency["avg"] == sum(durations) / len(durations) / 1e6
        for p in ("p50", "p95"):
            assert min(durations) / 1e6 * (1 - 1e-6) <= latency[p] <= max(durations) / 1e6 * (1 + 1e-6)


async def test_poml_style_name_round_trips_with_numeric_versions(api: httpx.AsyncClient, seeded: Seeded) -> None:
    body = await detail(api, P_EXPLAIN)
    check_versions(body, seeded, P_EXPLAIN)
    assert [v["version"] for v in body["versions"]] == ["1", "2", "10"]  # registered as 2, 10, 1
    for v in body["versions"]:
        assert v["template"] == TEMPLATES[v["version"]], "the first claim's template, not a later one"
        assert v["template_hash"] == hashlib.sha256(TEMPLATES[v["version"]].encode()).hexdigest()
    by_version = {v["version"]: v for v in body["versions"]}
    assert by_version["10"]["usage"]["errors"] == 1
    assert (await api.get("/api/v1/prompts/0001.explain_code")).json() == body  # unencoded dots


async def test_non_numeric_versions_follow_registration(api: httpx.AsyncClient, seeded: Seeded) -> None:
    body = await detail(api, P_SUMMARIZE)
    check_versions(body, seeded, P_SUMMARIZE)
    versions = [v["version"] for v in body["versions"]]
    assert set(versions) == {"v2", "v10", "beta"}
    assert versions.index("v2") < versions.index("v10"), "registration order, not string order"
    beta = body["versions"][versions.index("beta")]
    assert beta["template"] is None and beta["registered_at"] is None, "used but not registered: still shown"
    assert beta["usage"]["spans"] == 1 and beta["first_seen"] is not None
    v10 = body["versions"][versions.index("v10")]
    assert (v10["usage"]["spans"], v10["usage"]["requests"]) == (2, 1)  # the render span is a use, no call
    # a slash in the name works encoded and as a plain path
    assert (await api.get(f"/api/v1/prompts/{P_SUMMARIZE}")).json() == body


async def test_registry_numbers_unversioned_templates(api: httpx.AsyncClient, seeded: Seeded) -> None:
    body = await detail(api, P_GREETING)
    check_versions(body, seeded, P_GREETING)
    assert [(v["version"], v["template"], v["usage"]["spans"]) for v in body["versions"]] == [
        ("1", GREETING_TEMPLATES[0], 2), ("2", GREETING_TEMPLATES[1], 1)]


async def test_fixture_prompt_and_registry_only_prompt(api: httpx.AsyncClient, seeded: Seeded) -> None:
    fixture = await detail(api, "template-86eddd102733")
    check_versions(fixture, seeded, "template-86eddd102733")
    assert [v["version"] for v in fixture["versions"]] == ["v3"] and fixture["versions"][0]["template"]
    unused = await detail(api, UNUSED_PROMPT)
    check_versions(unused, seeded, UNUSED_PROMPT)
    [version] = unused["versions"]
    assert version["template"] == "Unused template A", "same instant: the smaller hash wins"
    assert version["usage"]["spans"] == 0 and version["usage"]["latency_ms"] is None
    assert version["first_seen"] is None


async def test_usage_window(api: httpx.AsyncClient, seeded: Seeded) -> None:
    start, end = "2026-01-10T12:05:00Z", "2026-01-10T12:05:30Z"  # end rounds up to 12:06
    body = await detail(api, P_EXPLAIN, start=start, end=end)
    assert (body["start"], body["end"]) == ("2026-01-10T12:05:00.000000000Z", "2026-01-10T12:06:00.000000000Z")
    window = (parse_time_ns(start) // NS, parse_time_ns(body["end"]) // NS)
    check_versions(body, seeded, P_EXPLAIN, window)
    counted = {v["version"]: v["usage"]["spans"] for v in body["versions"]}
    assert counted == {"1": 2, "2": 0, "10": 0}, "every version listed, usage only inside the window"
    open_ended = await detail(api, P_EXPLAIN, start="2026-01-10T12:05:00Z")
    check_versions(open_ended, seeded, P_EXPLAIN, (window[0], 2**32))
    assert open_ended["end"] is None
    everything = await detail(api, P_EXPLAIN)
    assert everything["start"] is everything["end"] is None


async def test_unknown_prompt_is_404(api: httpx.AsyncClient) -> None:
    for name in ("no-such-prompt", "0001.EXPLAIN_CODE", "0001.explain", "a/b/c"):
        resp = await api.get(f"/api/v1/prompts/{quote(name, safe='')}")
        assert resp.status_code == 404, name
        assert resp.json() == {"error": {"code": 404, "message": f"prompt {name!r} not found"}}


@pytest.mark.parametrize(("path", "params", "parameter"), [
    ("/api/v1/prompts", {"limit": 0}, "limit"),
    ("/api/v1/prompts", {"limit": 1001}, "limit"),
    ("/api/v1/prompts", {"limit": "ten"}, "limit"),
    ("/api/v1/prompts", {"offset": -1}, "offset"),
    (f"/api/v1/prompts/{P_EXPLAIN}", {"start": "2026-01-10T13:00:00Z", "end": "2026-01-10T12:00:00Z"}, "start"),
    (f"/api/v1/prompts/{P_EXPLAIN}", {"start": "last week"}, "start"),
    (f"/api/v1/prompts/{P_EXPLAIN}", {"end": "2026-02-30T00:00:00Z"}, "end"),
])
async def test_bad_parameters_are_400(api: httpx.AsyncClient, path: str, params: dict[str, Any],
                                      parameter: str) -> None:
    resp = await api.get(path, params=params)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["parameter"] == parameter
