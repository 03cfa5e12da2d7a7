"""Scores: every judgement on a trace or span, in one table (`<traces>_scores`, migration 008).

One model for every source: the query API's `POST /api/v1/scores`, MLflow assessments
(ingest/mlflow/assessments.py) and `gen_ai.evaluation.result` events (span events here, log
records in the logs pipeline). A score is a row of the table's columns (`COLUMNS`): name, a
value that is numeric (`NumericValue`), boolean (`NumericValue` 1/0 and `StringValue`
`true`/`false`) or categorical (`StringValue`), comment, source (`human`, `llm_judge`,
`code`, or empty when the producer did not say), author, time, and `ScoreId`, the idempotency
id: a row written again with the same id replaces the first (ReplacingMergeTree on
`UpdatedAt`, read with FINAL); a deletion is such a row with `Deleted = 1`.

`insert_scores` is the one writer every producer calls.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from tracehouse.core.pdata import EVENT_NAME_ATTRIBUTE

DATA_TYPES = ("numeric", "boolean", "categorical")
SOURCES = ("human", "llm_judge", "code")
KINDS = ("feedback", "expectation")
COLUMNS = ("ScoreId", "TraceId", "SpanId", "Name", "DataType", "NumericValue", "StringValue", "Comment", "Source",
           "Author", "Kind", "Error", "Metadata", "RunId", "Timestamp", "Deleted")

# OTel GenAI semantic conventions: the evaluation result event (span event or log record).
EVALUATION_EVENT = "gen_ai.evaluation.result"
EVALUATION_NAME = "gen_ai.evaluation.name"
EVALUATION_SCORE_VALUE = "gen_ai.evaluation.score.value"
EVALUATION_SCORE_LABEL = "gen_ai.evaluation.score.label"
EVALUATION_EXPLANATION = "gen_ai.evaluation.explanation"
ERROR_TYPE = "error.type"
EVENT_NAME = EVENT_NAME_ATTRIBUTE  # the event's name as an attribute (log records of SDKs before `event_name`)
_EVALUATION_KEYS = (EVALUATION_NAME, EVALUATION_SCORE_VALUE, EVALUATION_SCORE_LABEL, EVALUATION_EXPLANATION,
                    ERROR_TYPE, EVENT_NAME)


def scores_table(database: str, traces_table: str) -> str:
    return f"{database}.{traces_table}_scores"


def typed_value(value: Any) -> tuple[str, float | None, str]:
    """(DataType, NumericValue, StringValue) of a JSON value: booleans boolean, numbers numeric,
    strings categorical; lists and objects are kept as JSON text, categorical."""
    if isinstance(value, bool):
        return "boolean", float(value), "true" if value else "false"
    if isinstance(value, (int, float)):
        return "numeric", float(value), ""
    if isinstance(value, str):
        return "categorical", None, value
    if value is None:
        return "categorical", None, ""
    return "categorical", None, json.dumps(value, sort_keys=True)


def digest_id(prefix: str, *parts: object) -> str:
    """A deterministic score id from what identifies the judgement: the same parts, the same id."""
    h = hashlib.sha256()
    for part in parts:
        text = repr(part).encode()
        h.update(len(text).to_bytes(4, "big"))
        h.update(text)
    return f"{prefix}-{h.hexdigest()[:32]}"


def from_ns(time_unix_nano: int) -> datetime:
    return datetime.fromtimestamp(time_unix_nano / 1e9, UTC)


def _number(value: Any) -> float | None:
    """A finite number from an attribute value (typed, or as the exporter's attribute text)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def evaluation_score(trace_id: str, span_id: str, attributes: Mapping[str, Any], time_unix_nano: int, *,
                     author: str = "") -> dict[str, Any] | None:
    """The score row of one `gen_ai.evaluation.result` event (a span event, or a log record of
    that name: its trace and span ids, attributes as plain values, and its time, else its
    observed time), or None when it names no evaluation or no trace.

    Semantic conventions: the event is parented to the span it evaluates (`trace_id`,
    `span_id`: the span carrying the event, or the log record's context) and carries
    `gen_ai.evaluation.name` (required), `.score.value` (a number), `.score.label` (e.g.
    `relevant`, `pass`), `.explanation`, and `error.type` when the evaluation failed. A value
    makes the score numeric (its label kept as the text value); a label alone, categorical.
    Other attributes (`gen_ai.response.id`, the evaluator's own) are kept as metadata. The
    conventions do not say who judged: the source stays empty.

    The id is derived from the event (trace, span, name, time, value, label, explanation), so
    a replayed batch writes the same score again, and `UpdatedAt` is the event's time (never
    later than now): a replay never outranks a later deletion through the API."""
    name = str(attributes.get(EVALUATION_NAME) or "").strip()
    if not name or not trace_id:
        return None
    number = _number(attributes.get(EVALUATION_SCORE_VALUE))
    label = attributes.get(EVALUATION_SCORE_LABEL)
    label = "" if label is None else str(label)
    explanation = attributes.get(EVALUATION_EXPLANATION)
    explanation = "" if explanation is None else str(explanation)
    error = attributes.get(ERROR_TYPE)
    at = from_ns(time_unix_nano)
    metadata = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in attributes.items()
                if k not in _EVALUATION_KEYS}
    if number is None and EVALUATION_SCORE_VALUE in attributes:
        metadata[EVALUATION_SCORE_VALUE] = str(attributes[EVALUATION_SCORE_VALUE])  # not a number: kept as sent
    return {
        "ScoreId": digest_id("ev", trace_id, span_id, name, time_unix_nano, number, label, explanation),
        "TraceId": trace_id, "SpanId": span_id, "Name": name,
        "DataType": "numeric" if number is not None else "categorical",
        "NumericValue": number, "StringValue": label, "Comment": explanation, "Source": "", "Author": author,
        "Kind": "feedback", "Error": "" if error is None else str(error), "Metadata": metadata, "RunId": "",
        "Timestamp": at, "Deleted": 0,
        "UpdatedAt": min(at, datetime.now(UTC)),
    }


def insert_scores(client: Client, table: str, tenant: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write score rows (`COLUMNS`; missing optional ones take their defaults) for one tenant.
    A row's `UpdatedAt`, when a producer sets it, is its version; else the server's now64."""
    plain = [r for r in rows if r.get("UpdatedAt") is None]
    versioned = [r for r in rows if r.get("UpdatedAt") is not None]
    if plain:
        client.insert(table, [[*_values(r), tenant] for r in plain], column_names=[*COLUMNS, "Tenant"])
    if versioned:
        client.insert(table, [[*_values(r), tenant, r["UpdatedAt"]] for r in versioned],
                      column_names=[*COLUMNS, "Tenant", "UpdatedAt"])


_DEFAULTS: dict[str, Any] = {"SpanId": "", "NumericValue": None, "StringValue": "", "Comment": "", "Source": "",
                             "Author": "", "Kind": "feedback", "Error": "", "Metadata": {}, "RunId": "", "Deleted": 0}


def _values(row: Mapping[str, Any]) -> list[Any]:
    return [row[c] if c in row else _DEFAULTS[c] for c in COLUMNS]
