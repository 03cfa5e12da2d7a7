"""MLflow assessments (feedback and expectations) <-> tracehouse scores.

A score is one judgement on a trace or span: name, a value that is numeric, boolean or
categorical, comment, source (human, llm_judge, code), author, time and an idempotency id
(MLflow's assessment id). MLflow's feedback value is any JSON value: numbers are numeric,
booleans boolean, strings categorical; lists and objects are kept as JSON text, categorical.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from tracehouse.ingest.mlflow.errors import invalid
from tracehouse.ingest.mlflow.store import iso, now_ms, otel_trace_id, parse_iso_ms
from tracehouse.sinks.clickhouse.scores import digest_id, typed_value

SOURCES = {"HUMAN": "human", "LLM_JUDGE": "llm_judge", "CODE": "code"}
_MLFLOW_SOURCES = {v: k for k, v in SOURCES.items()}


def score_row(request_id: str, body: Mapping[str, Any], existing: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The score row of an assessment create/update body (`existing` for an update)."""
    if not isinstance(body, Mapping):
        raise invalid("assessment must be a JSON object")
    trace_id = otel_trace_id(str(body.get("trace_id") or request_id))
    name = str(body.get("assessment_name") or (existing or {}).get("Name") or "")
    if not name:
        raise invalid("assessment_name is required")
    kind, payload = "feedback", body.get("feedback")
    if payload is None and body.get("expectation") is not None:
        kind, payload = "expectation", body.get("expectation")
    row: dict[str, Any] = dict(existing or {})
    if payload is not None or existing is None:
        payload = payload if isinstance(payload, Mapping) else {}
        value = payload.get("value")
        if value is None and isinstance(payload.get("serialized_value"), Mapping):
            value = payload["serialized_value"].get("value")
        data_type, number, text = typed_value(value)
        error = payload.get("error") or {}
        row.update(Kind=kind, DataType=data_type, NumericValue=number, StringValue=text,
                   Error=json.dumps(error, sort_keys=True) if error else "")
    source = body.get("source") or {}
    created = str(body.get("create_time") or "")
    row.update(
        # An assessment logged while its trace was active travels inside the trace's info
        # without an id (ingest/mlflow/app.py start_trace): one derived from its content keeps a
        # retried export to one score.
        ScoreId=str(body.get("assessment_id") or row.get("ScoreId")
                    or digest_id("a", trace_id, json.dumps(body, sort_keys=True, default=str))),
        TraceId=trace_id, SpanId=str(body.get("span_id") or row.get("SpanId") or ""), Name=name,
        Comment=str(body.get("rationale") if body.get("rationale") is not None else row.get("Comment", "")),
        Source=SOURCES.get(str(source.get("source_type", "")), row.get("Source", "")),
        Author=str(source.get("source_id") or row.get("Author", "")),
        Metadata={str(k): str(v) for k, v in (body.get("metadata") or row.get("Metadata") or {}).items()},
        RunId=str(body.get("run_id") or row.get("RunId", "")),
        Timestamp=row.get("Timestamp") or datetime.fromtimestamp((parse_iso_ms(created) if created else now_ms()) / 1000,
                                                                 UTC),
        Deleted=0)
    row.pop("Tenant", None)
    return row


def assessment_json(row: Mapping[str, Any]) -> dict[str, Any]:
    ts = row["Timestamp"]
    ms = int(ts.timestamp() * 1000) if isinstance(ts, datetime) else int(ts)
    if row["DataType"] == "numeric":
        value: Any = row["NumericValue"]
    elif row["DataType"] == "boolean":
        value = row["StringValue"] == "true"
    else:
        value = row["StringValue"]
        if value[:1] in ("[", "{"):
            try:
                value = json.loads(value)
            except ValueError:
                pass
    payload: dict[str, Any] = {"value": value}
    if row.get("Error"):
        payload["error"] = json.loads(row["Error"])
    out: dict[str, Any] = {
        "assessment_id": row["ScoreId"], "assessment_name": row["Name"], "trace_id": f"tr-{row['TraceId']}",
        "source": {"source_type": _MLFLOW_SOURCES.get(row["Source"], "SOURCE_TYPE_UNSPECIFIED"),
                   "source_id": row["Author"]},
        "create_time": iso(ms), "last_update_time": iso(ms), row["Kind"] or "feedback": payload,
        "metadata": dict(row["Metadata"]), "valid": True}
    if row["SpanId"]:
        out["span_id"] = row["SpanId"]
    if row["Comment"]:
        out["rationale"] = row["Comment"]
    if row["RunId"]:
        out["run_id"] = row["RunId"]
    return out
