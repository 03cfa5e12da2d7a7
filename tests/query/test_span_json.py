"""A trace's spans are written as JSON without a model per span (query/rows.py `span_json`):
the bytes are those SpanDetail's model writes, for every captured convention as ClickHouse
gives it back, for any text, and through the API, whose spans keep their order and are cut
at the most a read returns."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genai_helpers import batch_of, enrich_all, span
from otlp_fixtures import fixture_payloads, load_batch, FIXTURES
from test_query_api import FakeHost, build_batch, hand_built_specs, make_store, seed
from tracehouse.core.pdata import TraceBatch
from tracehouse.query.app import create_app
from tracehouse.query.routes import traces as trace_routes
from tracehouse.query.rows import LOG_EVENTS, span_from_row, span_json
from tracehouse.sinks.clickhouse.genai import GENAI_COLUMNS


def model_json(row: dict[str, Any]) -> bytes:
    """What the API wrote before: the span's model, messages included."""
    return span_from_row(row, messages=True).model_dump_json().encode()


@pytest.fixture(scope="module")
def stored(chdb_endpoint: str) -> Iterator[tuple[str, list[str], int]]:
    """Every captured payload (through the GenAI processors, so token counts and costs are
    set) and the hand-built traces (events, links, an error, costs) in one database."""
    database = f"tsj_{uuid.uuid4().hex[:12]}"
    batches = [load_batch(str(p.relative_to(FIXTURES))) for p in fixture_payloads()]
    batches = asyncio.run(enrich_all(batches)) + [build_batch(hand_built_specs(time.time_ns()))]
    asyncio.run(seed(chdb_endpoint, database, batches))
    spans = [s for b in batches for _, _, s in b.iter_spans()]
    yield database, sorted({s.trace_id.hex() for s in spans}), len(spans)


async def test_every_stored_span_is_written_as_its_model_writes_it(
        chdb_endpoint: str, stored: tuple[str, list[str], int]) -> None:
    database, trace_ids, span_count = stored
    store = make_store(chdb_endpoint, database)
    try:
        rows = await store.traces_spans(trace_ids, tenant="")
    finally:
        await store.close()
    assert len(rows) == span_count
    with_messages = 0
    for row in rows:
        assert span_json(row) == model_json(row), row["SpanName"]
        with_messages += json.loads(span_json(row))["input_messages"] is not None
    assert with_messages >= 15  # the conventions' messages were read back, not only plain spans


def stored_row(**fields: Any) -> dict[str, Any]:
    """A span row as sql/trace_spans.sql returns it."""
    row: dict[str, Any] = {
        "TraceId": "ab" * 16, "SpanId": "cd" * 8, "ParentSpanId": "", "TraceState": "", "SpanName": "chat",
        "SpanKind": "Client", "ServiceName": "svc", "start_ns": 1_767_225_600_123_456_789, "Duration": 2_000_000,
        "StatusCode": "Unset", "StatusMessage": "", "ResourceAttributes": {}, "ScopeName": "", "ScopeVersion": "",
        "SpanAttributes": {}, "event_times_ns": [], "Events.Name": [], "Events.Attributes": [],
        "Links.TraceId": [], "Links.SpanId": [], "Links.TraceState": [], "Links.Attributes": [],
        **{column: field.default for field, column in GENAI_COLUMNS}}
    row.update(fields)
    return row


ODD_TEXT = 'quote " backslash \\ slash / tab \t newline \n nul \x00 esc \x1b del \x7f line sep \u2028 é ☃ 😀'


def test_odd_text_events_links_log_events_and_costs_are_written_as_the_model_writes_them() -> None:
    messages = json.dumps([{"role": "user", "parts": [{"type": "text", "content": ODD_TEXT}]},
                           {"role": "assistant", "parts": [{"type": "tool_call", "name": "f", "arguments": {"x": 1}}]}])
    row = stored_row(
        SpanName=ODD_TEXT, StatusCode="Error", StatusMessage=ODD_TEXT, ResourceAttributes={ODD_TEXT: ODD_TEXT},
        SpanAttributes={"gen_ai.input.messages": messages, "gen_ai.output.messages": "not json", ODD_TEXT: ""},
        event_times_ns=[1_767_225_600_123_456_790], **{"Events.Name": ["gen_ai.choice"]},
        **{"Events.Attributes": [{"message": json.dumps({"role": "assistant", "content": ODD_TEXT})}]},
        **{"Links.TraceId": ["ef" * 16], "Links.SpanId": ["01" * 8], "Links.TraceState": ["k=v"],
           "Links.Attributes": [{"a": ODD_TEXT}]},
        GenAIInputTokens=12, GenAIOutputTokens=0, GenAITokensEstimated=True, GenAIInputCostUSD=Decimal("0.000000001"),
        GenAIOutputCostUSD=Decimal("123456.123456789"), GenAITotalCostUSD=Decimal("0.1"), GenAIProvider=ODD_TEXT)
    row[LOG_EVENTS] = [{"time_ns": 5, "name": "gen_ai.user.message", "LogAttributes": {"k": ODD_TEXT},
                        "Body": json.dumps({"content": ODD_TEXT})}]
    written = span_json(row)
    assert written == model_json(row)
    body = json.loads(written)
    assert body["input_messages"][0]["content"] == ODD_TEXT
    assert body["output_messages"] == [{"role": "assistant", "content": ODD_TEXT, "tool_calls": []}]
    assert body["genai"]["input_cost_usd"] == 1e-09 and body["genai"]["tokens_estimated"] is True
    assert body["log_events"][0]["attributes"] == {"k": ODD_TEXT}


