"""Rollups kept by materialized views, and the gate that keeps retried spans out of them.

Expected numbers are computed from the raw spans table (or the payloads), never from the
rollups themselves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from genai_helpers import batch_of, enrich, span, split_per_span
from otlp_fixtures import load_batch as load
from rollups import assert_rollups_match_spans
from tracehouse.core.component import ComponentID, Kind, Settings
from tracehouse.core.pdata import TraceBatch
from tracehouse.core.testing import TestHost
from tracehouse.sinks.clickhouse.config import ClickHouseExporterConfig
from tracehouse.sinks.clickhouse.exporter import ClickHouseExporter

PAYLOADS = ("otel-genai-openai-v2/http-protobuf.pb", "openinference/http-protobuf.pb", "mlflow/http-protobuf.pb",
            "otel-js-vercel-ai-style/http-json.otlp.json")
T0 = 1_795_000_000_000_000_000


@pytest.fixture
def host() -> TestHost:
    return TestHost()


@pytest.fixture
async def exporter(chdb_endpoint: str, database: str, host: TestHost) -> AsyncIterator[ClickHouseExporter]:
    exp = ClickHouseExporter(Settings(ComponentID("clickhouse"), Kind.EXPORTER),
                             ClickHouseExporterConfig(endpoint=chdb_endpoint, database=database), None)
    await exp.start(host)
    yield exp
    await exp.shutdown()



def raw_spans(client: Client, database: str) -> list[dict[str, Any]]:
    result = client.query(f"""
        SELECT TraceId, SpanId, ParentSpanId, SpanName, ServiceName, StatusCode, Duration,
               toStartOfMinute(Timestamp) AS Minute, GenAISpanKind, GenAIProvider, GenAIRequestModel,
               GenAIResponseModel, GenAIPromptName, GenAIPromptVersion, GenAIInputTokens, GenAIOutputTokens,
               GenAICachedInputTokens, GenAIReasoningTokens, GenAITotalTokens, GenAITotalCostUSD
        FROM {database}.otel_traces""")
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


def n(value: int | None) -> int:
    return value or 0


def is_call(s: dict[str, Any]) -> bool:
    return s["GenAISpanKind"] in ("llm", "embedding", "reranker") or (
        s["GenAISpanKind"] == "" and bool(s["GenAIRequestModel"] or s["GenAIResponseModel"]))


async def test_rollups_equal_sums_over_raw_spans_and_retries_count_once(exporter, client, database, host) -> None:
    batches = [await enrich(load(p)) for p in PAYLOADS]
    for batch in batches:
        await exporter.consume(batch)
    # Every span again, one request per span: a client retrying after lost acknowledgements.
    retried = [await enrich(one) for batch in batches for one in split_per_span(batch)]
    for batch in retried:
        await exporter.consume(batch)

    spans = raw_spans(client, database)
    sent = sum(b.span_count for b in batches)
    assert len(spans) == sent == len({(s["TraceId"], s["SpanId"]) for s in spans})
    assert exporter.skipped_duplicates == sent
    assert host.telemetry.registry.get_sample_value(
        "tracehouse_exporter_duplicate_spans_total", {"exporter": "clickhouse"}) == sent

    traces: dict[str, dict[str, Any]] = {}
    for s in spans:
        t = traces.setdefault(s["TraceId"], {"spans": 0, "errors": 0, "tokens": 0, "cost": Decimal(0),
                                             "root": "", "models": set()})
        t["spans"] += 1
        t["errors"] += s["StatusCode"] == "Error"
        t["tokens"] += n(s["GenAITotalTokens"])
        t["cost"] += s["GenAITotalCostUSD"] or 0
        if not s["ParentSpanId"]:
            t["root"] = s["SpanName"]
        if s["GenAIRequestModel"] or s["GenAIResponseModel"]:
            t["models"].add(s["GenAIRequestModel"] or s["GenAIResponseModel"])
    rollup = client.query(f"""
        SELECT TraceId, sum(Spans), sum(ErrorSpans), ifNull(sum(TotalTokens), 0), ifNull(sum(TotalCostUSD), 0),
               max(RootSpanName),
               groupUniqArrayArray(Models)
        FROM {database}.otel_traces_trace_rollup GROUP BY TraceId""").result_rows
    assert {r[0]: {"spans": r[1], "errors": r[2], "tokens": r[3], "cost": r[4], "root": r[5], "models": set(r[6])}
            for r in rollup} == traces
    assert sum(t["tokens"] for t in traces.values()) > 0 and any(t["errors"] for t in traces.values())

    usage: dict[tuple[Any, ...], list[Any]] = {}
    for s in spans:
        if not (is_call(s) or s["GenAIPromptName"]):
            continue
        key = (s["Minute"], s["ServiceName"], s["GenAIProvider"], s["GenAIRequestModel"], s["GenAIResponseModel"],
               s["GenAIPromptName"], s["GenAIPromptVersion"])
        row = usage.setdefault(key, [0, 0, 0, 0, 0, 0, 0, Decimal(0)])
        call = is_call(s)
        row[0] += call
        row[1] += call and s["StatusCode"] == "Error"
        for k, column in enumerate(("GenAIInputTokens", "GenAIOutputTokens", "GenAICachedInputTokens",
                                    "GenAIReasoningTokens", "GenAITotalTokens"), start=2):
            row[k] += n(s[column])
        row[7] += s["GenAITotalCostUSD"] or 0
    got = client.query(f"""
        SELECT Minute, ServiceName, Provider, RequestModel, ResponseModel, PromptName, PromptVersion,
               sum(Requests), sum(Errors), sum(InputTokens), sum(OutputTokens), sum(CachedInputTokens),
               sum(ReasoningTokens), sum(TotalTokens), sum(TotalCostUSD)
        FROM {database}.otel_traces_genai_usage_1m GROUP BY ALL""").result_rows
    assert {tuple(r[:7]): list(r[7:]) for r in got} == usage
    assert sum(row[0] for row in usage.values()) == sum(is_call(s) for s in spans) > 0
    # The shared helper (tests/rollups.py) agrees with the sums above, and checks every column.
    assert_rollups_match_spans(client, database)


async def test_a_span_twice_in_one_batch_is_stored_once(exporter, client, database) -> None:
    batch = await enrich(load("openinference/http-protobuf.pb"))
    twice = TraceBatch.merge([batch, await enrich(load("openinference/http-protobuf.pb"))])
    await exporter.consume(twice)
    stored = client.query(f"SELECT count(), uniqExact(TraceId, SpanId) FROM {database}.otel_traces").result_rows[0]
    assert stored == (batch.span_count, batch.span_count)
    requests = client.query(f"SELECT sum(Requests) FROM {database}.otel_traces_genai_usage_1m").result_rows[0][0]
    assert requests == 5  # the fixture's five chat calls, once each
    assert_rollups_match_spans(client, database)


async def test_later_spans_of_a_stored_trace_are_not_mistaken_for_retries(exporter, client, database) -> None:
    llm = {"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o", "gen_ai.operation.name": "chat",
           "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 5}
    await exporter.consume(await enrich(batch_of([span(7, 1, T0, llm, name="root")])))
    await exporter.consume(await enrich(batch_of([span(7, 2, T0 + 10, llm, parent=1), span(7, 3, T0 + 20, llm, parent=1)])))
    assert client.query(f"SELECT count() FROM {database}.otel_traces").result_rows[0][0] == 3
    rollup = client.query(f"""SELECT sum(Spans), sum(TotalTokens), max(RootSpanName)
                              FROM {database}.otel_traces_trace_rollup GROUP BY TraceId""").result_rows
    assert rollup == [(3, 45, "root")]
    assert exporter.skipped_duplicates == 0
