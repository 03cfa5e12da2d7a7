"""What the endpoint reads from a query's text before running it: that it is one statement,
its first keyword (only reading statements run), its FORMAT clause (the response's format)
and the settings of its SETTINGS clauses.

The engine runs every query with readonly=1, which is what keeps writes out; this check
answers the common refusals with a clear message before the engine is asked, and refuses
several statements in one request as ClickHouse's HTTP interface does (chDB would run them
all). Under readonly=1 ClickHouse lets a SETTINGS clause name a setting's current value
only, so the engine sets the clauses' settings first (capped like the request's), and the
clause then finds them set: dashboards' `SETTINGS join_use_nulls = 1` work, and a clause
asking more than a cap is refused by ClickHouse itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

# Statements that only read (ClickHouse's readonly=1 runs these and refuses the rest).
READING = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN"})

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|0[xX][0-9a-fA-F]+)")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "b": "\b", "f": "\f"}


class StatementError(ValueError):
    def __init__(self, code: int, name: str, message: str):
        super().__init__(message)
        self.code = code
        self.name = name


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # word | number | string | quoted (a quoted name) | punct
    text: str  # a string's or quoted name's value unescaped; else as written


@dataclass(frozen=True, slots=True)
class Statement:
    text: str  # as sent, without a trailing ';'
    keyword: str  # the first keyword, upper case
    format: str | None  # the FORMAT clause's format, if any
    settings: dict[str, str] = field(default_factory=dict)  # of its SETTINGS clauses


def _unquote(body: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body, flags=re.S)


def tokens(sql: str) -> Iterator[Token]:
    """ClickHouse's lexical structure, as far as this module needs it: comments skipped."""
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch.isspace():
            i += 1
        elif sql.startswith("--", i) or ch == "#":
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            if end < 0:
                raise StatementError(62, "SYNTAX_ERROR", "Syntax error: unterminated comment")
            i = end + 2
        elif ch in "'\"`":
            j = i + 1
            while j < n and sql[j] != ch:
                j += 2 if sql[j] == "\\" else 1
            if j >= n:
                raise StatementError(62, "SYNTAX_ERROR", f"Syntax error: unterminated quoted text starting {sql[i:i + 20]!r}")
            yield Token("string" if ch == "'" else "quoted", _unquote(sql[i + 1:j]))
            i = j + 1
        elif (m := _WORD.match(sql, i)) is not None:
            yield Token("word", m.group())
            i = m.end()
        elif ch.isdigit() or (ch == "." and i + 1 < n and sql[i + 1].isdigit()):
            m = _NUMBER.match(sql, i)
            assert m is not None
            yield Token("number", m.group())
            i = m.end()
        else:
            yield Token("punct", ch)
            i += 1


def _settings(toks: list[Token]) -> dict[str, str]:
    """`SETTINGS a = 1, b = 'x'` clauses' assignments (literal values only)."""
    found: dict[str, str] = {}
    for at, tok in enumerate(toks):
        if tok.kind != "word" or tok.text.upper() != "SETTINGS":
            continue
        i = at + 1
        while i + 2 < len(toks) and toks[i].kind == "word" and toks[i + 1].text == "=":
            value = toks[i + 2]
            sign = ""
            if value.kind == "punct" and value.text == "-" and i + 3 < len(toks):
                sign, value = "-", toks[i + 3]
                i += 1
            if value.kind not in ("number", "string", "word"):
                break
            found[toks[i].text] = sign + value.text
            i += 3
            if i < len(toks) and toks[i].text == ",":
                i += 1
            else:
                break
    return found


def parse(sql: str) -> Statement:
    toks = list(tokens(sql))
    while toks and toks[-1].kind == "punct" and toks[-1].text == ";":
        toks.pop()
    if not toks:
        raise StatementError(62, "SYNTAX_ERROR", "Empty query")
    if any(t.kind == "punct" and t.text == ";" for t in toks):
        raise StatementError(62, "SYNTAX_ERROR", "Syntax error: multi-statements are not allowed")
    first = next((t for t in toks if not (t.kind == "punct" and t.text == "(")), toks[0])
    keyword = first.text.upper() if first.kind == "word" else ""
    if keyword not in READING:
        raise StatementError(
            164, "READONLY",
            f"Cannot execute query in readonly mode: this endpoint only reads "
            f"({', '.join(sorted(READING))}), and {keyword or 'this statement'} is not one of those")
    fmt = None
    for i in range(len(toks) - 2, -1, -1):
        # FORMAT <name> ends the statement, or comes before a last SETTINGS clause.
        if toks[i].kind == "word" and toks[i].text.upper() == "FORMAT" and toks[i + 1].kind == "word":
            rest = toks[i + 2:]
            if not rest or (rest[0].kind == "word" and rest[0].text.upper() == "SETTINGS"):
                fmt = toks[i + 1].text
            break
    text = sql.rstrip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    return Statement(text=text, keyword=keyword, format=fmt, settings=_settings(toks))
