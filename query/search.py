"""The trace search's parameters (`GET /api/v1/traces`, and any route that selects traces the
same way): one table of parameters gives the parser, the OpenAPI document and the names the
strict-parameter check (query/strict.py) allows.

`parse_search(items, limits)` takes a request's query parameters as (name, value) pairs and
returns the typed `SearchQuery` (query/store.py), or raises `ApiError(400, ..., parameter)`
naming the first bad one. Names it does not know are left to the caller: a route that adds
parameters of its own parses those itself, and the route's strictness check refuses the rest.

Prefixed parameters (`attr.<key>`) are parsed by the function `PREFIXES` maps the prefix to;
a new family (`score.<name>`) is one more entry there and one more `SearchQuery` field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tracehouse.processors.genai_normalize import mapping as genai
from tracehouse.query.config import QueryApiConfig
from tracehouse.query.errors import ApiError
from tracehouse.query.params import NS, Cursor, decode_cursor, parse_range
from tracehouse.query.scores import parse_score_filters
from tracehouse.query.store import (
    ATTRIBUTE_TESTS,
    INT64_MAX,
    NUMERIC_OPERATORS,
    ORDERS,
    SORTS,
    UINT64_MAX,
    AttributeFilter,
    SearchQuery,
)

MAX_ATTRIBUTE_FILTERS = 32  # `attr` and `attr.<key>` together
DEFAULT_LIMIT = 20
STATUSES = ("ok", "error", "unset")
# GenAI span kinds as genai_normalize stores them (`chat` is taken for `llm`, as the UI shows both).
GENAI_KINDS = (genai.AGENT, genai.CHAIN, genai.LLM, genai.EMBEDDING, genai.TOOL, genai.RETRIEVER,
               genai.RERANKER, genai.GUARDRAIL, genai.EVALUATOR, genai.WORKFLOW, genai.TASK, genai.PROMPT,
               genai.MEMORY)
KIND_ALIASES = {"chat": genai.LLM}
# OpenTelemetry SpanKind, lowercase -> as stored (sinks/clickhouse/columns.py SPAN_KIND).
OTEL_KINDS = {"server": "Server", "client": "Client", "internal": "Internal", "producer": "Producer",
              "consumer": "Consumer", "unspecified": "Unspecified"}
ATTRIBUTE_OPERATORS = tuple(op for op in ATTRIBUTE_TESTS if op != "exists")

_UINT_RE = re.compile(r"^\d+$")
_NUMBER_RE = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")


@dataclass(frozen=True, slots=True)
class SearchLimits:
    """What a search may ask for, from the query API's settings."""

    lookback_ns: int = 3600 * NS
    window_ns: int = 6 * 3600 * NS
    max_limit: int = 1000

    @classmethod
    def of(cls, settings: QueryApiConfig) -> SearchLimits:
        return cls(lookback_ns=int(settings.default_lookback * NS), window_ns=int(settings.max_trace_duration * NS),
                   max_limit=settings.max_limit)


@dataclass(frozen=True, slots=True)
class SearchParameter:
    name: str
    schema: dict[str, Any]
    description: str


# One prefixed family: `<prefix><suffix>=<value>` -> an item of the SearchQuery field `field`.
PrefixParser = Callable[[str, str, str], Any]  # (parameter name, suffix, value) -> the parsed filter


@dataclass(frozen=True, slots=True)
class Prefix:
    field: str
    parse: PrefixParser
    description: str


_TIME = {"type": "string"}
_TEXT = {"type": "string"}
_NUMBER = {"type": "number", "minimum": 0}
_COUNT = {"type": "integer", "minimum": 0}


