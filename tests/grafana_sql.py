"""Turn a ClickHouse panel's raw SQL into the SQL Grafana sends, as the ClickHouse plugin does.

Three passes, in the plugin's order:
1. `$__conditionalAll(condition, $var)` (the plugin's frontend): `1=1` when the variable is
   "All" (`$__all`) or empty, else the condition;
2. template variables (Grafana's template service): `${var:singlequote}` -> `'a','b'`, with
   `'` escaped as `\\'`; a bare `$var` / `${var}` uses the plugin's format (a list becomes
   `'a','b'`, a single value stays as it is);
3. the backend's macros (pkg/macros): `$__timeFilter(col)`, `$__fromTime`, `$__toTime`,
   `$__timeInterval(col)`, `$__interval_s`.

Anything still starting with `$` afterwards is an error: a dashboard must not depend on a
macro this file does not model, since then its test would not show what Grafana runs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ALL = "$__all"


@dataclass(frozen=True)
class TimeRange:
    start_s: int
    end_s: int
    interval_s: int = 60


Value = str | Sequence[str]


def macro_args(sql: str, open_paren: int) -> tuple[list[str], int]:
    """Arguments of the call whose `(` is at `open_paren`, split at top-level commas (quotes
    and nested parentheses respected); and the index just past the closing `)`."""
    args, depth, start, i, quote = [], 0, open_paren + 1, open_paren, ""
    while i < len(sql):
        ch = sql[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'`\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                args.append(sql[start:i])
                return [a.strip() for a in args], i + 1
        elif ch == "," and depth == 1:
            args.append(sql[start:i])
            start = i + 1
        i += 1
    raise ValueError(f"unbalanced parentheses after {sql[open_paren - 20:open_paren + 20]!r}")


def _is_all(value: Value) -> bool:
    values = [value] if isinstance(value, str) else list(value)
    return values in ([], [""], [ALL])


def apply_conditional_all(sql: str, variables: Mapping[str, Value]) -> str:
    macro = "$__conditionalAll("
    while (at := sql.rfind(macro)) != -1:
        args, end = macro_args(sql, at + len(macro) - 1)
        if len(args) != 2:
            raise ValueError(f"$__conditionalAll takes 2 arguments, got {args}")
        name = re.fullmatch(r"\$\{?(\w+)\}?", args[1])
        if not name or name.group(1) not in variables:
            raise ValueError(f"$__conditionalAll names an unknown variable: {args[1]!r}")
        replacement = "1=1" if _is_all(variables[name.group(1)]) else args[0]
        sql = sql[:at] + replacement + sql[end:]
    return sql


def singlequote(value: Value) -> str:
    values = [value] if isinstance(value, str) else list(value)
    return ",".join("'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" for v in values)


def replace_variables(sql: str, variables: Mapping[str, Value]) -> str:
    def substitute(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("bare")
        fmt = match.group("format")
        if name.startswith("__"):
            return match.group(0)  # a macro, for the next pass
        if name not in variables:
            raise ValueError(f"unknown template variable ${name}")
        value = variables[name]
        if _is_all(value):
            raise ValueError(f"${name} is used outside $__conditionalAll while 'All' is selected")
        if fmt == "singlequote":
            return singlequote(value)
        if fmt:
            raise ValueError(f"variable format {fmt!r} is not modelled")
        return value if isinstance(value, str) else singlequote(value)
    pattern = r"\$\{(?P<braced>\w+)(?::(?P<format>\w+))?\}|\$(?P<bare>\w+)"
    return re.sub(pattern, substitute, sql)


def expand_macros(sql: str, time_range: TimeRange) -> str:
    frm, to = f"toDateTime({time_range.start_s})", f"toDateTime({time_range.end_s})"
    with_args = {
        "$__timeFilter(": lambda col: f"{col} >= {frm} AND {col} <= {to}",
        "$__timeInterval(": lambda col: (f"toStartOfInterval(toDateTime({col}), "
                                         f"INTERVAL {max(time_range.interval_s, 1)} second)"),
    }
    for macro, render in with_args.items():
        while (at := sql.find(macro)) != -1:
            args, end = macro_args(sql, at + len(macro) - 1)
            if len(args) != 1:
                raise ValueError(f"{macro}...) takes one argument, got {args}")
            sql = sql[:at] + render(args[0]) + sql[end:]
    plain = {"$__fromTime": frm, "$__toTime": to, "$__interval_s": str(max(time_range.interval_s, 1))}
    for macro in sorted(plain, key=len, reverse=True):
        sql = re.sub(re.escape(macro) + r"\b", plain[macro], sql)
    return sql


def to_grafana_sql(raw_sql: str, variables: Mapping[str, Value], time_range: TimeRange) -> str:
    sql = expand_macros(replace_variables(apply_conditional_all(raw_sql, variables), variables), time_range)
    leftover = re.search(r"\$\{?\w+", sql)
    if leftover:
        raise ValueError(f"{leftover.group(0)} is not expanded (not modelled here)")
    return sql


def clickhouse_targets(board: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(panel title, raw SQL) of every ClickHouse target of a dashboard, rows included."""
    found = []
    for panel in board["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            for target in inner.get("targets", []):
                if target["datasource"]["type"] == "grafana-clickhouse-datasource":
                    found.append((inner["title"], target["rawSql"]))
    return found
