"""Every ClickHouse panel of the provisioned GenAI dashboards runs on the real engine (chDB)
and shows what the seeded spans add up to.

The database is seeded through the pipeline (captured OTLP fixtures and hand-built GenAI
calls, enriched by the real GenAI processors and written by the real ClickHouse exporter),
and then the spans table is emptied: a panel that read raw spans instead of the rollups
would come back empty. Each panel's SQL is turned into what Grafana sends (tests/grafana_sql.py:
the plugin's macros, `$__conditionalAll`, template variables) for two selections — every
variable on "All", and a narrow one — and two time ranges; every query must return rows, and
the token, cost, request and latency figures must equal sums computed here from the spans.
"""

from __future__ import annotations

import calendar
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from genai_seed import HAND_END, HAND_START, P_EXPLAIN, P_GREETING, P_SUMMARIZE, Seeded, in_rollup, is_call, seeded_data
from grafana_sql import ALL, TimeRange, Value, clickhouse_targets, to_grafana_sql
from tracehouse.query.params import parse_time_ns
from tracehouse.sinks.clickhouse.client import open_client

pytestmark = pytest.mark.integration

DASHBOARDS = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboards"
NS = 1_000_000_000


def seconds(text: str) -> int:
    return parse_time_ns(text) // NS


HAND = TimeRange(seconds(HAND_START), seconds(HAND_END), interval_s=30)  # below the rollup's minute
WHOLE = TimeRange(seconds("2026-01-01T00:00:00Z"), seconds("2026-12-01T00:00:00Z"), interval_s=6 * 3600)
RANGES = {"hand-built minutes": HAND, "whole year": WHOLE}

VARIABLES = ("service", "provider", "model", "prompt", "version")
EVERYTHING: dict[str, Value] = {name: ALL for name in VARIABLES}
NARROW: dict[str, Value] = {"service": ["chat-api"], "provider": ["openai"], "model": ["gpt-4o", "gpt-4o-mini"],
                            "prompt": [P_EXPLAIN, P_SUMMARIZE, P_GREETING], "version": ALL}
SELECTIONS = {"all": EVERYTHING, "narrow": NARROW}


# ------------------------------------------------------------------------------ the model


def model_of(span: Mapping[str, Any]) -> str:
    return str(span["GenAIRequestModel"] or span["GenAIResponseModel"])


def minute_of(span: Mapping[str, Any]) -> int:
    return int(span["ts_ns"]) // (60 * NS) * 60


def cost(span: Mapping[str, Any]) -> Decimal:
    return span["GenAITotalCostUSD"] or Decimal(0)


def tokens(span: Mapping[str, Any], column: str) -> int:
    return int(span[column] or 0)


def selected(value: str, choice: Value) -> bool:
    return choice == ALL or value in choice


@dataclass(frozen=True)
class View:
    """What one panel query should see: the usage rows' spans in the range and selection."""

    seeded: Seeded
    time_range: TimeRange
    selection: Mapping[str, Value]
    ch: Any  # the engine, for the t-digest figures the latency panels are compared with

    def in_range(self, span: Mapping[str, Any]) -> bool:
        return self.time_range.start_s <= minute_of(span) <= self.time_range.end_s

    def usage(self, *, prompts_only: bool = False) -> list[dict[str, Any]]:
        s = self.selection
        return [span for span in self.seeded.raw
                if in_rollup(span) and self.in_range(span)
                and selected(span["ServiceName"], s["service"]) and selected(span["GenAIProvider"], s["provider"])
                and selected(model_of(span), s["model"]) and selected(span["GenAIPromptName"], s["prompt"])
                and (not prompts_only or (span["GenAIPromptName"] != ""
                                          and selected(span["GenAIPromptVersion"], s["version"])))]

    def bucket(self, span: Mapping[str, Any]) -> int:
        step = max(self.time_range.interval_s, 60)
        return minute_of(span) // step * step