def _parameters(max_limit: int) -> tuple[SearchParameter, ...]:
    return (
        SearchParameter("start", _TIME, "Start of the range (inclusive): RFC 3339 or unix seconds. "
                                        "Default: `end` minus the configured lookback (1h)."),
        SearchParameter("end", _TIME, "End of the range (exclusive): RFC 3339 or unix seconds. Default: now."),
        SearchParameter("service", _TEXT, "A span's service.name."),
        SearchParameter("span_name", _TEXT, "A span's exact name."),
        SearchParameter("span_kind", _TEXT, "A span's kind, comma-separated for any of several: a GenAI kind ("
                        + ", ".join(f"`{k}`" for k in GENAI_KINDS) + "; `chat` = `llm`) or an OpenTelemetry "
                        "SpanKind (" + ", ".join(f"`{k}`" for k in OTEL_KINDS) + ")."),
        SearchParameter("status", {"type": "string", "enum": list(STATUSES)},
                        "`error`: some span has status Error. `ok`: no span has status Error. "
                        "`unset`: no span set a status at all."),
        SearchParameter("provider", _TEXT, "A span's GenAI provider (e.g. `openai`)."),
        SearchParameter("model", _TEXT, "A span's GenAI request or response model."),
        SearchParameter("prompt", _TEXT, "A span's GenAI prompt name."),
        SearchParameter("prompt_version", _TEXT,
                        "A span's GenAI prompt version (with `prompt`, that prompt's version)."),
        SearchParameter("session", _TEXT, "The trace's GenAI session id (as `GET /api/v1/sessions` groups it)."),
        SearchParameter("user", _TEXT, "The trace's GenAI user id."),
        SearchParameter("min_duration_ms", _NUMBER, "Minimum trace duration in milliseconds."),
        SearchParameter("max_duration_ms", _NUMBER, "Maximum trace duration in milliseconds."),
        SearchParameter("min_tokens", _COUNT,
                        "Minimum trace total tokens (input + output when totals are missing)."),
        SearchParameter("max_tokens", _COUNT,
                        "Maximum trace total tokens (input + output when totals are missing)."),
        SearchParameter("min_cost_usd", _NUMBER, "Minimum trace total cost in USD."),
        SearchParameter("max_cost_usd", _NUMBER,
                        "Maximum trace total cost in USD (a trace without a cost counts as 0)."),
        SearchParameter("attr", {"type": "array", "items": {"type": "string"}},
                        "`key=value`, repeatable: a span attribute or resource attribute equals the value "
                        "(the older form of `attr.<key>=<value>`)."),
        SearchParameter("score", {"type": "array", "items": {"type": "string"}},
                        "`<name><op><value>`, repeatable: the trace has a score of that name (on it or a span) "
                        "whose value passes. `>`, `>=`, `<`, `<=` compare numbers (booleans as 1/0), e.g. "
                        "`helpfulness>=0.8`; `=` and `!=` a category, `true`/`false` or a number, e.g. "
                        "`verdict=pass`."),
        SearchParameter("sort", {"type": "string", "enum": list(SORTS), "default": "time"},
                        "Sort key: `time`, `cost`, `tokens` or `duration`; ties by trace id. "
                        "Unpriced traces come last by cost, in both orders."),
        SearchParameter("order", {"type": "string", "enum": list(ORDERS), "default": "desc"},
                        "`desc` (default): newest, costliest, most tokens, longest first; `asc`: the reverse."),
        SearchParameter("limit", {"type": "integer", "minimum": 1, "maximum": max_limit, "default": DEFAULT_LIMIT},
                        "Traces per page."),
        SearchParameter("cursor", _TEXT, "`next_cursor` of the previous page; keeps that page's sort, order and "
                                         "time range."),
    )


def _parse_attribute(name: str, key: str, value: str) -> AttributeFilter:
    """`attr.<key>=<value>` (equals), `attr.<key>=<op>:<operand>` or `attr.<key>=exists`."""
    if not key:
        raise ApiError(400, f"{name}: name the attribute after `attr.` (attr.<key>=<value>)", name)
    if value == "exists":
        return AttributeFilter(key, "exists")
    op, sep, operand = value.partition(":")
    if not sep or op not in ATTRIBUTE_OPERATORS:
        return AttributeFilter(key, "eq", value)
    if op in NUMERIC_OPERATORS:
        number = _finite(operand)
        if number is None:
            raise ApiError(400, f"{name}: `{op}` compares numbers; expected a number after `{op}:`, "
                                f"got {operand!r}", name)
        return AttributeFilter(key, op, number=number)
    if op == "contains" and not operand:
        raise ApiError(400, f"{name}: `contains:` needs the text to look for", name)
    return AttributeFilter(key, op, operand)


# Parameter families named by a prefix.
PREFIXES: dict[str, Prefix] = {
    "attr.": Prefix("attributes", _parse_attribute,
                    "`attr.<key>=<value>`: the span attribute or resource attribute `key` equals `value`; "
                    "`attr.<key>=<op>:<value>` with `op` one of " + ", ".join(f"`{o}`" for o in ATTRIBUTE_OPERATORS)
                    + " (`gt`, `gte`, `lt`, `lte` compare as numbers, `contains` ignores case); "
                    "`attr.<key>=exists`. Repeatable; every span-level filter must hold on the same span."),
}


