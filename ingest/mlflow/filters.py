"""MLflow's search filter strings (`metrics.loss < 0.5 AND tags.phase = 'train'`), applied to
the entities one experiment holds.

The grammar is MLflow's: clauses joined by AND, each `<entity>.<key> <op> <value>`, keys
optionally in backticks or quotes, string values quoted, `IN ('a', 'b')`. Entities:
`attributes`/`attribute`/`attr`/`run` (or a bare name such as `name`, `status`), `metrics`/
`metric`, `params`/`param`/`parameters`, `tags`/`tag`; for traces also `metadata`/`request_metadata`
and `trace` (attributes). A filter this parser does not
understand is a 400 naming what it could not read, never a silently wider result.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tracehouse.ingest.mlflow.errors import invalid

_CLAUSE = re.compile(
    r"""\s*(?:(?P<entity>\w+)\.)?(?P<key>`[^`]+`|"[^"]+"|[\w.]+)\s*
        (?P<op>!=|>=|<=|=|>|<|(?:NOT\s+)?I?LIKE|(?:NOT\s+)?IN)\s*
        (?P<value>'(?:[^']|'')*'|"[^"]*"|\([^)]*\)|[-+\w.]+)\s*""", re.X | re.I)
_AND = re.compile(r"\s+AND\s+", re.I)
_ENTITIES = {
    "attributes": "attributes", "attribute": "attributes", "attr": "attributes", "run": "attributes",
    "metrics": "metrics", "metric": "metrics", "params": "params", "param": "params", "parameters": "params",
    "parameter": "params", "tags": "tags", "tag": "tags",
    "metadata": "metadata", "request_metadata": "metadata", "trace": "attributes",
}


@dataclass(frozen=True, slots=True)
class Clause:
    entity: str
    key: str
    op: str
    value: Any


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"`":
        return text[1:-1].replace("''", "'")
    return text


def parse(filter_string: str | None) -> list[Clause]:
    text = (filter_string or "").strip()
    if not text:
        return []
    clauses = []
    # Split on AND outside quotes: quoted values may contain " AND ".
    parts, buf = [], ""
    for token in re.split(r"('(?:[^']|'')*'|\"[^\"]*\"|`[^`]*`)", text):
        if token[:1] in ("'", '"', "`"):
            buf += token
            continue
        pieces = _AND.split(token)
        buf += pieces[0]
        for piece in pieces[1:]:
            parts.append(buf)
            buf = piece
    parts.append(buf)
    for part in parts:
        m = _CLAUSE.fullmatch(part)
        if not m:
            raise invalid(f"invalid filter clause {part.strip()!r}: expected <entity>.<key> <op> <value>, "
                          "e.g. tags.phase = 'train' or metrics.loss < 0.5")
        entity = _ENTITIES.get((m["entity"] or "attributes").lower())
        if entity is None:
            raise invalid(f"invalid filter entity {m['entity']!r}: use attributes, metrics, params or tags")
        op = re.sub(r"\s+", " ", m["op"].upper())
        raw = m["value"]
        value: Any
        if raw.startswith("("):
            value = [_unquote(v.strip()) for v in raw[1:-1].split(",") if v.strip()]
        elif raw[:1] in ("'", '"'):
            value = _unquote(raw)
        else:
            try:
                value = float(raw)
            except ValueError:
                raise invalid(f"invalid filter value {raw!r}: quote strings, e.g. '{raw}'") from None
        clauses.append(Clause(entity, _unquote(m["key"]), op, value))
    return clauses


def _like(pattern: str, value: str, case: bool) -> bool:
    glob = "".join("*" if c == "%" else "?" if c == "_" else "[" + c + "]" if c in "[]*?" else c for c in pattern)
    return fnmatch.fnmatchcase(value, glob) if case else fnmatch.fnmatchcase(value.lower(), glob.lower())


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b, "!=": lambda a, b: a != b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
    "LIKE": lambda a, b: _like(str(b), str(a), True), "ILIKE": lambda a, b: _like(str(b), str(a), False),
    "NOT LIKE": lambda a, b: not _like(str(b), str(a), True), "NOT ILIKE": lambda a, b: not _like(str(b), str(a), False),
    "IN": lambda a, b: str(a) in b, "NOT IN": lambda a, b: str(a) not in b,
}


def matches(clauses: list[Clause], lookup: Callable[[str, str], Any]) -> bool:
    """Whether an entity passes: `lookup(entity, key)` gives its value, None when absent."""
    for c in clauses:
        value = lookup(c.entity, c.key)
        if value is None:
            return False
        expected = c.value
        if isinstance(expected, float) and not isinstance(value, (int, float)):
            try:
                value = float(value)
            except (TypeError, ValueError):
                return False
        try:
            if not _OPS[c.op](value, expected):
                return False
        except TypeError:
            return False
    return True


def tags_of(entity: Mapping[str, Any]) -> dict[str, str]:
    return {t["key"]: t["value"] for t in entity.get("tags", [])}