def calls(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [span for span in spans if is_call(span)]


def by_bucket_and_series(view: View, spans: list[dict[str, Any]], series: Callable[[dict[str, Any]], str],
                         value: Callable[[list[dict[str, Any]]], Any], *, calls_only_groups: bool
                         ) -> dict[tuple[int, str], Any]:
    """A long-format time series as the panels compute it (with their HAVING rule)."""
    groups: dict[tuple[int, str], list[dict[str, Any]]] = defaultdict(list)
    for span in spans:
        groups[(view.bucket(span), series(span))].append(span)
    return {key: value(group) for key, group in groups.items() if not calls_only_groups or calls(group)}


def overview_series(span: Mapping[str, Any]) -> str:
    return f"{span['GenAIProvider']} / {model_of(span)}"


def prompt_series(span: Mapping[str, Any]) -> str:
    return f"{span['GenAIPromptName']} @ {span['GenAIPromptVersion']}"


# ------------------------------------------------------------------------------ reading results


def epoch(value: datetime) -> int:
    return calendar.timegm(value.utctimetuple())


def as_series(rows: list[dict[str, Any]], column: str) -> dict[tuple[int, str], Any]:
    return {(epoch(row["time"]), row["series"]): row[column] for row in rows}


def approx_map(expected: Mapping[Any, Any]) -> Any:
    return {key: pytest.approx(float(value), rel=1e-9, abs=1e-12) for key, value in expected.items()}


def digest_ms(ch: Any, durations_ns: list[int]) -> tuple[float, float, float, float]:
    """p50/p90/p95/p99 in ms of these durations as ClickHouse's t-digest gives them, computed
    from the spans in a query of its own (small samples: merged states give the same)."""
    values = ",".join(str(d) for d in durations_ns)
    q = ch.query(f"SELECT quantilesTDigest(0.5, 0.9, 0.95, 0.99)(d) FROM "
                     f"(SELECT arrayJoin([{values}]) AS d)").result_rows[0][0]
    return q[0] / 1e6, q[1] / 1e6, q[2] / 1e6, q[3] / 1e6


def check_p95_series(rows: list[dict[str, Any]], view: View, spans: list[dict[str, Any]],
                     series: Callable[[dict[str, Any]], str]) -> None:
    """A p95 latency time series: one point per (bucket, series) with model calls, each the
    t-digest p95 of those calls' durations."""
    expected = by_bucket_and_series(view, spans, series, lambda g: [s["Duration"] for s in calls(g)],
                                    calls_only_groups=True)
    got = as_series(rows, "p95_ms")
    assert got.keys() == expected.keys()
    for key, durations in expected.items():
        assert got[key] == pytest.approx(digest_ms(view.ch, durations)[2], rel=1e-6)


def only(rows: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(rows) == 1, rows
    return rows[0]


# ------------------------------------------------------------------------------ expectations


def check_overview(title: str, rows: list[dict[str, Any]], view: View) -> None:
    spans = view.usage()
    model_calls = calls(spans)
    sum_of = {"Input tokens": "GenAIInputTokens", "Output tokens": "GenAIOutputTokens"}
    if title == "Requests":
        assert only(rows)["Requests"] == len(model_calls)
    elif title in sum_of:
        assert only(rows)[title] == sum(tokens(s, sum_of[title]) for s in spans)
    elif title == "Cost":
        assert only(rows)["Cost (USD)"] == pytest.approx(float(sum(map(cost, spans))), rel=1e-9)
    elif title == "Error rate":
        errors = sum(1 for s in model_calls if s["StatusCode"] == "Error")
        assert only(rows)["Error rate"] == pytest.approx(errors / len(model_calls))
    elif title == "Unpriced requests":
        assert only(rows)["Unpriced requests"] == sum(1 for s in model_calls if s["GenAITotalCostUSD"] is None)
    elif title.endswith("by provider / model"):
        check_model_series(title, rows, view, spans)
    elif title == "Latency per model (p50 / p95 / p99)":
        groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for span in model_calls:
            groups[(span["GenAIProvider"], model_of(span))].append(span)
        assert {(r["Provider"], r["Model"]): r["Requests"] for r in rows} == {k: len(v) for k, v in groups.items()}
        for row in rows:
            durations = [s["Duration"] / 1e6 for s in groups[(row["Provider"], row["Model"])]]
            assert row["Mean (ms)"] == pytest.approx(sum(durations) / len(durations))
            assert row["Errors"] == sum(1 for s in groups[(row["Provider"], row["Model"])] if s["StatusCode"] == "Error")
            p50, _, p95, p99 = digest_ms(view.ch, [s["Duration"] for s in groups[(row["Provider"], row["Model"])]])
            assert (row["p50 (ms)"], row["p95 (ms)"], row["p99 (ms)"]) == pytest.approx((p50, p95, p99), rel=1e-6)
    elif title == "Top prompts by cost":
        linked = [s for s in spans if s["GenAIPromptName"]]
        expected = defaultdict(Decimal)
        uses: Counter[tuple[str, str]] = Counter()
        for span in linked:
            key = (span["GenAIPromptName"], span["GenAIPromptVersion"])
            expected[key] += cost(span)
            uses[key] += 1
        top = sorted(expected.items(), key=lambda kv: (-kv[1], -uses[kv[0]]))[:10]
        assert [(r["Prompt"], r["Version"]) for r in rows][:len(top)] == [k for k, _ in top] or \
            [r["Cost (USD)"] for r in rows] == sorted((r["Cost (USD)"] for r in rows), reverse=True)
        assert {(r["Prompt"], r["Version"]): r["Cost (USD)"] for r in rows} == approx_map(dict(top))
        assert {(r["Prompt"], r["Version"]): r["Uses"] for r in rows} == {k: uses[k] for k, _ in top}
    elif title == "Most expensive traces":
        check_expensive_traces(rows, view)
    elif title == "Tokens: reported vs estimated":
        row = only(rows)
        estimated = sum(tokens(s, "GenAITotalTokens") for s in spans if s["GenAITokensEstimated"])
        assert row["Estimated"] == estimated
        assert row["Reported"] + row["Estimated"] == sum(tokens(s, "GenAITotalTokens") for s in spans)
    elif title == "Unpriced models":
        unpriced = Counter((s["GenAIProvider"], model_of(s)) for s in model_calls if s["GenAITotalCostUSD"] is None)
        assert {(r["Provider"], r["Model"]): r["Unpriced requests"] for r in rows} == dict(unpriced)
    else:
        raise AssertionError(f"no expectation for panel {title!r}: add one")


def check_model_series(title: str, rows: list[dict[str, Any]], view: View, spans: list[dict[str, Any]]) -> None:
    def total(column: str) -> Callable[[list[dict[str, Any]]], Any]:
        return lambda group: sum(tokens(s, column) for s in group)
    values: dict[str, tuple[str, Callable[[list[dict[str, Any]]], Any]]] = {
        "Requests by provider / model": ("requests", lambda group: len(calls(group))),
        "Cost by provider / model": ("cost_usd", lambda group: sum(map(cost, group))),
        "Input tokens by provider / model": ("input_tokens", total("GenAIInputTokens")),
        "Output tokens by provider / model": ("output_tokens", total("GenAIOutputTokens")),
        "Error rate by provider / model": ("error_rate", lambda group: sum(
            1 for s in calls(group) if s["StatusCode"] == "Error") / len(calls(group))),
    }
    if title == "Latency p95 by provider / model":
        check_p95_series(rows, view, spans, overview_series)
        return
    column, value = values[title]
    expected = by_bucket_and_series(view, spans, overview_series, value, calls_only_groups=True)
    assert as_series(rows, column) == approx_map(expected)


def check_expensive_traces(rows: list[dict[str, Any]], view: View) -> None:
    spans_of: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for span in view.seeded.raw:
        spans_of[span["TraceId"]].append(span)
    s = view.selection

    def matches(trace: list[dict[str, Any]]) -> bool:
        def any_of(values: set[str], choice: Value) -> bool:
            return choice == ALL or bool(values & set(choice))
        return (any(view.time_range.start_s <= span["ts_ns"] // NS <= view.time_range.end_s for span in trace)
                and any_of({x["ServiceName"] for x in trace}, s["service"])
                and any_of({x["GenAIProvider"] for x in trace} - {""}, s["provider"])
                and any_of({model_of(x) for x in trace} - {""}, s["model"])
                and any_of({x["GenAIPromptName"] for x in trace} - {""}, s["prompt"]))
    expected = {trace_id: sum(map(cost, trace)) for trace_id, trace in spans_of.items()
                if matches(trace) and sum(map(cost, trace)) > 0}
    top = dict(sorted(expected.items(), key=lambda kv: -kv[1])[:20])
    assert {r["TraceId"]: r["Cost (USD)"] for r in rows} == approx_map(top)
    assert [r["Cost (USD)"] for r in rows] == sorted((r["Cost (USD)"] for r in rows), reverse=True)
    for row in rows:
        trace = spans_of[row["TraceId"]]
        assert row["Spans"] == len(trace)
        assert row["Tokens"] == sum(tokens(x, "GenAITotalTokens") for x in trace)
        assert row["Errors"] == sum(1 for x in trace if x["StatusCode"] == "Error")


def check_prompts(title: str, rows: list[dict[str, Any]], view: View) -> None:
    spans = view.usage(prompts_only=True)
    versions = Counter((s["GenAIPromptName"], s["GenAIPromptVersion"]) for s in spans)
    if title == "Prompts used":
        assert only(rows)["Prompts"] == len({name for name, _ in versions})
    elif title == "Versions used":
        assert only(rows)["Versions"] == len(versions)
    elif title == "Uses":
        assert only(rows)["Uses"] == len(spans)
    elif title == "Cost":
        assert only(rows)["Cost (USD)"] == pytest.approx(float(sum(map(cost, spans))), rel=1e-9)
    elif title == "Uses per prompt version":
        assert as_series(rows, "uses") == by_bucket_and_series(view, spans, prompt_series, len,
                                                               calls_only_groups=False)
    elif title == "Cost per prompt version":
        expected = by_bucket_and_series(view, spans, prompt_series, lambda g: sum(map(cost, g)),
                                        calls_only_groups=False)
        assert as_series(rows, "cost_usd") == approx_map(expected)
    elif title == "Tokens per request per prompt version":
        expected = by_bucket_and_series(view, spans, prompt_series, lambda g: sum(
            tokens(s, "GenAITotalTokens") for s in g) / len(calls(g)), calls_only_groups=True)
        assert as_series(rows, "tokens_per_request") == approx_map(expected)
    elif title == "Latency p95 per prompt version":
        check_p95_series(rows, view, spans, prompt_series)
    elif title == "Prompt versions compared":
        check_comparison(rows, view, spans, versions)
    elif title in ("Scores per prompt version", "Mean score per prompt version"):
        check_scores(title, rows, view)
    elif title == "Prompt registry":
        registry = view.seeded.registry
        names = {r["name"] for r in registry if selected(r["name"], view.selection["prompt"])}
        expected = {(r["name"], r["version"]) for r in registry if r["name"] in names}
        assert {(r["Prompt"], r["Version"]): r["Template"] for r in rows} == {
            key: min((r for r in registry if (r["name"], r["version"]) == key),
                     key=lambda r: (r["registered_ns"], r["hash"]))["template"] for key in expected}
    else:
        raise AssertionError(f"no expectation for panel {title!r}: add one")


def check_comparison(rows: list[dict[str, Any]], view: View, spans: list[dict[str, Any]],
                     versions: Counter[tuple[str, str]]) -> None:
    assert {(r["Prompt"], r["Version"]): r["Uses"] for r in rows} == dict(versions)
    registered = {(r["name"], r["version"]) for r in view.seeded.registry}
    for row in rows:
        key = (row["Prompt"], row["Version"])
        group = [s for s in spans if (s["GenAIPromptName"], s["GenAIPromptVersion"]) == key]
        assert row["Requests"] == len(calls(group))
        assert row["Cost (USD)"] == pytest.approx(float(sum(map(cost, group))), rel=1e-9, abs=1e-12)
        assert (row["Registered"] is not None) == (key in registered), key


def scores_in_view(view: View) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
    """(prompt, version, score name) -> the seeded live scores the panels should count: made in
    the time range, on a span (each hand-built trace is one span) linked to a prompt that the
    selection keeps."""
    s = view.selection
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for score in view.seeded.scores:
        span = score["span"]
        at_s = score["ts_ns"] / NS
        if not view.time_range.start_s <= at_s <= view.time_range.end_s or not span["GenAIPromptName"]:
            continue
        if (selected(span["ServiceName"], s["service"]) and selected(span["GenAIProvider"], s["provider"])
                and selected(model_of(span), s["model"]) and selected(span["GenAIPromptName"], s["prompt"])
                and selected(span["GenAIPromptVersion"], s["version"])):
            groups[(span["GenAIPromptName"], span["GenAIPromptVersion"], score["name"])].append(score)
    return groups


def check_scores(title: str, rows: list[dict[str, Any]], view: View) -> None:
    groups = scores_in_view(view)
    if title == "Scores per prompt version":
        assert {(r["Prompt"], r["Version"], r["Score"]): r["Scores"] for r in rows} == {
            key: len(scores) for key, scores in groups.items()}
        for row in rows:
            scores = groups[(row["Prompt"], row["Version"], row["Score"])]
            numbers = [x["number"] for x in scores if x["number"] is not None]
            if numbers:
                assert (row["Mean"], row["Min"], row["Max"]) == pytest.approx(
                    (sum(numbers) / len(numbers), min(numbers), max(numbers)))
            else:
                assert (row["Mean"], row["Min"], row["Max"]) == (None, None, None)
            labels = Counter(x["label"] for x in scores if x["label"])
            assert row["Labels"] == ", ".join(f"{label}: {n}" for label, n in sorted(labels.items()))
    else:
        step = max(view.time_range.interval_s, 60)
        expected: dict[tuple[int, str], list[float]] = defaultdict(list)
        for (prompt, version, name), scores in groups.items():
            for score in scores:
                if score["number"] is not None:
                    bucket = int(score["ts_ns"] // NS) // step * step
                    expected[(bucket, f"{prompt} @ {version} · {name}")].append(score["number"])
        assert as_series(rows, "mean_score") == approx_map(
            {key: sum(values) / len(values) for key, values in expected.items()})


CHECKS = {"genai-overview.json": check_overview, "prompts.json": check_prompts}


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def seeded(chdb_endpoint: str) -> Seeded:
    return seeded_data(chdb_endpoint)


@pytest.fixture(scope="module")
def ch(seeded: Seeded) -> Iterator[Any]:
    client = open_client(seeded.endpoint, database=seeded.database)
    yield client
    client.close()


def load(name: str) -> dict[str, Any]:
    board: dict[str, Any] = json.loads((DASHBOARDS / name).read_text())
    return board


def run(ch: Any, sql: str) -> list[dict[str, Any]]:
    result = ch.query(sql)
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


def assert_spans_table_is_empty(ch: Any) -> None:
    assert run(ch, "SELECT count() AS n FROM otel_traces") == [{"n": 0}]


# ------------------------------------------------------------------------------ tests


@pytest.mark.parametrize("name", sorted(CHECKS))
@pytest.mark.parametrize("selection", sorted(SELECTIONS))
@pytest.mark.parametrize("period", sorted(RANGES))
def test_every_panel_runs_and_adds_up(name: str, selection: str, period: str, seeded: Seeded, ch: Any) -> None:
    assert_spans_table_is_empty(ch)  # the panels can only be reading rollups
    board = load(name)
    view = View(seeded, RANGES[period], SELECTIONS[selection], ch)
    targets = clickhouse_targets(board)
    assert len(targets) >= 10
    empty = []
    for title, raw_sql in targets:
        rows = run(ch, to_grafana_sql(raw_sql, view.selection, view.time_range))
        if not rows:
            empty.append(title)
        CHECKS[name](title, rows, view)
    # Some panels legitimately show nothing for a narrow filter (no unpriced gpt-4o calls);
    # with everything selected, every panel has data.
    if selection == "all":
        assert empty == [], f"panels without rows: {empty}"
    else:
        assert len(empty) <= 2, f"panels without rows: {empty}"


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_template_variables_list_what_the_rollup_holds(name: str, seeded: Seeded, ch: Any) -> None:
    board = load(name)
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert {"service", "provider", "model", "prompt"} <= variables.keys()
    view = View(seeded, WHOLE, EVERYTHING, ch)
    spans = view.usage()
    expected = {"service": {s["ServiceName"] for s in spans}, "provider": {s["GenAIProvider"] for s in spans},
                "model": {model_of(s) for s in spans}, "prompt": {s["GenAIPromptName"] for s in spans},
                "version": {s["GenAIPromptVersion"] for s in spans if s["GenAIPromptName"]}}
    for variable in variables.values():
        if variable["type"] != "query":
            continue
        assert variable["multi"] and variable["includeAll"], variable["name"]
        sql = variable["query"] if isinstance(variable["query"], str) else variable["query"]["rawSql"]
        rows = run(ch, to_grafana_sql(sql, EVERYTHING, WHOLE))
        values = {next(iter(row.values())) for row in rows}
        assert values == expected[variable["name"]] - {""}, variable["name"]


def test_a_narrow_selection_changes_the_figures(seeded: Seeded, ch: Any) -> None:
    """The filters are wired: the same panel gives different, correct numbers per selection."""
    cost_sql = next(sql for title, sql in clickhouse_targets(load("genai-overview.json")) if title == "Cost")
    figures = {}
    for service in ("chat-api", "batch-worker", "docs-bot"):
        selection = {**EVERYTHING, "service": [service]}
        figures[service] = only(run(ch, to_grafana_sql(cost_sql, selection, HAND)))["Cost (USD)"]
        expected = sum(map(cost, View(seeded, HAND, selection, ch).usage()))
        assert figures[service] == pytest.approx(float(expected), rel=1e-9)
    assert len(set(figures.values())) == 3


def test_a_whole_trace_score_counts_once_per_prompt_version(chdb_endpoint: str) -> None:
    """A trace with two model calls of one prompt version (two models) and a score on the
    whole trace: the version has one score, under any model selection that keeps a call."""
    import asyncio
    import uuid

    from genai_helpers import batch_of, enrich_all, span
    from tracehouse.core.component import ComponentID, Kind, Settings
    from tracehouse.core.testing import TestHost
    from tracehouse.sinks.clickhouse.config import ClickHouseExporterConfig
    from tracehouse.sinks.clickhouse.exporter import ClickHouseExporter
    from tracehouse.sinks.clickhouse.scores import insert_scores

    database = f"tg_scores_{uuid.uuid4().hex[:8]}"
    t0 = HAND.start_s * NS + 5 * NS
    prompt = {"traceloop.prompt.key": "one-version", "traceloop.prompt.version": "3"}

    def call(span_id: int, model: str) -> Any:
        return span(0xABC, span_id, t0 + span_id * 1000, {"gen_ai.operation.name": "chat", "gen_ai.provider.name":
                                                          "openai", "gen_ai.request.model": model, **prompt},
                    parent=1)

    async def seed() -> None:
        [batch] = await enrich_all([batch_of([span(0xABC, 1, t0, {}, name="agent"), call(2, "gpt-4o"),
                                              call(3, "gpt-4o-mini")], service="chat-api")])
        exporter = ClickHouseExporter(Settings(ComponentID("clickhouse"), Kind.EXPORTER),
                                      ClickHouseExporterConfig(endpoint=chdb_endpoint, database=database))
        await exporter.start(TestHost())
        try:
            await exporter.consume(batch)
        finally:
            await exporter.shutdown()

    asyncio.run(seed())
    client = open_client(chdb_endpoint, database=database)
    try:
        trace_id = (0xABC).to_bytes(16, "big").hex()
        at = datetime.fromtimestamp(t0 / NS + 10, tz=UTC)
        insert_scores(client, f"{database}.otel_traces_scores", "", [
            {"ScoreId": "whole", "TraceId": trace_id, "Name": "helpfulness", "DataType": "numeric",
             "NumericValue": 0.5, "StringValue": "", "Timestamp": at},
            {"ScoreId": "on-mini", "TraceId": trace_id, "SpanId": (3).to_bytes(8, "big").hex(), "Name": "helpfulness",
             "DataType": "numeric", "NumericValue": 1.0, "StringValue": "", "Timestamp": at}])
        targets = dict(clickhouse_targets(load("prompts.json")))
        for models, expected in ((ALL, (2, 0.75)), (["gpt-4o"], (1, 0.5)), (["gpt-4o-mini"], (2, 0.75))):
            selection = {**EVERYTHING, "model": models}
            [row] = run(client, to_grafana_sql(targets["Scores per prompt version"], selection, HAND))
            assert (row["Prompt"], row["Version"], row["Score"]) == ("one-version", "3", "helpfulness")
            assert (row["Scores"], row["Mean"]) == pytest.approx(expected), models
            [point] = run(client, to_grafana_sql(targets["Mean score per prompt version"], selection, HAND))
            assert point["mean_score"] == pytest.approx(expected[1])
    finally:
        client.close()
