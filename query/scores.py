"""Scores through the query API: validating `POST /api/v1/scores` bodies into score rows (the
one model of sinks/clickhouse/scores.py), and the `score` filter of trace search.

A bad field is a 400 naming it (`scores[2].value`); nothing of a request is written unless
every score in it is valid.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tracehouse.query.errors import ApiError
from tracehouse.query.params import parse_time_ns
from tracehouse.sinks.clickhouse.scores import DATA_TYPES, KINDS, SOURCES, digest_id, from_ns, typed_value

MAX_SCORES_PER_REQUEST = 1000
MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_NAME = 256
MAX_LABEL = 1024
MAX_COMMENT = 65_536
MAX_AUTHOR = 256
MAX_METADATA = 64
MAX_SCORE_FILTERS = 16

SCORE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,199}$")
_TRACE_ID_RE = re.compile(r"^[0-9a-fA-F]{32}$")
_SPAN_ID_RE = re.compile(r"^[0-9a-fA-F]{16}$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
FIELDS = ("score_id", "trace_id", "span_id", "name", "value", "data_type", "comment", "source", "author",
          "timestamp", "kind", "metadata", "run_id")


@dataclass(frozen=True, slots=True)
class NewScore:
    """A validated score: its row, and whether the caller gave its time (a re-POST without
    one keeps the stored score's time)."""

    row: dict[str, Any]
    timed: bool


def parse_scores_body(raw: bytes) -> list[NewScore]:
    """A JSON score object, or a list of them -> validated score rows (400 naming the field)."""
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, f"body: larger than {MAX_BODY_BYTES} bytes", "body")
    try:
        body = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, f"body: not JSON: {exc}", "body") from None
    if isinstance(body, Mapping):
        return [parse_score(body, "")]
    if not isinstance(body, list):
        raise ApiError(400, "body: expected a score object or a list of them", "body")
    if not body:
        raise ApiError(400, "body: the list has no score", "body")
    if len(body) > MAX_SCORES_PER_REQUEST:
        raise ApiError(400, f"body: at most {MAX_SCORES_PER_REQUEST} scores per request", "body")
    scores = [parse_score(item, f"scores[{i}].") for i, item in enumerate(body)]
    ids = [s.row["ScoreId"] for s in scores]
    for i, score_id in enumerate(ids):
        if score_id in ids[:i]:
            raise ApiError(400, f"scores[{i}].score_id: {score_id!r} appears twice in the request",
                           f"scores[{i}].score_id")
    return scores


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_score(item: Any, at: str) -> NewScore:
    """One score object; `at` prefixes the field names in errors (`scores[2].`)."""
    if not isinstance(item, Mapping):
        where = at.rstrip(".") or "body"
        raise ApiError(400, f"{where}: expected a JSON object", where)
    for key in item:
        if key not in FIELDS:
            raise ApiError(400, f"{at}{key}: unknown field; a score has {', '.join(FIELDS)}", f"{at}{key}")

    def bad(field: str, why: str) -> ApiError:
        return ApiError(400, f"{at}{field}: {why}", f"{at}{field}")

    def text(field: str, limit: int, *, required: bool = False, single_line: bool = False) -> str:
        value = item.get(field)
        if value is None:
            if required:
                raise bad(field, "required")
            return ""
        if not isinstance(value, str):
            raise bad(field, "expected a string")
        if len(value) > limit:
            raise bad(field, f"longer than {limit} characters")
        if single_line and _CONTROL_RE.search(value):
            raise bad(field, "control characters are not allowed")
        return value

    def choice(field: str, allowed: Sequence[str], default: str) -> str:
        value = text(field, 32) or default
        if value not in allowed and value != default:
            raise bad(field, f"expected one of {', '.join(allowed)}, got {value!r}")
        return value

    trace_id = text("trace_id", 64, required=True)
    if not _TRACE_ID_RE.match(trace_id) or set(trace_id) == {"0"}:
        raise bad("trace_id", f"expected 32 hex characters (not all zero), got {trace_id!r}")
    span_id = text("span_id", 64)
    if span_id and (not _SPAN_ID_RE.match(span_id) or set(span_id) == {"0"}):
        raise bad("span_id", f"expected 16 hex characters (not all zero), got {span_id!r}")
    name = text("name", MAX_NAME, required=True, single_line=True).strip()
    if not name:
        raise bad("name", "must not be empty")
    data_type, number, label = _value(item, bad)
    comment = text("comment", MAX_COMMENT)
    source = choice("source", SOURCES, "")
    author = text("author", MAX_AUTHOR, single_line=True)
    kind = choice("kind", KINDS, "feedback")
    run_id = text("run_id", MAX_AUTHOR, single_line=True)
    metadata = _metadata(item.get("metadata"), bad)
    timed = item.get("timestamp") is not None
    ts_ns = _timestamp(item["timestamp"], f"{at}timestamp") if timed else time.time_ns()
    score_id = text("score_id", 200)
    if "score_id" in item and not SCORE_ID_RE.match(score_id):
        raise bad("score_id", "1 to 200 characters: letters, digits and . _ : @ + - (starting with a letter or digit)")
    if not score_id:
        # No id from the caller: one derived from the judgement, so a re-POST is one score.
        score_id = digest_id("s", trace_id.lower(), span_id.lower(), name, data_type, number, label, comment, source,
                             author, kind, run_id, sorted(metadata.items()), ts_ns if timed else None)
    row = {"ScoreId": score_id, "TraceId": trace_id.lower(), "SpanId": span_id.lower(), "Name": name,
           "DataType": data_type, "NumericValue": number, "StringValue": label, "Comment": comment, "Source": source,
           "Author": author, "Kind": kind, "Error": "", "Metadata": metadata, "RunId": run_id,
           "Timestamp": from_ns(ts_ns), "Deleted": 0}
    return NewScore(row, timed)