def search_openapi(limits: SearchLimits) -> dict[str, Any]:
    """`openapi_extra` of a route taking the search's parameters: the parameters, and the
    prefixes (`x-parameter-prefixes`) the strictness check also allows."""
    parameters = [{"name": p.name, "in": "query", "required": False, "description": p.description,
                   "schema": p.schema} for p in _parameters(limits.max_limit)]
    return {"parameters": parameters,
            "x-parameter-prefixes": {prefix: spec.description for prefix, spec in PREFIXES.items()}}


def export_search_openapi(limits: SearchLimits) -> dict[str, Any]:
    """The search's parameters for `GET /api/v1/traces/export`, whose `limit` caps the traces
    exported (default: every one the search finds) instead of sizing a page."""
    spec = search_openapi(limits)
    for param in spec["parameters"]:
        if param["name"] == "limit":
            param["description"] = ("At most this many traces (the first ones in the search's order). "
                                    "Default: every trace the search finds.")
            param["schema"] = {"type": "integer", "minimum": 1}
    return spec


@dataclass
class _Values:
    """A request's parameters by name, in order; prefixed ones apart."""

    by_name: dict[str, list[str]] = field(default_factory=dict)
    prefixed: list[tuple[str, str, str, Prefix]] = field(default_factory=list)  # (name, suffix, value, prefix)

    def one(self, name: str) -> str:
        """The parameter's value; "" when missing or empty (no filter)."""
        values = self.by_name.get(name, [])
        if len(values) > 1:
            raise ApiError(400, f"{name}: given {len(values)} times; give it once", name)
        if not values:
            return ""
        return values[0] if name in _VERBATIM else values[0].strip()


# Values compared as given (surrounding spaces are part of a name).
_VERBATIM = frozenset({"service", "span_name", "provider", "model", "prompt", "prompt_version", "session", "user"})


def _collect(items: Iterable[tuple[str, str]], known: set[str]) -> _Values:
    values = _Values()
    for name, value in items:
        if name in known:
            values.by_name.setdefault(name, []).append(value)
            continue
        for prefix, spec in PREFIXES.items():
            if name.startswith(prefix):
                values.prefixed.append((name, name[len(prefix):], value, spec))
                break
    return values


def _finite(text: str) -> float | None:
    if not _NUMBER_RE.match(text) or len(text) > 400:
        return None
    number = float(text)
    return number if math.isfinite(number) else None


def _bound(values: _Values, name: str) -> float | None:
    """A non-negative finite number, or None when not given."""
    text = values.one(name)
    if not text:
        return None
    number = _finite(text)
    if number is None or number < 0:
        raise ApiError(400, f"{name}: expected a number >= 0, got {text!r}", name)
    return number


def _count(values: _Values, name: str) -> int | None:
    text = values.one(name)
    if not text:
        return None
    if not _UINT_RE.match(text):
        raise ApiError(400, f"{name}: expected a whole number >= 0, got {text!r}", name)
    return int(text) if len(text) <= 20 else UINT64_MAX + 1  # len() first: int() of 5,000 digits raises


def _choice(values: _Values, name: str, choices: Sequence[str], default: str) -> str:
    text = values.one(name)
    if text and text not in choices:
        raise ApiError(400, f"{name}: expected one of {', '.join(choices)}, got {text!r}", name)
    return text or default


def _limit(values: _Values, max_limit: int) -> int:
    text = values.one("limit")
    if not text:
        return DEFAULT_LIMIT
    if not _UINT_RE.match(text) or len(text) > 20 or not 1 <= int(text) <= max_limit:
        raise ApiError(400, f"limit: expected a whole number from 1 to {max_limit}, got {text!r}", "limit")
    return int(text)


