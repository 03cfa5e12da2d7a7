"""The MLflow receiver's pure parts: search filters, assessments as scores, traces.json and
stored spans in MLflow's shapes."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from tracehouse.ingest.mlflow import filters
from tracehouse.ingest.mlflow.assessments import assessment_json, score_row, typed_value
from tracehouse.ingest.mlflow.errors import MlflowError
from tracehouse.ingest.mlflow.spans import any_value, decoded, span_json
from tracehouse.ingest.mlflow.store import otel_trace_id, parse_duration_ms, parse_iso_ms
from tracehouse.ingest.mlflow.traces_json import spans_request

TRACE = "tr-" + "ab" * 16


def run_lookup(entity: str, key: str) -> object:
    return {("tags", "phase"): "train", ("tags", "mlflow.runName"): "it's a run", ("metrics", "loss"): 0.4,
            ("params", "lr"): "0.01", ("attributes", "status"): "FINISHED"}.get((entity, key))


@pytest.mark.parametrize(("text", "expected"), [
    ("", True),
    ("tags.phase = 'train'", True),
    ("tags.phase != 'train'", False),
    ("metrics.loss < 0.5 AND params.lr = '0.01'", True),
    ("metrics.loss >= 0.5", False),
    ("attributes.status IN ('FINISHED', 'FAILED')", True),
    ("status = 'FINISHED'", True),
    ("tags.`mlflow.runName` LIKE 'it''s%'", True),
    ("tags.phase ILIKE 'TR%'", True),
    ("tags.phase LIKE 'TR%'", False),
    ("tags.missing = 'x'", False),
    ("tags.phase = 'a AND b'", False),
])
def test_filters_select_as_mlflow_does(text: str, expected: bool) -> None:
    assert filters.matches(filters.parse(text), run_lookup) is expected


@pytest.mark.parametrize("text", ["tags.phase ~ 'x'", "bogus.key = 'x'", "tags.phase = train", "metrics.loss <"])
def test_unreadable_filters_are_a_400_naming_the_clause(text: str) -> None:
    with pytest.raises(MlflowError) as err:
        filters.parse(text)
    assert err.value.status == 400 and err.value.code == "INVALID_PARAMETER_VALUE"


@pytest.mark.parametrize(("value", "typed"), [
    (True, ("boolean", 1.0, "true")), (0.75, ("numeric", 0.75, "")), (3, ("numeric", 3.0, "")),
    ("Paris", ("categorical", None, "Paris")), ({"a": 1}, ("categorical", None, '{"a": 1}')),
])
def test_feedback_values_are_typed_scores(value: object, typed: tuple[object, ...]) -> None:
    assert typed_value(value) == typed


def test_an_assessment_round_trips_through_its_score_row() -> None:
    body = {"assessment_name": "helpfulness", "trace_id": TRACE, "span_id": "00ff00ff00ff00ff",
            "source": {"source_type": "LLM_JUDGE", "source_id": "judge-1"}, "create_time": "2026-12-01T21:12:32.522Z",
            "feedback": {"value": False}, "rationale": "off topic", "metadata": {"k": "v"}}
    row = score_row(TRACE, body)
    assert (row["TraceId"], row["Source"], row["Author"], row["DataType"]) == ("ab" * 16, "llm_judge", "judge-1",
                                                                               "boolean")
    assert row["Timestamp"] == datetime(2026, 12, 1, 21, 12, 32, 522000, tzinfo=UTC)
    back = assessment_json(row)
    assert back["feedback"] == {"value": False} and back["rationale"] == "off topic"
    assert back["source"] == {"source_type": "LLM_JUDGE", "source_id": "judge-1"}
    assert back["trace_id"] == TRACE and back["span_id"] == "00ff00ff00ff00ff"
    updated = score_row(TRACE, {"assessment_id": row["ScoreId"], "feedback": {"value": 0.5}}, row)
    assert (updated["ScoreId"], updated["Name"], updated["DataType"]) == (row["ScoreId"], "helpfulness", "numeric")


def test_an_assessment_needs_a_name_and_a_valid_trace_id() -> None:
    with pytest.raises(MlflowError, match="assessment_name is required"):
        score_row(TRACE, {"feedback": {"value": 1}})
    with pytest.raises(MlflowError, match="not tr-<32 hex digits>"):
        otel_trace_id("tr-xyz")


def test_times_and_durations_in_protobuf_json() -> None:
    assert parse_iso_ms("2026-12-01T21:12:32.522Z") == 1796159552522
    assert parse_duration_ms("0.058s") == 58
    with pytest.raises(MlflowError, match="invalid timestamp"):
        parse_iso_ms("yesterday")


def test_traces_json_becomes_an_otlp_request_with_its_values_as_sent() -> None:
    tid, sid = bytes(range(16)), bytes(range(8))
    body = json.dumps({"spans": [{"trace_id": base64.b64encode(tid).decode(), "span_id": base64.b64encode(sid).decode(),
                                  "parent_span_id": None, "name": "Completions", "start_time_unix_nano": 10,
                                  "end_time_unix_nano": 20, "status": {"code": "STATUS_CODE_ERROR", "message": "boom"},
                                  "attributes": {"mlflow.spanType": '"CHAT_MODEL"'},
                                  "events": [{"name": "exception", "time_unix_nano": 15, "attributes": {"k": 1}}]}]})
    request = spans_request(body.encode(), {"mlflow.experimentId": "3"})
    [rs] = request.resource_spans
    [span] = rs.scope_spans[0].spans
    assert (span.trace_id, span.span_id, span.parent_span_id, span.status.code) == (tid, sid, b"", 2)
    assert span.attributes[0].value.string_value == '"CHAT_MODEL"'
    assert span.events[0].attributes[0].value.string_value == "1"
    assert rs.resource.attributes[0].value.string_value == "3"


@pytest.mark.parametrize(("body", "message"), [
    (b"not json", "not JSON"), (b"[]", "`spans` list"),
    (json.dumps({"spans": [{"trace_id": "!!", "span_id": "AAAAAAAAAAA="}]}).encode(), "neither base64"),
    (json.dumps({"spans": [{"trace_id": "AAAA", "span_id": "AAAAAAAAAAA="}]}).encode(), "expected 16"),
])
def test_bad_traces_json_is_refused_with_what_is_wrong(body: bytes, message: str) -> None:
    with pytest.raises(MlflowError, match=message):
        spans_request(body, {})


def test_stored_values_go_back_typed_as_the_client_sent_them() -> None:
    assert decoded('{"model": "gpt-4o"}') == {"model": "gpt-4o"}
    assert decoded('"CHAT_MODEL"') == "CHAT_MODEL"  # traces.json's JSON-encoded string
    assert decoded("CHAT_MODEL") == "CHAT_MODEL"  # OTLP's plain string
    assert any_value({"n": 1, "ok": True, "xs": [1.5]}) == {"kvlistValue": {"values": [
        {"key": "n", "value": {"intValue": "1"}}, {"key": "ok", "value": {"boolValue": True}},
        {"key": "xs", "value": {"arrayValue": {"values": [{"doubleValue": 1.5}]}}}]}}
    span = span_json({"TraceId": "ab" * 16, "SpanId": "cd" * 8, "ParentSpanId": "", "SpanName": "s", "StartNs": 5,
                      "Duration": 3, "StatusCode": "Error", "StatusMessage": "x", "SpanAttributes": {"a": "1"},
                      "EventNs": [6], "EventNames": ["e"], "EventAttributes": [{}]})
    assert span["endTimeUnixNano"] == "8" and span["status"]["code"] == "STATUS_CODE_ERROR"
    assert "parentSpanId" not in span and span["attributes"] == [{"key": "a", "value": {"intValue": "1"}}]
