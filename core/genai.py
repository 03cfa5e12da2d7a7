"""Canonical GenAI fields of a batch, column-wise: the one list of GenAI fields.

The `genai_normalize` processor scans each span's attributes once and fills these
index-aligned lists (one entry per span, in `TraceBatch.iter_spans()` order). Later
processors (tokens, cost, prompts) read and write the columns; nobody rescans attributes.
Everything else that names GenAI fields derives them from `GenAIColumns`' fields and
their metadata (`GENAI_FIELDS`): the ClickHouse exporter's columns
(sinks/clickhouse/genai.py), the query API's model and SELECT list.

`None` / "" mean "not known". An absent token count is unknown, never zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Any


@dataclass(slots=True)
class ChatMessage:
    """One chat message, whatever convention it came from."""

    role: str
    content: str  # text content only; parts of other kinds are left out
    tool_calls: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"role": self.role, "content": self.content, "tool_calls": self.tool_calls}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ChatMessage:
        return cls(role=d["role"], content=d["content"], tool_calls=list(d.get("tool_calls") or []))


def _column(kind: type, description: str = "", *, stored: bool = True) -> Any:
    """A GenAI field: its value type, whether it is stored on the span row, and what it means."""
    return field(default_factory=list, metadata={"kind": kind, "stored": stored, "description": description})


@dataclass(slots=True)
class GenAIColumns:
    size: int
    provider: list[str] = _column(str)
    operation: list[str] = _column(str)
    span_kind: list[str] = _column(str)
    request_model: list[str] = _column(str)
    response_model: list[str] = _column(str)
    input_tokens: list[int | None] = _column(int)
    output_tokens: list[int | None] = _column(int)
    cached_input_tokens: list[int | None] = _column(int)
    reasoning_tokens: list[int | None] = _column(int)
    total_tokens: list[int | None] = _column(int)
    tokens_estimated: list[bool] = _column(bool)
    usage_scope: list[str] = _column(str, '"aggregate": the token counts are the sum of the model calls below the '
                                          'span (not a request); "in_aggregate": this call\'s usage is counted in an '
                                          'ancestor\'s aggregate; "repeated": the span\'s reported usage repeats its '
                                          'descendants\' and is not counted; empty: the span\'s own.')
    input_cost_usd: list[Decimal | None] = _column(Decimal)
    output_cost_usd: list[Decimal | None] = _column(Decimal)
    total_cost_usd: list[Decimal | None] = _column(Decimal)
    cost_source: list[str] = _column(str, '"reported" by the client, "computed" from the price table, or empty')
    price_version: list[str] = _column(str, "price table of a computed cost, e.g. genai-prices==0.2.3")
    prompt_name: list[str] = _column(str, "Registry name; `template-<hash>` / `poml-<hash>` for unnamed templates.")
    prompt_version: list[str] = _column(str, "The client's version, or the registry's number for a template.")
    prompt_template_hash: list[str] = _column(str, "SHA-256 (hex) of the linked template; empty without one.")
    prompt_source: list[str] = _column(str, "Convention that named the prompt (OpenInference, Langfuse, POML...).")
    session_id: list[str] = _column(str)
    user_id: list[str] = _column(str)
    # Not stored as columns: inputs of later processors.
    prompt_template: list[str] = _column(str, stored=False)
    prompt_variables: list[str] = _column(str, stored=False)
    input_messages: list[list[ChatMessage] | None] = _column(list, stored=False)
    output_messages: list[list[ChatMessage] | None] = _column(list, stored=False)

    @classmethod
    def empty(cls, size: int) -> GenAIColumns:
        cols = cls(size=size)
        for f in GENAI_FIELDS:
            setattr(cols, f.name, [f.default] * size)
        return cols

    @classmethod
    def concat(cls, parts: list[GenAIColumns]) -> GenAIColumns:
        """Columns of merged batches, in the same order as TraceBatch.merge joins spans."""
        out = cls(size=sum(p.size for p in parts))
        for f in GENAI_FIELDS:
            setattr(out, f.name, [v for p in parts for v in getattr(p, f.name)])
        return out

    def copy(self) -> GenAIColumns:
        """Independent lists (values are immutable, message lists are copied)."""
        out = GenAIColumns(size=self.size)
        for f in GENAI_FIELDS:
            setattr(out, f.name, list(getattr(self, f.name)))
        out.input_messages = [None if m is None else list(m) for m in self.input_messages]
        out.output_messages = [None if m is None else list(m) for m in self.output_messages]
        return out

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form (Decimals as strings, messages as dicts), for the disk queue."""
        out: dict[str, Any] = {"size": self.size}
        for f in GENAI_FIELDS:
            values = getattr(self, f.name)
            if f.kind is Decimal:
                values = [None if v is None else str(v) for v in values]
            elif f.kind is list:
                values = [None if v is None else [m.to_dict() for m in v] for v in values]
            out[f.name] = values
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GenAIColumns:
        cols = cls(size=int(data["size"]))
        for f in GENAI_FIELDS:
            values = data.get(f.name)
            if values is None:
                values = [f.default] * cols.size
            elif f.kind is Decimal:
                values = [None if v is None else Decimal(v) for v in values]
            elif f.kind is list:
                values = [None if v is None else [ChatMessage.from_dict(m) for m in v] for v in values]
            if len(values) != cols.size:
                raise ValueError(f"GenAI field {f.name} has {len(values)} values for {cols.size} spans")
            setattr(cols, f.name, values)
        return cols


@dataclass(frozen=True, slots=True)
class GenAIField:
    name: str
    kind: type  # str, int, bool, Decimal (nullable unless str/bool), or list (of ChatMessage)
    stored: bool
    description: str

    @property
    def default(self) -> Any:
        """What "not known" is: "" for text, False for flags, None otherwise."""
        return "" if self.kind is str else False if self.kind is bool else None


GENAI_FIELDS: tuple[GenAIField, ...] = tuple(
    GenAIField(f.name, f.metadata["kind"], f.metadata["stored"], f.metadata["description"])
    for f in fields(GenAIColumns) if f.name != "size"
)
STORED_FIELDS: tuple[GenAIField, ...] = tuple(f for f in GENAI_FIELDS if f.stored)