def _span_kinds(values: _Values) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(GenAI kinds, OTel kinds as stored) of `span_kind`."""
    text = values.one("span_kind")
    genai_kinds: list[str] = []
    otel_kinds: list[str] = []
    for item in (i.strip().lower() for i in text.split(",")):
        if not item:
            continue
        kind = KIND_ALIASES.get(item, item)
        if kind in GENAI_KINDS:
            genai_kinds.append(kind)
        elif kind in OTEL_KINDS:
            otel_kinds.append(OTEL_KINDS[kind])
        else:
            raise ApiError(400, f"span_kind: unknown kind {item!r}; GenAI kinds: {', '.join(GENAI_KINDS)} (chat = "
                                f"llm); OpenTelemetry kinds: {', '.join(OTEL_KINDS)}", "span_kind")
    return tuple(dict.fromkeys(genai_kinds)), tuple(dict.fromkeys(otel_kinds))


def _attributes(values: _Values) -> tuple[list[AttributeFilter], dict[str, list[Any]]]:
    """The legacy `attr=key=value` filters, and every prefixed family's items by field."""
    attributes: list[AttributeFilter] = []
    for item in values.by_name.get("attr", []):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ApiError(400, f"attr: expected key=value, got {item!r}", "attr")
        attributes.append(AttributeFilter(key.strip(), "eq", value))
    fields: dict[str, list[Any]] = {}
    for name, suffix, value, spec in values.prefixed:
        fields.setdefault(spec.field, []).append(spec.parse(name, suffix, value))
    attributes += fields.pop("attributes", [])
    if len(attributes) > MAX_ATTRIBUTE_FILTERS:
        raise ApiError(400, f"attr: at most {MAX_ATTRIBUTE_FILTERS} attribute filters", "attr")
    return attributes, fields


def _cursor(values: _Values, sort: str, order: str) -> Cursor | None:
    text = values.one("cursor")
    if not text:
        return None
    cursor = decode_cursor(text)
    if (cursor.sort, cursor.order) != (sort, order):
        raise ApiError(400, f"cursor: it continues a search sorted by {cursor.sort} {cursor.order}ending, "
                            f"not {sort} {order}ending (send the same sort and order)", "cursor")
    return cursor


def _checked(low: float, high: float, name: str) -> None:
    if high < low:
        raise ApiError(400, f"{name}: must not be below its minimum", name)


def parse_search(items: Iterable[tuple[str, str]], limits: SearchLimits | None = None) -> SearchQuery:
    """A request's query parameters (`request.query_params.multi_items()`) -> the search.
    Empty values mean "not given"; a scalar given twice is a 400. `query.limit` is the page
    size asked for."""
    limits = limits or SearchLimits()
    parameters = _parameters(limits.max_limit)
    values = _collect(items, {p.name for p in parameters})
    sort = _choice(values, "sort", SORTS, "time")
    order = _choice(values, "order", ORDERS, "desc")
    cursor = _cursor(values, sort, order)
    start_ns, end_ns = parse_range(values.one("start") or None, values.one("end") or None, limits.lookback_ns,
                                   (cursor.start_ns, cursor.end_ns) if cursor else (None, None))
    genai_kinds, otel_kinds = _span_kinds(values)
    attributes, prefixed = _attributes(values)
    min_ms, max_ms = _bound(values, "min_duration_ms"), _bound(values, "max_duration_ms")
    min_tokens, max_tokens = _count(values, "min_tokens"), _count(values, "max_tokens")
    min_cost, max_cost = _bound(values, "min_cost_usd"), _bound(values, "max_cost_usd")
    query = SearchQuery(
        start_ns=start_ns, end_ns=end_ns, limit=_limit(values, limits.max_limit),
        service=values.one("service"), span_name=values.one("span_name"),
        status=_choice(values, "status", STATUSES, ""),
        provider=values.one("provider"), model=values.one("model"), prompt=values.one("prompt"),
        prompt_version=values.one("prompt_version"), session=values.one("session"), user=values.one("user"),
        genai_kinds=genai_kinds, otel_kinds=otel_kinds,
        min_duration_ns=_ns(min_ms, 0), max_duration_ns=_ns(max_ms, INT64_MAX),
        min_tokens=min(min_tokens or 0, UINT64_MAX),
        max_tokens=UINT64_MAX if max_tokens is None else min(max_tokens, UINT64_MAX),
        min_cost_usd=min_cost or 0.0, max_cost_usd=math.inf if max_cost is None else max_cost,
        attributes=tuple(attributes), scores=parse_score_filters([v for v in values.by_name.get("score", []) if v]),
        sort=sort, order=order,
        cursor=(cursor.key, cursor.trace_id) if cursor else None, window_ns=limits.window_ns,
        **{name: tuple(items) for name, items in prefixed.items()},
    )
    _checked(query.min_duration_ns, query.max_duration_ns, "max_duration_ms")
    _checked(query.min_tokens, query.max_tokens, "max_tokens")
    _checked(query.min_cost_usd, query.max_cost_usd, "max_cost_usd")
    return query


def _ns(ms: float | None, default: int) -> int:
    """Milliseconds -> nanoseconds, capped at ClickHouse's Int64."""
    return default if ms is None else int(min(ms * 1_000_000, INT64_MAX))
