"""What the endpoint reads from a query's text before running it: that it is one statement,
its first keyword (only reading statements run) and its FORMAT clause (the response's format).

The engine runs every query with readonly=1, which is what keeps writes out; this check
answers the common refusals with a clear message before the engine is asked, and refuses
several statements in one request as ClickHouse's HTTP interface does (chDB would run them
all)."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Statements that only read (ClickHouse's readonly=1 runs these and refuses the rest).
READING = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN"})

_TRAILING_FORMAT = re.compile(
    r"\bFORMAT\s+([A-Za-z][A-Za-z0-9_]*)(?:\s+SETTINGS\b.*)?$", re.IGNORECASE | re.DOTALL)


class StatementError(ValueError):
    def __init__(self, code: int, name: str, message: str):
        super().__init__(message)
        self.code = code
        self.name = name


@dataclass(frozen=True, slots=True)
class Statement:
    text: str  # as sent, without a trailing ';'
    keyword: str  # the first keyword, upper case
    format: str | None  # the FORMAT clause's format, if any


def _code_only(sql: str) -> str:
    """`sql` with comments blanked and string literals and quoted names replaced by `''`, so
    what remains is keywords, names and punctuation."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if sql.startswith("--", i) or ch == "#":
            end = sql.find("\n", i)
            i = n if end < 0 else end
            out.append(" ")
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            if end < 0:
                raise StatementError(62, "SYNTAX_ERROR", "Syntax error: unterminated comment")
            i = end + 2
            out.append(" ")
        elif ch in "'\"`":
            j = i + 1
            while j < n and sql[j] != ch:
                j += 2 if sql[j] == "\\" else 1
            if j >= n:
                raise StatementError(62, "SYNTAX_ERROR", f"Syntax error: unterminated quoted text starting {sql[i:i + 20]!r}")
            i = j + 1
            out.append("''")
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def parse(sql: str) -> Statement:
    code = _code_only(sql).strip()
    while code.endswith(";"):
        code = code[:-1].rstrip()
    if not code:
        raise StatementError(62, "SYNTAX_ERROR", "Empty query")
    if ";" in code:
        raise StatementError(62, "SYNTAX_ERROR", "Syntax error: multi-statements are not allowed")
    match = re.match(r"[\s(]*([A-Za-z]+)", code)
    keyword = match.group(1).upper() if match else ""
    if keyword not in READING:
        raise StatementError(
            164, "READONLY",
            f"Cannot execute query in readonly mode: this endpoint only reads "
            f"({', '.join(sorted(READING))}), and {keyword or 'this statement'} is not one of those")
    fmt = _TRAILING_FORMAT.search(code)
    text = sql.rstrip().rstrip(";").rstrip()
    return Statement(text=text, keyword=keyword, format=fmt.group(1) if fmt else None)
