"""`gen_ai.evaluation.result` -> score rows (sinks/clickhouse/scores.py), the function the span
path (the ClickHouse exporter) and the logs pipeline share, and the exporter writing them.

The event payloads are made to the GenAI semantic conventions (no SDK emits evaluation
events); the typed values are what an SDK sends, the text ones what the exporter's attribute
maps hold.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from tracehouse.core.component import ComponentID, Kind, Settings
from tracehouse.core.pdata import TraceBatch, key_values
from tracehouse.core.testing import TestHost
from tracehouse.sinks.clickhouse.columns import batch_to_columns
from tracehouse.sinks.clickhouse.config import ClickHouseExporterConfig
from tracehouse.sinks.clickhouse.exporter import ClickHouseExporter
from tracehouse.sinks.clickhouse.scores import evaluation_score

TRACE, SPAN = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"
AT = 1_772_359_200_123_000_000  # 2026-03-01T10:00:00.123Z
NAME, VALUE, LABEL, WHY = ("gen_ai.evaluation.name", "gen_ai.evaluation.score.value", "gen_ai.evaluation.score.label",
                           "gen_ai.evaluation.explanation")


def test_a_value_and_a_label_make_a_numeric_score_with_its_label() -> None:
    row = evaluation_score(TRACE, SPAN, {NAME: "relevance", VALUE: 0.75, LABEL: "relevant", WHY: "on topic",
                                         "gen_ai.response.id": "chatcmpl-1"}, AT)
    assert row is not None
    assert {k: v for k, v in row.items() if k not in ("ScoreId", "UpdatedAt")} == {
        "TraceId": TRACE, "SpanId": SPAN, "Name": "relevance", "DataType": "numeric", "NumericValue": 0.75,
        "StringValue": "relevant", "Comment": "on topic", "Source": "", "Author": "", "Kind": "feedback",
        "Error": "", "Metadata": {"gen_ai.response.id": "chatcmpl-1"}, "RunId": "",
        "Timestamp": datetime(2026, 3, 1, 10, 0, 0, 123000, tzinfo=UTC), "Deleted": 0}
    assert row["UpdatedAt"] == row["Timestamp"], "a past event's version is its time"


def test_the_exporter_s_text_values_read_as_the_typed_ones() -> None:
    typed = evaluation_score(TRACE, SPAN, {NAME: "relevance", VALUE: 0.75, LABEL: "relevant"}, AT)
    text = evaluation_score(TRACE, SPAN, {NAME: "relevance", VALUE: "0.75", LABEL: "relevant"}, AT)
    assert typed == text


@pytest.mark.parametrize(("attributes", "expected"), [
    ({NAME: "tone", LABEL: "friendly"}, ("categorical", None, "friendly", "")),
    ({NAME: "stars", VALUE: 4}, ("numeric", 4.0, "", "")),
    ({NAME: "judge", "error.type": "timeout"}, ("categorical", None, "", "timeout")),
    ({NAME: "odd", VALUE: "NaN", LABEL: "x"}, ("categorical", None, "x", "")),
    ({NAME: "odd", VALUE: "high"}, ("categorical", None, "", "")),
])
def test_what_an_evaluation_says_decides_the_data_type(attributes: dict[str, Any],
                                                        expected: tuple[Any, ...]) -> None:
    row = evaluation_score(TRACE, SPAN, attributes, AT)
    assert row is not None
    assert (row["DataType"], row["NumericValue"], row["StringValue"], row["Error"]) == expected
    if attributes.get(VALUE) in ("NaN", "high"):
        assert row["Metadata"][VALUE] == attributes[VALUE], "a value that is no number is kept as sent"


@pytest.mark.parametrize(("trace", "attributes"), [(TRACE, {VALUE: 1.0}), (TRACE, {NAME: " "}), ("", {NAME: "x"})])
def test_without_a_name_or_a_trace_there_is_no_score(trace: str, attributes: dict[str, Any]) -> None:
    assert evaluation_score(trace, SPAN, attributes, AT) is None


def test_the_id_is_the_event_s_and_a_future_event_is_versioned_now() -> None:
    attributes = {NAME: "relevance", VALUE: 0.75}
    first = evaluation_score(TRACE, SPAN, attributes, AT)
    assert first is not None and first == evaluation_score(TRACE, SPAN, dict(attributes), AT)
    others = [evaluation_score(TRACE, SPAN, {**attributes, VALUE: 0.5}, AT),
              evaluation_score(TRACE, SPAN, attributes, AT + 1),
              evaluation_score(TRACE, "", attributes, AT),
              evaluation_score(TRACE, SPAN, {**attributes, NAME: "other"}, AT)]
    assert len({first["ScoreId"], *(o["ScoreId"] for o in others if o)}) == 5
    future = evaluation_score(TRACE, SPAN, attributes, 4_000_000_000 * 10**9)
    assert future is not None and future["UpdatedAt"] <= datetime.now(UTC) < future["Timestamp"]


def _batch() -> TraceBatch:
    span = Span(trace_id=bytes.fromhex(TRACE), span_id=bytes.fromhex(SPAN), name="chat", start_time_unix_nano=AT,
                end_time_unix_nano=AT + 5_000_000, events=[
                    Span.Event(time_unix_nano=AT + 1, name="gen_ai.evaluation.result",
                               attributes=key_values({NAME: "relevance", VALUE: 0.5})),
                    Span.Event(time_unix_nano=AT + 2, name="exception", attributes=key_values({NAME: "no"})),
                    Span.Event(time_unix_nano=0, name="gen_ai.evaluation.result",
                               attributes=key_values({NAME: "tone", LABEL: "calm"}))])
    rs = ResourceSpans(resource={"attributes": key_values({"service.name": "svc"})},
                       scope_spans=[ScopeSpans(spans=[span])])
    return TraceBatch.from_request(ExportTraceServiceRequest(resource_spans=[rs]))


def test_the_columns_pass_collects_the_evaluation_events_of_the_spans() -> None:
    scores: list[dict[str, Any]] = []
    names, data = batch_to_columns(_batch(), None, scores)
    assert [(s["Name"], s["SpanId"]) for s in scores] == [("relevance", SPAN), ("tone", SPAN)]
    assert scores[1]["Timestamp"] == datetime.fromtimestamp((AT + 5_000_000) / 1e9, UTC), "no time: the span's end"
    events = data[names.index("Events.Name")][0]
    assert events == ["gen_ai.evaluation.result", "exception", "gen_ai.evaluation.result"], "events kept as sent"


async def test_the_exporter_writes_them_for_the_batch_s_tenant(client: Any, database: str, chdb_endpoint: str) -> None:
    exporter = ClickHouseExporter(Settings(ComponentID("clickhouse"), Kind.EXPORTER),
                                  ClickHouseExporterConfig(endpoint=chdb_endpoint, database=database))
    await exporter.start(TestHost())
    try:
        batch = _batch()
        batch.tenant = "shop"
        await exporter.consume(batch)
        await exporter.consume(_batch())  # the default tenant's copy: another tenant's scores
    finally:
        await exporter.shutdown()
    rows = client.query(f"SELECT Tenant, Name, NumericValue, StringValue FROM {database}.otel_traces_scores FINAL "
                        "ORDER BY Tenant, Name").result_rows
    assert rows == [("", "relevance", 0.5, ""), ("", "tone", None, "calm"),
                    ("shop", "relevance", 0.5, ""), ("shop", "tone", None, "calm")]


@pytest.mark.parametrize("capture", ["current", "legacy"])
def test_the_official_instrumentation_s_evaluation_log_record_is_a_score(capture: str) -> None:
    """The real log record (tests/fixtures/genai-events): what the logs pipeline hands over."""
    from pathlib import Path

    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    from tracehouse.core.anyvalue import to_python

    request = ExportLogsServiceRequest()
    request.ParseFromString((Path(__file__).parents[1] / "fixtures" / "genai-events" / capture / "logs.pb").read_bytes())
    records = [r for rl in request.resource_logs for sl in rl.scope_logs for r in sl.log_records]
    [record] = [r for r in records if "gen_ai.evaluation.result" in (
        r.event_name, *(kv.value.string_value for kv in r.attributes if kv.key == "event.name"))]
    row = evaluation_score(record.trace_id.hex(), record.span_id.hex(),
                           {kv.key: to_python(kv.value) for kv in record.attributes},
                           record.time_unix_nano or record.observed_time_unix_nano)
    assert row is not None
    assert (row["Name"], row["DataType"], row["NumericValue"], row["StringValue"], row["Comment"]) == (
        "relevance", "numeric", 0.9, "relevant", "The answer names the capital.")
    assert row["Metadata"] == {"gen_ai.response.id": "chatcmpl-1"}, "the event's name is not data"
    assert (row["TraceId"], row["SpanId"]) == (record.trace_id.hex(), record.span_id.hex())
    assert row["Timestamp"] == datetime.fromtimestamp(record.observed_time_unix_nano / 1e9, UTC)


@pytest.mark.parametrize("capture", ["current", "legacy"])
async def test_the_exporter_scores_the_evaluation_log_records_of_a_logs_batch(
        capture: str, client: Any, database: str, chdb_endpoint: str) -> None:
    """The logs pipeline's path: the official instrumentation's captured logs request, stored by
    the exporter, gives the evaluation's score beside the log rows; sent twice, still one score."""
    from pathlib import Path

    from tracehouse.core.pdata import LogBatch

    raw = (Path(__file__).parents[1] / "fixtures" / "genai-events" / capture / "logs.pb").read_bytes()
    exporter = ClickHouseExporter(Settings(ComponentID("clickhouse"), Kind.EXPORTER),
                                  ClickHouseExporterConfig(endpoint=chdb_endpoint, database=database))
    await exporter.start(TestHost())
    try:
        for _ in range(2):
            batch = LogBatch.from_bytes(raw)
            batch.tenant = f"logs-{capture}"
            await exporter.consume(batch)
    finally:
        await exporter.shutdown()
    rows = client.query(f"SELECT Name, NumericValue, StringValue, Comment FROM {database}.otel_traces_scores FINAL "
                        "WHERE Tenant = {t:String} AND NOT Deleted", parameters={"t": f"logs-{capture}"}).result_rows
    assert rows == [("relevance", 0.9, "relevant", "The answer names the capital.")]
    stored = client.query(f"SELECT count() FROM {database}.otel_logs WHERE Tenant = {{t:String}}",
                          parameters={"t": f"logs-{capture}"}).result_rows[0][0]
    assert stored == (2 if capture == "current" else 4), "every record stored once"