texts = st.text(max_size=40)
attributes = st.dictionaries(texts, texts, max_size=5)
costs = st.none() | st.decimals(min_value=0, max_value=10**9, places=12, allow_nan=False, allow_infinity=False)


@settings(max_examples=150, deadline=None)
@given(name=texts, resource=attributes, attrs=attributes, content=texts, role=texts,
       events=st.lists(st.tuples(st.integers(0, 2**63 - 1), texts, attributes), max_size=3),
       tokens=st.none() | st.integers(0, 2**63 - 1), cost=costs, estimated=st.booleans())
def test_any_text_and_numbers_are_written_as_the_model_writes_them(
        name: str, resource: dict[str, str], attrs: dict[str, str], content: str, role: str,
        events: list[tuple[int, str, dict[str, str]]], tokens: int | None, cost: Decimal | None,
        estimated: bool) -> None:
    attrs["gen_ai.input.messages"] = json.dumps([{"role": role, "parts": [{"type": "text", "content": content}]}])
    row = stored_row(SpanName=name, ResourceAttributes=resource, SpanAttributes=attrs,
                     event_times_ns=[t for t, _, _ in events], **{"Events.Name": [n for _, n, _ in events]},
                     **{"Events.Attributes": [a for _, _, a in events]},
                     GenAIInputTokens=tokens, GenAITotalCostUSD=cost, GenAITokensEstimated=estimated)
    assert span_json(row) == model_json(row)


# ------------------------------------------------------------------------------ through the API

TRACE = 0x5EED
# (span id, start offset): two spans start at once (the span id orders them), one is older
# than the root's first child, the ids are not in start order.
SPANS = [(1, 0), (7, 40), (3, 10), (4, 10), (2, 30), (8, 20), (6, 50), (5, 5)]


@pytest.fixture(scope="module")
def one_trace(chdb_endpoint: str) -> Iterator[str]:
    database = f"tsj_{uuid.uuid4().hex[:12]}"
    t0 = time.time_ns() - 60 * 10**9
    messages = json.dumps([{"role": "user", "parts": [{"type": "text", "content": "hi"}]}])
    spans = [span(TRACE, sid, t0 + offset * 1000, {"gen_ai.request.model": "gpt-4o", "gen_ai.input.messages": messages},
                  parent=1 if sid != 1 else 0) for sid, offset in SPANS]
    batch: TraceBatch = batch_of(spans)
    asyncio.run(seed(chdb_endpoint, database, asyncio.run(enrich_all([batch]))))
    yield database


async def read_trace(chdb_endpoint: str, database: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The API's answer and, read beside it, what the model would have written of each span."""
    store = make_store(chdb_endpoint, database)
    app = create_app(store, FakeHost())
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://q") as api:
            response = await api.get(f"/api/v1/traces/{TRACE:032x}")
        rows = await store.trace_spans(f"{TRACE:032x}", tenant="")
    finally:
        await store.close()
    assert response.status_code == 200, response.text
    return response.json(), [json.loads(model_json(row)) for row in rows]


async def test_a_trace_answers_its_spans_by_start_time_as_the_model_writes_them(
        chdb_endpoint: str, one_trace: str) -> None:
    body, expected = await read_trace(chdb_endpoint, one_trace)
    assert body["spans"] == expected
    assert [int(s["span_id"], 16) for s in body["spans"]] == [1, 5, 3, 4, 8, 2, 7, 6]
    assert body["truncated"] is False and body["totals"]["span_count"] == len(SPANS)
    assert all(s["input_messages"] == [{"role": "user", "content": "hi", "tool_calls": []}] for s in body["spans"])


async def test_a_trace_past_the_most_a_read_returns_is_cut_after_its_earliest_spans(
        chdb_endpoint: str, one_trace: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trace_routes, "MAX_TRACE_SPANS", 5)
    body, expected = await read_trace(chdb_endpoint, one_trace)
    assert body["truncated"] is True
    assert body["spans"] == expected[:5]
    assert [int(s["span_id"], 16) for s in body["spans"]] == [1, 5, 3, 4, 8]
    assert body["totals"]["span_count"] == 5