def _value(item: Mapping[str, Any], bad: Any) -> tuple[str, float | None, str]:
    """(DataType, NumericValue, StringValue): the value's JSON type decides the data type; a
    `data_type` given must agree with it."""
    if "value" not in item or item["value"] is None:
        raise bad("value", "required: a number, a boolean or a string")
    value = item["value"]
    if isinstance(value, (list, dict)):
        raise bad("value", "expected a number, a boolean or a string")
    if isinstance(value, float) and not math.isfinite(value):
        raise bad("value", "must be finite")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53:
        raise bad("value", "too large to be stored exactly (a 64-bit float)")
    if isinstance(value, str) and (len(value) > MAX_LABEL or not value.strip()):
        raise bad("value", f"a category must be 1 to {MAX_LABEL} characters")
    inferred = typed_value(value)
    data_type = item.get("data_type")
    if data_type is not None:
        if data_type not in DATA_TYPES:
            raise bad("data_type", f"expected one of {', '.join(DATA_TYPES)}, got {data_type!r}")
        if data_type != inferred[0]:
            wanted = {"numeric": "a number", "boolean": "true or false", "categorical": "a string"}[data_type]
            raise bad("value", f"a {data_type} score's value must be {wanted}, got {json.dumps(value)}")
    return inferred


def _metadata(value: Any, bad: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise bad("metadata", "expected an object of string values")
    if len(value) > MAX_METADATA:
        raise bad("metadata", f"at most {MAX_METADATA} entries")
    for key, v in value.items():
        if not isinstance(v, str) or len(key) > MAX_NAME or len(v) > MAX_COMMENT:
            raise bad("metadata", f"entry {key!r}: expected a string value (keys up to {MAX_NAME} characters)")
    return {str(k): v for k, v in value.items()}


def _timestamp(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ApiError(400, f"{field}: expected RFC 3339 text or unix seconds", field)
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise ApiError(400, f"{field}: expected unix seconds (>= 0)", field)
        value = repr(value) if isinstance(value, float) else str(value)
        if "e" in value.lower():
            raise ApiError(400, f"{field}: expected unix seconds without an exponent", field)
    return parse_time_ns(value, field)


# ------------------------------------------------------------------------------ search filter


_OPERATORS = (">=", "<=", "!=", ">", "<", "=")
NUMERIC_OPERATORS = (">=", "<=", ">", "<")


@dataclass(frozen=True, slots=True)
class ScoreFilter:
    """`score=<name><op><value>`: the trace has a live score `name` whose value passes."""

    name: str
    op: str
    number: float | None  # the value as a number, when it is one
    text: str


def parse_score_filters(values: Sequence[str]) -> list[ScoreFilter]:
    """Repeated `score=helpfulness>=0.8`, `score=verdict=pass`, `score=safe=true` -> filters.

    The operator is the first of `>= <= != > < =` in the text: `>`, `>=`, `<`, `<=` compare
    numeric (and boolean, as 1/0) values with a number; `=` and `!=` compare a category, a
    boolean (`true`/`false`) or a number."""
    if len(values) > MAX_SCORE_FILTERS:
        raise ApiError(400, f"score: at most {MAX_SCORE_FILTERS} score filters", "score")
    filters = []
    for item in values:
        found = min(((i, op) for op in _OPERATORS if (i := item.find(op)) >= 0),
                    key=lambda io: (io[0], -len(io[1])), default=None)
        if found is None:
            raise ApiError(400, f"score: expected <name><op><value> with op one of {' '.join(_OPERATORS)} "
                                f"(e.g. helpfulness>=0.8), got {item!r}", "score")
        i, op = found
        name, value = item[:i].strip(), item[i + len(op):].strip()
        if not name or not value:
            raise ApiError(400, f"score: a name and a value are needed around {op!r}, got {item!r}", "score")
        number = _finite(value)
        if op in NUMERIC_OPERATORS and number is None:
            raise ApiError(400, f"score: {op} compares with a number, got {value!r}", "score")
        filters.append(ScoreFilter(name, op, number, value))
    return filters


def _finite(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None

