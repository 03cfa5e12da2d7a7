"""Read access to the spans table and its rollups: parameterized SQL on a small thread pool.

clickhouse-connect clients are synchronous and not safe for concurrent use, so every
query thread opens its own client (lazily, with `open_client`) and keeps it in a
thread-local. User input only ever reaches ClickHouse as server-side bound parameters
(`{name:Type}` placeholders); the SQL text itself lives in `sql/*.sql`, where the only
substitutions are the database and table identifiers from the validated config and, for the
trace search, fixed fragments chosen by which filters a search has (SPAN_FILTERS,
AttributeFilter, the sort direction): the text depends on the shape of a search, never on a
value in it.

The trace list, sessions, GenAI metrics and prompt queries read the rollups the exporter's
schema keeps (`<traces>_trace_rollup`, `<traces>_genai_usage_1m`, `<traces>_prompts`); only
span-level search filters, metrics by user or session, and single traces read the spans
table.
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from importlib import resources
from string import Template
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
from clickhouse_connect.driver.client import Client

from tracehouse.query.config import MAX_TRACE_DURATION_S, QueryClickHouseConfig
from tracehouse.sinks.clickhouse.client import open_client
from tracehouse.sinks.clickhouse.errors import public_reason
from tracehouse.processors.genai_normalize.mapping import MODEL_PREFIX_PROVIDERS, normalize_provider
from tracehouse.sinks.clickhouse.genai import GENAI_COLUMN_NAMES
from tracehouse.sinks.clickhouse.scores import insert_scores, scores_table

if TYPE_CHECKING:
    from tracehouse.query.scores import ScoreFilter

log = structlog.get_logger("tracehouse.query.store")
T = TypeVar("T")

# A trace read returns at most this many spans (the response says when it was cut).
MAX_TRACE_SPANS = 100_000
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1
# A list row whose trace left the rollup between the page and its labels (TTL).
_NO_LABELS = {"root_span_name": "", "root_service_name": "", "service_names": [], "models": []}


# A span row's place in a read of several traces' spans (sql/trace_spans.sql's order): the
# trace's position in the ids read (from 1), its start in ns, its span id.
SpanKey = tuple[int, int, str]


def span_key(trace_ids: Sequence[str], row: Mapping[str, Any]) -> SpanKey:
    return trace_ids.index(row["TraceId"]) + 1, int(row["start_ns"]), row["SpanId"]


class StoreError(Exception):
    """ClickHouse could not answer; the API turns this into a 503."""


SQL_FILES = ("trace_search", "trace_search_spans", "trace_search_size", "trace_search_cutoff", "trace_search_totals",
             "trace_search_totals_by_minute", "trace_search_top", "trace_labels", "trace_spans", "prompt_list",
             "prompt_registry", "prompt_usage", "sessions",
             "jaeger_services", "jaeger_operations", "jaeger_search", "jaeger_dependencies", "experiment_list", "run_list", "run_metric_history",
             "mlflow_traces", "trace_scores", "trace_mlflow", "trace_list_scores", "score_by_id", "score_rollup",
             "trace_genai_events")

# MLflow reads (experiments, runs, scores): the most rows one response holds of each.
MAX_EXPERIMENTS = 1000
MAX_RUNS = 1000
MAX_MLFLOW_TRACES = 200
MAX_METRIC_POINTS = 100_000
MAX_SCORES = 10_000
# A trace's GenAI events read from the logs table (each LLM call records one to a handful).
MAX_GENAI_EVENTS = 100_000


def load_sql(name: str, database: str, table: str, logs: str = "otel_logs", **slots: str) -> str:
    """`sql/<name>.sql` with `${db}`, `${table}` (alias `${traces}`, the spans table, as in
    the exporter's migrations) and `${logs}` (the log records table) filled: identifiers from validated config; `${genai_columns}`
    is the stored GenAI columns' list; `slots` fill a file's other placeholders (fixed SQL)."""
    text = resources.files("tracehouse.query").joinpath("sql", f"{name}.sql").read_text()
    # The search's per-query slots stay placeholders, filled by SearchQuery.sql().
    deferred = {slot: "${" + slot + "}" for slot in SEARCH_SQL_SLOTS}
    return Template(text).substitute(db=database, table=table, traces=table, logs=logs,
                                     genai_columns=",\n    ".join(GENAI_COLUMN_NAMES), **deferred, **slots)


def genai_metrics_sql(database: str, table: str) -> dict[str, str]:
    """genai_metrics.sql over the usage rollup, and over the same rows computed from the spans
    with their trace's user and session (`genai_metrics_by_trace`: grouped by user or session)."""
    rollup = {"usage_rows": f"{database}.{table}_genai_usage_1m", "user_id": "''", "session_id": "''"}
    spans = {"usage_rows": "(\n" + load_sql("genai_usage_spans", database, table) + ")",
             "user_id": "toString(UserId)", "session_id": "toString(SessionId)"}
    return {"genai_metrics": load_sql("genai_metrics", database, table, **rollup),
            "genai_metrics_by_trace": load_sql("genai_metrics", database, table, **spans)}


def bare_model(model: str) -> str:
    """`openai/gpt-4o-mini` -> `gpt-4o-mini`: models are stored without a provider prefix
    (genai_normalize splits it off), so a filter with one as the client sent it still matches."""
    prefix, sep, rest = model.partition("/")
    return rest if sep and rest and prefix.lower() in MODEL_PREFIX_PROVIDERS else model


# Attribute filter operators (`attr.<key>=<op>:<value>`, query/search.py) -> the test on one
# map's value `{m}[{k}]`. A missing key reads as '', which no test but `eq ''` passes (so
# that one also asks for the key, as `ne` does).
ATTRIBUTE_TESTS: dict[str, str] = {
    "eq": "{m}[{k}] = {v}",
    "ne": "{m}[{k}] != {v}",
    "contains": "positionCaseInsensitiveUTF8({m}[{k}], {v}) > 0",
    "gt": "toFloat64OrNull({m}[{k}]) > {n}",
    "gte": "toFloat64OrNull({m}[{k}]) >= {n}",
    "lt": "toFloat64OrNull({m}[{k}]) < {n}",
    "lte": "toFloat64OrNull({m}[{k}]) <= {n}",
    "exists": "",
}
NUMERIC_OPERATORS = frozenset({"gt", "gte", "lt", "lte"})
_MAPS = ("SpanAttributes", "ResourceAttributes")
# Span-level filters of a search (trace_search_spans.sql) -> their condition, present only
# when the filter is.
SPAN_FILTERS: dict[str, str] = {
    "service": "ServiceName = {service:String}",
    "span_name": "SpanName = {span_name:String}",
    "provider": "GenAIProvider IN ({provider:String}, {provider_normalized:String})",
    "model": "(GenAIRequestModel IN ({model:String}, {model_bare:String}) "
             "OR GenAIResponseModel IN ({model:String}, {model_bare:String}))",
    "prompt": "GenAIPromptName = {prompt:String}",
    "prompt_version": "GenAIPromptVersion = {prompt_version:String}",
    "span_kind": "(has({genai_kinds:Array(String)}, lower(toString(GenAISpanKind))) "
                 "OR has({otel_kinds:Array(String)}, toString(SpanKind)))",
}
# The span filters a rollup row can test on its own: it keeps its spans' services and models
# (request and response, as the model filter reads them). The cut of a page sorted by value
# (trace_search_top.sql) counts only the rows that pass them, so a cheap model's page, whose
# traces are rare among the costliest, finds its candidates in one round instead of grouping
# rows of other models in three. The cut's edge can only move outward, and the candidates are
# still filtered exactly. (Not the time sort's cut: its row count scales the totals.)
ROW_SPAN_FILTERS: dict[str, str] = {
    "service": "has(ServiceNames, {service:String})",
    "model": "hasAny(ModelNames, [{model:String}, {model_bare:String}])",
}
SORTS = ("time", "cost", "tokens", "duration")
ORDERS = ("desc", "asc")
# Per direction: the page order and the keyset condition "after the cursor's row" (the
# ascending order is the exact reverse of the descending one, ties included).
_ORDER_SQL = {
    "desc": ("sort_key DESC, trace_id ASC",
             "(sort_key < {cursor_key:Int64} OR (sort_key = {cursor_key:Int64} AND trace_id > {cursor_trace_id:String}))"),
    "asc": ("sort_key ASC, trace_id DESC",
            "(sort_key > {cursor_key:Int64} OR (sort_key = {cursor_key:Int64} AND trace_id < {cursor_trace_id:String}))"),
}
# Placeholders of trace_search(_spans, _totals, _cutoff).sql filled per query (the rest when
# they are loaded).
SEARCH_SQL_SLOTS = ("span_traces", "span_filters", "order_by", "after_cursor", "totals", "row_traces", "candidates",
                    "rollup_rows", "direction", "edge", "labels", "row_key", "after", "key_order", "key_filter",
                    "aggregates", "row_span_filters")
INT64_MIN = -(2**63)
# The exact totals of a search: window sums over its every trace, before the page is cut.
EXACT_TOTALS = """,
    count() OVER () AS matched_traces,
    sum(ifNull(input_tokens, 0)) OVER () AS matched_input_tokens,
    sum(ifNull(output_tokens, 0)) OVER () AS matched_output_tokens,
    -- Summed in Decimal: a Float64 window sum depends on the order the threads add in, and
    -- the totals must be the same on every page.
    toFloat64(sum(ifNull(cost_exact, 0)) OVER ()) AS matched_cost_usd"""
# The labels of a page that groups few traces (trace_search.sql's labels slot), as
# trace_labels.sql reads them for the page of a search over every trace.
_LABELS = """,
        min(FirstSpan) AS first_span,
        first_span.3 AS root_span_name,
        first_span.4 AS root_service_name,
        arraySort(groupUniqArrayArray(ServiceNames)) AS service_names,
        arraySort(groupUniqArrayArray(ModelNames)) AS models"""
# Traces with a rollup row passing `condition`, for trace_search.sql's row_traces and
# candidates slots and the value sorts' candidate rows ({rollup}: the per-trace rollup table).
_TRACES_WITH_ROW = "TraceId IN (SELECT TraceId FROM {rollup} WHERE Tenant = {{tenant:String}} AND {condition})"
_ROLLUP_TRACES = "AND " + _TRACES_WITH_ROW
_IN_WINDOW = ("Start >= fromUnixTimestamp64Nano({start_ns:Int64}) - toIntervalNanosecond({window_ns:Int64}) "
              "AND Start < fromUnixTimestamp64Nano({end_ns:Int64}) + toIntervalNanosecond({window_ns:Int64})")
# A trace passes a session, user or error filter only if one of its rows does (the
# merged value is some row's): those rows pick the traces to group.
_ROW_FILTERS = {"session": "SessionId = {session:String}", "user": "UserId = {user:String}",
                "error": "ErrorSpans > 0"}
# A newest- or oldest-first page at scale (TraceStore._page_at_scale): the traces that start
# in [floor_ns, ceiling_ns], whole. Such a trace has its first rollup row there and every
# row within the window after it; a trace with a row there that started before floor_ns
# (it has a row in the window before) is only a part, and is left out. `starting` leaves
# out the traces that end before the range (the window before it is hours of rows): a
# trace in the range has its first row reach the range, or is in several rows, one of
# them without the root span.
_CANDIDATES = """AND Start >= fromUnixTimestamp64Nano({{floor_ns:Int64}})
      AND Start <= fromUnixTimestamp64Nano({{ceiling_ns:Int64}}) + toIntervalNanosecond({{window_ns:Int64}})
      AND TraceId IN ({starting})
      AND TraceId NOT IN (
          SELECT TraceId FROM {rollup}
          WHERE Tenant = {{tenant:String}}
            AND Start >= fromUnixTimestamp64Nano({{floor_ns:Int64}}) - toIntervalNanosecond({{window_ns:Int64}})
            AND Start < fromUnixTimestamp64Nano({{floor_ns:Int64}})
            AND TraceId IN ({starting}))"""
# A rollup row's own sort key (trace_search_top.sql), what trace_search.sql's sort_key is for
# a trace in that one row.
_ROW_KEYS = {
    "cost": "ifNull(toInt64(round(toFloat64(TotalCostUSD) * 1e9)), {unpriced_key:Int64})",
    "tokens": "toInt64(ifNull(TotalTokens, ifNull(InputTokens, 0) + ifNull(OutputTokens, 0)))",
    "duration": "toInt64(toUnixTimestamp64Nano(End) - toUnixTimestamp64Nano(Start))",
}
# A page sorted by a value at scale: the rows whose own key reaches the cut, read from the
# rollup's projection in that key's order (migration 013), and every row of the traces in
# several rows (one without the root span) that is not among them. Two reads, not one
# condition with OR: an OR with the trace ids would have the projection's index skip
# nothing. `hint` bounds what the projection is sorted by when the key is not that.
_KEY_CANDIDATE_ROWS = """(
        SELECT * FROM {rollup} WHERE Tenant = {{tenant:String}} AND {in_window}
          AND {hint}{row_key} BETWEEN {{key_floor:Int64}} AND {{key_ceiling:Int64}}
        UNION ALL
        SELECT * FROM {rollup} WHERE Tenant = {{tenant:String}} AND {in_window}
          AND NOT ({row_key} BETWEEN {{key_floor:Int64}} AND {{key_ceiling:Int64}})
          {split_traces})"""
# The cost projection is sorted by the Float64 cost, which the row key rounds to nano-dollars:
# a key within the bounds has a cost within them less a nano-dollar (a looser bound, for the
# index). A row without a cost never reaches the bound (its key is the unpriced one), so the
# hint applies only while the page's bounds leave the unpriced key out (a constant the
# engine folds before it reads the index).
_COST_HINTS = {"desc": "toFloat64(TotalCostUSD) >= ({key_floor:Int64} - 1) / 1e9",
               "asc": "toFloat64(TotalCostUSD) <= ({key_ceiling:Int64} + 1) / 1e9"}
_COST_HINT = ("({{unpriced_key:Int64}} BETWEEN {{key_floor:Int64}} AND {{key_ceiling:Int64}} "
              "OR {bound}) AND ")
# The estimated totals of a search without filters, or with only a status filter
# (trace_search_totals_by_minute.sql): the very aggregates of the rollup's per-minute totals
# (migration 015), which the engine reads only for a query of its own expressions. A status
# tests each row, as trace_search_row_filters.sql does.
_STATUS_ROWS = {"error": "ErrorSpans > 0", "ok": "ErrorSpans = 0", "unset": "StatusSetSpans = 0"}
_MINUTE_TOTALS = {
    "": "uniqCombinedState(TraceId) AS traces, sum(ifNull(InputTokens, 0)) AS input_tokens, "
        "sum(ifNull(OutputTokens, 0)) AS output_tokens, sum(ifNull(TotalCostUSD, 0)) AS cost_usd",
    **{status: f"uniqCombinedStateIf(TraceId, {rows}) AS traces, "
               f"sumIf(ifNull(InputTokens, 0), {rows}) AS input_tokens, "
               f"sumIf(ifNull(OutputTokens, 0), {rows}) AS output_tokens, "
               f"sumIf(ifNull(TotalCostUSD, 0), {rows}) AS cost_usd" for status, rows in _STATUS_ROWS.items()},
}
_STARTING = ("SELECT TraceId FROM {rollup} WHERE Tenant = {{tenant:String}} "
             "AND Start >= fromUnixTimestamp64Nano({{floor_ns:Int64}}) "
             "AND Start <= fromUnixTimestamp64Nano({{ceiling_ns:Int64}}) "
             "AND (LastSpanStart >= fromUnixTimestamp64Nano({{start_ns:Int64}}) OR {split_traces})")
_SPLIT_STARTING = ("FirstSpan.1 = 1 AND Start >= fromUnixTimestamp64Nano({floor_ns:Int64}) "
                   "AND Start <= fromUnixTimestamp64Nano({ceiling_ns:Int64}) + toIntervalNanosecond({window_ns:Int64})")


@dataclass(frozen=True, slots=True)
class AttributeFilter:
    """One span-level attribute condition: the span attribute or the resource attribute
    `key` passes `op` (ATTRIBUTE_TESTS) against `value` (a string) or `number`."""

    key: str
    op: str = "eq"
    value: str = ""
    number: float = 0.0

    def condition(self, i: int) -> str:
        """SQL text for the i-th filter: only fixed fragments and `{attr_*_i:Type}` placeholders.

        Either map may hold the key. Shaped for the skip indexes: `eq` tests the values only
        (the values' bloom filters; a value found implies its key), the other value tests are
        preceded by "either map has the key" (the keys' bloom filters), which they imply.
        `exists` reads the maps' `keys` subcolumns instead: no index applies to them, but they
        are a fraction of the maps (whose values hold the messages), and a key found in many
        granules made the bloom filter read whole maps for each (BENCHMARKS.md)."""
        k, v, n = f"{{attr_key_{i}:String}}", f"{{attr_value_{i}:String}}", f"{{attr_number_{i}:Float64}}"
        if self.op == "exists":
            return "(" + " OR ".join(f"has({m}.keys, {k})" for m in _MAPS) + ")"
        has_key = " OR ".join(f"mapContains({m}, {k})" for m in _MAPS)
        tests = [ATTRIBUTE_TESTS[self.op].format(m=m, k=k, v=v, n=n) for m in _MAPS]
        if self.op in ("eq", "ne") and (self.op == "ne" or not self.value):
            tests = [f"(mapContains({m}, {k}) AND {t})" for m, t in zip(_MAPS, tests, strict=True)]
        value_test = f"({' OR '.join(tests)})"
        return value_test if self.op == "eq" else f"({has_key}) AND {value_test}"


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A validated trace search (query/search.py parses one from a request's parameters);
    empty strings / zero mean "no filter"."""

    start_ns: int
    end_ns: int
    limit: int  # traces per page
    service: str = ""
    span_name: str = ""
    status: str = ""
    provider: str = ""
    model: str = ""
    prompt: str = ""
    prompt_version: str = ""
    session: str = ""
    user: str = ""
    genai_kinds: Sequence[str] = ()   # GenAI span kinds (llm, tool, ...), any of
    otel_kinds: Sequence[str] = ()    # OTel SpanKind as stored (Server, Client, ...), any of
    min_duration_ns: int = 0
    max_duration_ns: int = INT64_MAX
    min_tokens: int = 0
    max_tokens: int = UINT64_MAX
    min_cost_usd: float = 0.0
    max_cost_usd: float = math.inf
    attributes: Sequence[AttributeFilter] = field(default_factory=tuple)
    scores: Sequence[ScoreFilter] = ()  # query/scores.py: the trace has such a score
    sort: str = "time"  # time | cost | tokens | duration
    order: str = "desc"  # desc: largest (newest) first; asc: the reverse
    cursor: tuple[int, str] | None = None  # (sort key, trace_id) of the last row shown
    # Longest trace the list sums whole when it crosses the range's edges (trace_search.sql).
    window_ns: int = int(MAX_TRACE_DURATION_S * 1_000_000_000)

    def span_conditions(self) -> list[str]:
        """The span-level filters this search has, as SQL conditions (SPAN_FILTERS, AttributeFilter)."""
        given = {"service": self.service, "span_name": self.span_name, "provider": self.provider,
                 "model": self.model, "prompt": self.prompt, "prompt_version": self.prompt_version,
                 "span_kind": self.genai_kinds or self.otel_kinds}
        return ([SPAN_FILTERS[name] for name, value in given.items() if value]
                + [a.condition(i) for i, a in enumerate(self.attributes)])

    @property
    def span_filtered(self) -> bool:
        return bool(self.span_conditions())

    def span_sql(self, template: str) -> str:
        """trace_search_spans.sql: the traces a span passing every span-level filter picks."""
        return Template(template).substitute(span_filters="".join(f"\n  AND {c}" for c in self.span_conditions()))

    def sql(self, template: str, span_template: str, rollup: str, *, exact_totals: bool = True,
            candidates: bool = False, span_ids: bool = False) -> str:
        """trace_search.sql with this query's direction, span-level selection (none when the
        search has no span-level filter) and row pre-selection; with the window totals, or
        without (estimated apart); grouping every trace in the range, or only the candidates
        between `floor_ns` and `ceiling_ns` (`parameters`). `span_ids`: the traces the span
        filters pick are known already (`span_trace_ids`)."""
        order_by, after_cursor = _ORDER_SQL[self.order]
        key_rows = self._key_candidate_rows(rollup) if candidates and self.sort != "time" else ""
        if span_ids:
            span_traces = "AND TraceId IN {span_trace_ids:Array(String)}"
        elif key_rows and self.span_filtered:
            # The candidates by value are spread over the whole range: the span filters test
            # only their spans (~1,000 traces' rows, not every span of a day: BENCHMARKS.md).
            span_traces = (f"AND TraceId IN (SELECT TraceId FROM ({self.span_sql(span_template)})\n"
                           f"      WHERE TraceId IN (SELECT TraceId FROM {key_rows}))")
        else:
            span_traces = self._span_traces(span_template)
        # Candidates are few already: finding the rows would cost a pass over every row.
        rows = [] if candidates else [
            _ROLLUP_TRACES.format(rollup=rollup, condition=f"{_IN_WINDOW} AND {_ROW_FILTERS[name]}")
            for name, given in (("session", self.session), ("user", self.user), ("error", self.status == "error"))
            if given]
        return Template(template).substitute(
            span_traces=span_traces, order_by=order_by, after_cursor=after_cursor,
            totals=EXACT_TOTALS if exact_totals else "", row_traces="\n      ".join(rows),
            # Candidates lie in a few granules of the rollup's projection in the page's order,
            # which holds the labels (migrations 012, 015): read there, not looked up by id after.
            labels=_LABELS if candidates else "",
            candidates=_CANDIDATES.format(rollup=rollup, starting=_STARTING.format(
                rollup=rollup, split_traces=_TRACES_WITH_ROW.format(rollup=rollup, condition=_SPLIT_STARTING)))
            if candidates and self.sort == "time" else "",
            rollup_rows=key_rows or rollup)

    def _key_candidate_rows(self, rollup: str) -> str:
        hint = _COST_HINT.format(bound=_COST_HINTS[self.order]) if self.sort == "cost" else ""
        split_traces = _ROLLUP_TRACES.format(rollup=rollup, condition=f"{_IN_WINDOW} AND FirstSpan.1 = 1")
        return _KEY_CANDIDATE_ROWS.format(rollup=rollup, in_window=_IN_WINDOW, hint=hint,
                                          row_key=_ROW_KEYS[self.sort], split_traces=split_traces)

    def minute_totals(self) -> str:
        """The rollup's per-minute totals that answer this search's estimated totals
        (_MINUTE_TOTALS: every trace's, or those of the traces in a status); "" when it has a
        filter they lack."""
        if (self.span_filtered or self.session or self.user or self.scores or self.min_duration_ns > 0
                or self.max_duration_ns < INT64_MAX or self.min_tokens > 0 or self.max_tokens < UINT64_MAX
                or self.min_cost_usd > 0 or self.max_cost_usd < math.inf):
            return ""
        return _MINUTE_TOTALS[self.status]

    def totals_sql(self, template: str, span_template: str) -> str:
        """trace_search_totals.sql (the estimated totals) with this query's span-level selection,
        by the ids' 64-bit hashes (`TraceKey`, which the totals count already): a set of
        hundreds of thousands of ids costs ~100 ms more to build and probe as strings
        (BENCHMARKS.md). A hash shared by two ids would count a trace the filters leave out:
        ~1e-8 for a day of 10M spans, inside the estimate's ~1%."""
        if not self.span_filtered:
            return Template(template).substitute(span_traces="")
        return Template(template).substitute(
            span_traces=f"AND TraceKey IN (SELECT sipHash64(TraceId) FROM ({self.span_sql(span_template)}))")

    def _span_traces(self, span_template: str) -> str:
        """The span_traces slot: the traces a span passing the span-level filters picks."""
        return f"AND TraceId IN ({self.span_sql(span_template)})" if self.span_filtered else ""

    def cutoff_sql(self, template: str) -> str:
        """trace_search_cutoff.sql (the time sort) or trace_search_top.sql (the others) in the
        page's order (descending: the rows' largest keys)."""
        desc = self.order == "desc"
        direction = "DESC" if desc else "ASC"
        key_order, key_filter = f"row_key {direction}", ""
        if self.sort == "cost":  # the projection keeps the rows without a cost last (NULLS LAST)
            key_order = f"toFloat64(TotalCostUSD) {direction}{' NULLS FIRST' if desc else ''}"
            key_filter = "\n      AND TotalCostUSD IS NOT NULL"
        row_span_filters = "".join(f"\n      AND {sql}" for name, sql in ROW_SPAN_FILTERS.items()
                                   if getattr(self, name))
        return Template(template).substitute(direction=direction, edge="min" if desc else "max",
                                             row_key=_ROW_KEYS.get(self.sort, ""), after="<=" if desc else ">=",
                                             key_order=key_order, key_filter=key_filter,
                                             row_span_filters=row_span_filters)

    def cursor_bounds(self) -> tuple[int, int]:
        """(floor_ns, ceiling_ns): the starts a trace after this page's cursor can have (any
        without a cursor); for the time sort, the cursor bounds it on its side."""
        if self.cursor is None or self.sort != "time":
            return INT64_MIN, INT64_MAX
        return (INT64_MIN, self.cursor[0]) if self.order == "desc" else (self.cursor[0], INT64_MAX)

    def parameters(self) -> dict[str, Any]:
        cursor_key, cursor_trace = self.cursor if self.cursor else (0, "")
        params = {
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "service": self.service,
            "span_name": self.span_name,
            "provider": self.provider,
            "provider_normalized": normalize_provider(self.provider),
            "model": self.model,
            "model_bare": bare_model(self.model),
            "prompt": self.prompt,
            "prompt_version": self.prompt_version,
            "session": self.session,
            "user": self.user,
            "genai_kinds": list(self.genai_kinds),
            "otel_kinds": list(self.otel_kinds),
            "status": self.status,
            "min_duration_ns": self.min_duration_ns,
            "max_duration_ns": self.max_duration_ns,
            "min_tokens": self.min_tokens,
            "max_tokens": self.max_tokens,
            "min_cost_usd": float(self.min_cost_usd),
            "max_cost_usd": min(float(self.max_cost_usd), sys.float_info.max),
            "window_ns": self.window_ns,
            # The range's whole minutes (trace_search_totals_by_minute.sql): none when first >= end.
            "first_minute_s": -(-self.start_ns // 60_000_000_000) * 60,
            "end_minute_s": self.end_ns // 60_000_000_000 * 60,
            "sort": self.sort,
            "unpriced_key": INT64_MAX if self.order == "asc" else -1,
            "has_cursor": 1 if self.cursor else 0,
            # Candidates' bounds (trace_search.sql, 3.): none but at scale (TraceStore).
            "floor_ns": INT64_MIN,
            "ceiling_ns": INT64_MAX,
            "key_floor": INT64_MIN,
            "key_ceiling": INT64_MAX,
            "cursor_key": cursor_key,
            "cursor_trace_id": cursor_trace,
            "limit": self.limit + 1,  # one more than the page: whether another page follows
            "score_names": [f.name for f in self.scores],
            "score_ops": [f.op for f in self.scores],
            "score_numbers": [f.number for f in self.scores],
            "score_texts": [f.text for f in self.scores],
        }
        for i, a in enumerate(self.attributes):
            params[f"attr_key_{i}"] = a.key
            if a.op in NUMERIC_OPERATORS:
                params[f"attr_number_{i}"] = a.number
            elif a.op != "exists":
                params[f"attr_value_{i}"] = a.value
        return params


@dataclass(frozen=True, slots=True)
class JaegerSearchQuery:
    """A validated Jaeger-style search (GET /api/traces): span-level filters, all on one
    span; `end_ns` exclusive; `max_duration_ns` None = unbounded; tags are (key, value) pairs."""

    service: str
    start_ns: int
    end_ns: int
    limit: int
    operation: str = ""
    min_duration_ns: int = 0
    max_duration_ns: int | None = None
    tags: Sequence[tuple[str, str]] = field(default_factory=tuple)

    def parameters(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "operation": self.operation,
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "min_duration_ns": self.min_duration_ns,
            "max_duration_ns": UINT64_MAX if self.max_duration_ns is None else self.max_duration_ns,
            "tag_keys": [k for k, _ in self.tags],
            "tag_values": [v for _, v in self.tags],
            "limit": self.limit,
        }


# Service and operation lists (Jaeger API) return at most this many names.
MAX_NAMES = 100_000


# ClickHouse DateTime (the rollup's Minute) ends at 2106-02-07T06:28:15Z.
MAX_DATETIME_S = 2**32 - 1

GROUP_DIMENSIONS = ("service", "provider", "model", "response_model", "prompt", "prompt_version", "user", "session")
# Dimensions the usage rollup does not hold: grouped by one, the metrics read the spans.
TRACE_DIMENSIONS = frozenset({"user", "session"})


@dataclass(frozen=True, slots=True)
class MetricsQuery:
    """A validated GenAI metrics request over whole buckets: `start_s`, `end_s` are
    multiples of `step_s` (seconds, a multiple of 60); empty filters mean "no filter"."""

    start_s: int
    end_s: int
    step_s: int
    group_by: Sequence[str] = ()
    service: str = ""
    provider: str = ""
    model: str = ""
    prompt: str = ""
    prompt_version: str = ""
    max_rows: int = 200_000
    # Grouped by user or session: the longest trace whose user a span in the range finds.
    window_ns: int = int(MAX_TRACE_DURATION_S * 1_000_000_000)

    @property
    def by_trace(self) -> bool:
        """Grouped by a dimension of the trace (user, session) that the usage rollup lacks."""
        return bool(TRACE_DIMENSIONS.intersection(self.group_by))

    def parameters(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "start_s": min(self.start_s, MAX_DATETIME_S),
            "end_s": min(self.end_s, MAX_DATETIME_S),
            "step_s": self.step_s,
            "service": self.service,
            "provider": self.provider,
            "provider_normalized": normalize_provider(self.provider),
            "model": self.model,
            "model_bare": bare_model(self.model),
            "prompt": self.prompt,
            "prompt_version": self.prompt_version,
            "max_rows": self.max_rows,
            "window_ns": self.window_ns,
        }
        for dimension in GROUP_DIMENSIONS:
            params[f"by_{dimension}"] = 1 if dimension in self.group_by else 0
        return params


def _scaled_totals(row: Mapping[str, Any], in_range: int, sliced: int) -> dict[str, Any]:
    """The totals a page's row carries, of candidates cut from `sliced` rollup rows, scaled to
    the `in_range` rows of the whole range (0: every trace was a candidate, they are exact)."""
    totals = {name: row[name] for name in ("matched_traces", "matched_input_tokens", "matched_output_tokens",
                                           "matched_cost_usd")}
    if not sliced:
        return totals
    scale = in_range / sliced
    return {"matched_traces": round(totals["matched_traces"] * scale),
            "matched_input_tokens": round(totals["matched_input_tokens"] * scale),
            "matched_output_tokens": round(totals["matched_output_tokens"] * scale),
            "matched_cost_usd": totals["matched_cost_usd"] * scale, "totals_estimated": True}


class TraceStore:
    def __init__(self, config: QueryClickHouseConfig, max_workers: int = 4, max_query_memory_mib: int = 2048,
                 exact_totals_max_traces: int = 100_000, read_nice: int = 0):
        self._config = config
        self._settings: dict[str, Any] = {"max_execution_time": max(1, int(config.timeout)),
                                          "max_memory_usage": max_query_memory_mib * 1024 * 1024}
        if read_nice:
            self._settings["os_thread_priority"] = read_nice
        self._read_nice = read_nice
        self._executor: ThreadPoolExecutor | None = ThreadPoolExecutor(
            max_workers, thread_name_prefix="query-clickhouse", initializer=self._lower_priority)
        self._local = threading.local()
        self._clients: list[Client] = []
        self._clients_lock = threading.Lock()
        db, table = config.database, config.traces_table_name
        shared = {"score_traces": load_sql("trace_search_scores", db, table),
                  "row_filters": load_sql("trace_search_row_filters", db, table)}
        self._sql = ({name: load_sql(name, db, table, config.logs_table_name, **shared) for name in SQL_FILES}
                     | genai_metrics_sql(db, table))
        self._rollup = f"{db}.{table}_trace_rollup"
        self._exact_totals_max_traces = exact_totals_max_traces

    @property
    def config(self) -> QueryClickHouseConfig:
        return self._config

    # -- running queries -------------------------------------------------------------
    def _lower_priority(self) -> None:
        """This query thread at `read_nice`, for the Python half of a read (decoding, rows).
        Lowering needs no privilege; the engine's os_thread_priority applies only with
        CAP_SYS_NICE, and then puts the thread back to 0 when a query ends, so it is renewed."""
        if self._read_nice and os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) < self._read_nice:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self._read_nice)

    def _client(self) -> Client:
        client: Client | None = getattr(self._local, "client", None)
        if client is None:
            cfg = self._config
            client = open_client(cfg.endpoint, username=cfg.username, password=cfg.password,
                                 settings=self._settings,
                                 timeout_s=cfg.timeout, tls=cfg.tls)
            self._local.client = client
            with self._clients_lock:
                self._clients.append(client)
        return client

    def _run(self, name: str, parameters: Mapping[str, Any], sql: str | None = None) -> list[dict[str, Any]]:
        """On a query thread: rows as dicts (built here, not on the event loop: a trace of
        100k spans takes a while). `sql`: the text when it is built per query (else sql/<name>.sql)."""
        t0 = time.perf_counter()
        try:
            result = self._client().query(sql or self._sql[name], parameters=dict(parameters))
        except Exception as exc:
            log.warning("query failed", query=name, error=str(exc))
            raise StoreError(_short_error(exc)) from exc
        finally:
            self._lower_priority()
        log.debug("query done", query=name, rows=len(result.result_rows),
                  ms=round((time.perf_counter() - t0) * 1000, 2))
        names = result.column_names
        return [dict(zip(names, row, strict=True)) for row in result.result_rows]

    async def _query(self, name: str, parameters: Mapping[str, Any], sql: str | None = None) -> list[dict[str, Any]]:
        executor = self._executor
        if executor is None:
            raise StoreError("the query API is shutting down")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(executor, self._run, name, parameters, sql)
        except RuntimeError as exc:  # executor shut down between the check and the submit
            raise StoreError("the query API is shutting down") from exc

    async def _call(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        """`fn(client, *args)` on a query thread, its failure a StoreError."""
        executor = self._executor
        if executor is None:
            raise StoreError("the query API is shutting down")

        def run() -> T:
            try:
                return fn(self._client(), *args)
            except StoreError:
                raise
            except Exception as exc:
                log.warning("statement failed", what=what, error=str(exc))
                raise StoreError(_short_error(exc)) from exc
            finally:
                self._lower_priority()

        try:
            return await asyncio.get_running_loop().run_in_executor(executor, run)
        except RuntimeError as exc:
            raise StoreError("the query API is shutting down") from exc

    async def delete_trace(self, trace_id: str, *, tenant: str) -> int:
        """Delete the tenant's trace (spans and their rollup contributions); spans deleted."""
        from tracehouse.query.deletion import delete_trace

        cfg = self._config
        return await self._call("delete trace", delete_trace, cfg.database, cfg.traces_table_name, trace_id, tenant)

    async def expire(self, tenant: str, before: datetime) -> None:
        """Delete the tenant's data older than `before`."""
        from tracehouse.query.deletion import expire_tenant

        cfg = self._config
        await self._call("expire", expire_tenant, cfg.database, cfg.traces_table_name, tenant, before)

    # Every read names its tenant (keyword-only, never defaulted): rows of other tenants
    # are never read.
    async def search(self, query: SearchQuery, *, tenant: str, with_labels: bool = True,
                     with_totals: bool = True) -> list[dict[str, Any]]:
        """Trace summaries in the query's order: the page (`query.limit` rows) and, when another
        page follows, its first row. Without labels, no root name, services or models (an
        export pages through trace ids only). Each row carries the totals of the whole
        filtered set (`matched_*`), exact up to `exact_totals_max_traces` traces in the
        range, estimated above (`totals_estimated`); none `with_totals=False`."""
        params = {**query.parameters(), "tenant": tenant}
        # The span filters' probe matters only at scale, but it need not wait for the size
        # to say so: both at once (over a small range it is a short read, then unused).
        sized, probed = await asyncio.gather(self._query("trace_search_size", params),
                                             self._few_span_traces(query, params))
        size = sized[0]
        at_scale = size["rows"] > self._exact_totals_max_traces
        few = probed if at_scale else None
        if few is not None:  # the span filters pick these few traces: exact, totals included
            rows = await self._query("trace_search", {**params, "span_trace_ids": few},
                                     self._search_sql(query, exact_totals=with_totals, span_ids=True)) if few else []
        elif not at_scale:
            rows = await self._query("trace_search", params, self._search_sql(query, exact_totals=with_totals))
        elif with_totals and query.span_filtered and query.sort == "time":
            # Totals over the spans of the whole range cost what scanning them costs (seconds
            # for a text search over messages): scaled from the page's candidates instead.
            rows, sliced = await self._page_at_scale(query, params)
            if rows:
                totals = await self._page_totals(query, params, size, rows, sliced)
                for row in rows:
                    row.update(totals)
        elif with_totals and query.span_filtered:
            # Sorted by a value, the page's candidates are no sample of the range: the totals
            # are those a newest-first page of the same search estimates, read beside it.
            async def page_by_value() -> list[dict[str, Any]]:
                page, _ = await self._page_at_scale(query, params)
                if page and with_labels:
                    await self._label(page, query, tenant)
                return page

            rows, totals = await asyncio.gather(page_by_value(), self._newest_first_totals(query, params, size))
            for row in rows:
                row.update(totals)
            return rows
        elif with_totals:
            # The page and its scores (its labels too, when it was grouped without candidates)
            # are read while the totals are estimated.
            async def labelled_page() -> list[dict[str, Any]]:
                page, _ = await self._page_at_scale(query, params)
                if page and with_labels:
                    await self._label(page, query, tenant)
                return page

            rows, totals = await asyncio.gather(labelled_page(), self._estimated_totals(query, params))
            for row in rows:
                row.update(totals)
            return rows
        else:
            rows, _ = await self._page_at_scale(query, params)
        if rows and with_labels:
            await self._label(rows, query, tenant)
        return rows

    def _search_sql(self, query: SearchQuery, *, exact_totals: bool, candidates: bool = False,
                    span_ids: bool = False) -> str:
        return query.sql(self._sql["trace_search"], self._sql["trace_search_spans"], self._rollup,
                         exact_totals=exact_totals, candidates=candidates, span_ids=span_ids)

    # Search at scale: over a range of many traces, grouping every one of them per request
    # costs ~0.6 s per 1.7M traces (10M spans) on two cores, and the exact totals as much
    # again. A page groups only candidates, cut at the page's `n`-th rollup row: by start
    # (trace_search_cutoff.sql) for the time sort, by the rows' own keys
    # (trace_search_top.sql) for the others; `n` grows while the filters leave too few, then
    # every trace is grouped. Totals are estimated from the rollup's rows
    # (trace_search_totals.sql), or scaled from the candidates for span-filtered time pages.
    CANDIDATE_ROUNDS = (1_000, 16_000, 256_000)

    async def _page_at_scale(self, query: SearchQuery,
                             params: Mapping[str, Any]) -> tuple[list[dict[str, Any]], int | None]:
        """The page, and how many rollup rows its candidates were cut from: the rows'
        `matched_*` are the totals of the candidates that pass the filters; 0 when every
        trace was a candidate (the totals are exact); None when every trace in the range
        was grouped without them."""
        # Without window totals, the cursor's side bounds the traces to group too.
        floor, ceiling = query.cursor_bounds()
        floor, ceiling = max(floor, query.start_ns - query.window_ns), min(ceiling, query.end_ns - 1)
        params = {**params, "floor_ns": floor, "ceiling_ns": ceiling}
        # A session or user filter picks its few traces' rows directly (row_traces): grouping
        # them beats any candidate round.
        if not (query.session or query.user):
            time_sort = query.sort == "time"
            cut_name = "trace_search_cutoff" if time_sort else "trace_search_top"
            cut_sql = query.cutoff_sql(self._sql[cut_name])
            candidates_sql = self._search_sql(query, exact_totals=True, candidates=True)
            for n in self.CANDIDATE_ROUNDS:
                n = max(n, query.limit + 1)
                cut = (await self._query(cut_name, {**params, "candidates": n}, cut_sql))[0]
                if cut["taken"] < n and time_sort:  # fewer rows than that: every trace is a candidate
                    return await self._query("trace_search", params, candidates_sql), 0
                if cut["taken"] < n:
                    break
                edge = cut["cutoff_ns"] if time_sort else cut["cutoff_key"]
                bounds = ({"floor_ns": edge} if time_sort else {"key_floor": edge}) if query.order == "desc" \
                    else ({"ceiling_ns": edge} if time_sort else {"key_ceiling": edge})
                rows = await self._query("trace_search", {**params, **bounds}, candidates_sql)
                if len(rows) > query.limit:  # a full page and the next one's first row
                    return rows, n
        return await self._query("trace_search", params, self._search_sql(query, exact_totals=False)), None

    # Fewer traces than this pass a search's span filters: they are grouped exactly, by id.
    FEW_SPAN_TRACES = 1_000

    async def _few_span_traces(self, query: SearchQuery, params: Mapping[str, Any]) -> list[str] | None:
        """The traces the search's span filters pick when they are few (None: many, or no
        span filter). Reads spans until that many distinct traces pass: a common value stops
        early, a rare one is found through the skip indexes."""
        if not query.span_filtered:
            return None
        span_sql = query.span_sql(self._sql["trace_search_spans"])
        probe = f"SELECT DISTINCT TraceId AS trace_id FROM ({span_sql}) LIMIT {{probe:UInt32}}"
        found = await self._query("trace_search_probe", {**params, "probe": self.FEW_SPAN_TRACES}, probe)
        return [r["trace_id"] for r in found] if len(found) < self.FEW_SPAN_TRACES else None

    async def _newest_first_totals(self, query: SearchQuery, params: Mapping[str, Any],
                                   size: Mapping[str, Any]) -> dict[str, Any]:
        """A span-filtered search's totals at scale, as its newest-first page estimates them:
        the traces that pass among that page's candidates, scaled to the range's traces."""
        newest = replace(query, sort="time", order="desc", cursor=None)
        rows, sliced = await self._page_at_scale(newest, {**params, **newest.parameters()})
        return await self._page_totals(query, params, size, rows, sliced)

    async def _page_totals(self, query: SearchQuery, params: Mapping[str, Any], size: Mapping[str, Any],
                           rows: list[dict[str, Any]], sliced: int | None) -> dict[str, Any]:
        """The totals of a time-sorted page at scale (`_page_at_scale`): its candidates' that
        pass, scaled to the range; estimated from the rows when no candidate passed, or when
        every trace was grouped without totals."""
        if not rows or sliced is None:
            return await self._estimated_totals(query, params)
        return _scaled_totals(rows[0], size["in_range"], sliced)

    async def _estimated_totals(self, query: SearchQuery, params: Mapping[str, Any]) -> dict[str, Any]:
        if aggregates := query.minute_totals():  # the whole minutes from the rollup's per-minute totals
            sql = Template(self._sql["trace_search_totals_by_minute"]).substitute(aggregates=aggregates)
            totals = (await self._query("trace_search_totals_by_minute", params, sql))[0]
        else:
            sql = query.totals_sql(self._sql["trace_search_totals"], self._sql["trace_search_spans"])
            totals = (await self._query("trace_search_totals", params, sql))[0]
        return {**totals, "totals_estimated": True}

    async def _label(self, rows: list[dict[str, Any]], query: SearchQuery, tenant: str) -> None:
        """The page's labels (root name, services, models; unless its query gave them) and
        scores, by trace id."""
        look_up = "service_names" not in rows[0]
        trace_ids = [r["trace_id"] for r in rows]
        found = self._query("trace_list_scores", {"trace_ids": trace_ids, "tenant": tenant})
        if look_up:
            labels, found_scores = await asyncio.gather(self._query("trace_labels", {
                "trace_ids": trace_ids, "start_ns": query.start_ns, "end_ns": query.end_ns,
                "window_ns": query.window_ns, "tenant": tenant}), found)
            by_trace = {label["trace_id"]: label for label in labels}
        else:
            found_scores = await found
        scores: dict[str, list[dict[str, Any]]] = {}
        for score in found_scores:
            scores.setdefault(score["trace_id"], []).append(score)
        for row in rows:
            if look_up:
                row.update(by_trace.get(row["trace_id"], _NO_LABELS))
            row["scores"] = scores.get(row["trace_id"], [])

    async def trace_spans(self, trace_id: str, max_spans: int = MAX_TRACE_SPANS, *,
                          tenant: str) -> list[dict[str, Any]]:
        """Every span of the trace (each once), ordered by start time."""
        return await self.traces_spans([trace_id], max_spans, tenant=tenant)

    async def jaeger_services(self, since_ns: int, *, tenant: str) -> list[str]:
        """Distinct service names of spans since `since_ns`, sorted."""
        rows = await self._query("jaeger_services", {"since_ns": since_ns, "max_rows": MAX_NAMES, "tenant": tenant})
        return [r["service"] for r in rows]

    async def jaeger_operations(self, service: str, since_ns: int, *, tenant: str) -> list[tuple[str, str]]:
        """Distinct (span name, span kind) of one service's spans since `since_ns`, sorted."""
        rows = await self._query("jaeger_operations", {"service": service, "since_ns": since_ns,
                                                       "max_rows": MAX_NAMES, "tenant": tenant})
        return [(r["name"], r["kind"]) for r in rows]

    async def jaeger_search(self, query: JaegerSearchQuery, *, tenant: str) -> list[str]:
        """Ids of the matching traces, newest first; at most `query.limit`."""
        rows = await self._query("jaeger_search", {**query.parameters(), "tenant": tenant})
        return [r["trace_id"] for r in rows]

    async def jaeger_dependencies(self, start_ns: int, end_ns: int, service: str = "", *,
                                  tenant: str) -> list[dict[str, Any]]:
        """Edges `{parent, child, call_count}` between services with calls starting in
        [start_ns, end_ns] (sql/jaeger_dependencies.sql); of `service` only when given."""
        return await self._query("jaeger_dependencies", {
            "start_ns": start_ns, "end_ns": end_ns, "service": service, "tenant": tenant,
            "window_ns": int(MAX_TRACE_DURATION_S * 1_000_000_000), "max_rows": MAX_NAMES})

    async def traces_spans(self, trace_ids: Sequence[str], max_spans: int = MAX_TRACE_SPANS, *,
                           tenant: str, after: SpanKey | None = None) -> list[dict[str, Any]]:
        """Every span (each once) of these traces, trace by trace in the given order, each by
        start time. At most `max_spans` rows, from the one after `after` (`span_key` of the
        last row read) on."""
        if not trace_ids:
            return []
        after_trace, after_ns, after_span_id = after or (0, 0, "")
        return await self._query("trace_spans", {"trace_ids": list(trace_ids), "max_spans": max_spans,
                                                 "tenant": tenant, "after_trace": after_trace,
                                                 "after_ns": after_ns, "after_span_id": after_span_id})

    async def genai_metrics(self, query: MetricsQuery, *, tenant: str) -> list[dict[str, Any]]:
        """Usage points, per-group totals and the grand total (see sql/genai_metrics.sql): from
        the usage rollup, or from the spans when grouped by user or session."""
        return await self._query("genai_metrics_by_trace" if query.by_trace else "genai_metrics",
                                 {**query.parameters(), "tenant": tenant})

    async def sessions(self, start_ns: int, end_ns: int, user: str, limit: int, *, tenant: str) -> list[dict[str, Any]]:
        """One row per session id with a turn starting in [start, end); see sql/sessions.sql."""
        return await self._query("sessions", {"start_ns": start_ns, "end_ns": end_ns, "user": user, "limit": limit,
                                              "tenant": tenant})

    async def prompt_list(self, q: str, limit: int, offset: int, *, tenant: str) -> list[dict[str, Any]]:
        """One row per prompt name (registry and usage), by name; `total_names` on each row."""
        return await self._query("prompt_list", {"q": q, "limit": limit, "offset": offset, "tenant": tenant})

    async def prompt_registry(self, name: str, *, tenant: str) -> list[dict[str, Any]]:
        """The registry entry (earliest claim) of every version of one prompt."""
        return await self._query("prompt_registry", {"name": name, "tenant": tenant})

    async def prompt_usage(self, name: str, start_s: int = 0, end_s: int = MAX_DATETIME_S, *,
                           tenant: str) -> list[dict[str, Any]]:
        """Usage of one prompt per version, summed over the minutes in [start_s, end_s)."""
        return await self._query("prompt_usage", {"name": name, "start_s": start_s, "end_s": end_s,
                                                  "tenant": tenant})

    # -- MLflow: experiments, runs, trace info and scores (the MLflow receiver's tables) --
    async def experiments(self, experiment_id: str = "", *, active_only: bool, limit: int = MAX_EXPERIMENTS,
                          tenant: str) -> list[dict[str, Any]]:
        """Experiments newest first (one when `experiment_id` is set), with run and trace counts."""
        return await self._query("experiment_list", {"experiment_id": experiment_id, "active_only": int(active_only),
                                                     "limit": limit, "tenant": tenant})

    async def runs(self, *, experiment_id: str = "", run_id: str = "", parent_run_id: str = "",
                   active_only: bool = True, limit: int = MAX_RUNS, tenant: str) -> list[dict[str, Any]]:
        """Runs newest first with params, tags and latest metrics; filters '' = any."""
        return await self._query("run_list", {"experiment_id": experiment_id, "run_id": run_id,
                                              "parent_run_id": parent_run_id, "active_only": int(active_only),
                                              "limit": limit, "tenant": tenant})

    async def run_metric_history(self, run_id: str, limit: int = MAX_METRIC_POINTS, *,
                                 tenant: str) -> list[dict[str, Any]]:
        """Every logged value of the run's metrics, by key, step, timestamp."""
        return await self._query("run_metric_history", {"run_id": run_id, "limit": limit, "tenant": tenant})

    async def mlflow_traces(self, *, experiment_id: str = "", run_id: str = "", limit: int = MAX_MLFLOW_TRACES,
                            tenant: str) -> list[dict[str, Any]]:
        """MLflow trace infos of an experiment or a source run, newest first, with rollup totals."""
        return await self._query("mlflow_traces", {"experiment_id": experiment_id, "run_id": run_id,
                                                   "limit": limit, "tenant": tenant})

    async def trace_genai_events(self, trace_id: str, limit: int = MAX_GENAI_EVENTS, *,
                                 tenant: str) -> list[dict[str, Any]]:
        """The trace's `gen_ai.*` events that arrived as log records, oldest first. None when
        the store has no logs table yet (a query service ahead of its exporter's migrations)."""
        try:
            return await self._query("trace_genai_events", {"trace_id": trace_id, "limit": limit, "tenant": tenant})
        except StoreError as exc:
            if "UNKNOWN_TABLE" not in f"{exc} {exc.__cause__}":
                raise
            log.warning("no logs table: spans are shown without the GenAI events sent as logs", error=str(exc))
            return []

    async def trace_scores(self, trace_id: str, limit: int = MAX_SCORES, *, span_id: str = "", name: str = "",
                           tenant: str) -> list[dict[str, Any]]:
        """The trace's scores (not deleted), oldest first; of one span or name when given."""
        return await self._query("trace_scores", {"trace_id": trace_id, "span_id": span_id, "name": name,
                                                  "limit": limit, "tenant": tenant})

    # -- scores: the write API (query/routes/scores.py) and the rollup ----------------
    async def scores_by_id(self, score_ids: Sequence[str], *, tenant: str) -> list[dict[str, Any]]:
        """The live score rows (table columns) with these ids."""
        return await self._query("score_by_id", {"score_ids": list(score_ids), "tenant": tenant})

    async def write_scores(self, rows: Sequence[Mapping[str, Any]], *, tenant: str) -> None:
        """Insert score rows (sinks/clickhouse/scores.py, the one writer) for the tenant."""
        table = scores_table(self._config.database, self._config.traces_table_name)
        await self._call("write scores", insert_scores, table, tenant, list(rows))

    async def delete_score(self, score_id: str, *, tenant: str) -> bool:
        """Mark the tenant's score deleted (a newer row with `Deleted = 1`); False when unknown."""
        rows = await self.scores_by_id([score_id], tenant=tenant)
        if rows:
            await self.write_scores([{**r, "Deleted": 1} for r in rows], tenant=tenant)
        return bool(rows)

    async def score_rollup(self, query: MetricsQuery, score_name: str, *, tenant: str) -> list[dict[str, Any]]:
        """Score aggregates per name, group and bucket (see sql/score_rollup.sql)."""
        return await self._query("score_rollup", {**query.parameters(), "score_name": score_name, "tenant": tenant})

    async def trace_mlflow(self, trace_id: str, *, tenant: str) -> dict[str, Any] | None:
        """The trace's MLflow trace info, or None when no MLflow client logged it."""
        rows = await self._query("trace_mlflow", {"trace_id": trace_id, "tenant": tenant})
        return rows[0] if rows else None

    # -- lifecycle -------------------------------------------------------------------
    async def close(self) -> None:
        """Wait for running queries, then close every thread's client. Safe twice."""
        executor, self._executor = self._executor, None
        if executor is None:
            return

        def drain() -> None:
            executor.shutdown(wait=True)
            with self._clients_lock:
                clients, self._clients[:] = list(self._clients), []
            for client in clients:
                try:
                    client.close()
                except Exception as exc:  # closing must not fail a shutdown
                    log.debug("closing a ClickHouse client failed", error=str(exc))

        await asyncio.to_thread(drain)


def _short_error(exc: Exception) -> str:
    """A one-line reason for API clients: ClickHouse's code and message, no query text, no
    trace, and nothing of where ClickHouse runs (the full error is logged)."""
    return public_reason(exc)
