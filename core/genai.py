"""Canonical GenAI fields of a batch, column-wise.

The `genai_normalize` processor scans each span's attributes once and fills these
index-aligned lists (one entry per span, in `TraceBatch.iter_spans()` order). Later
processors (tokens, cost, prompts) read and write the columns; nobody rescans attributes.
The ClickHouse exporter writes the stored columns as the typed `GenAI*` columns.

`None` / "" mean "not known". An absent token count is unknown, never zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Any

from tracehouse.core.pdata import TraceBatch

EXTRAS_KEY = "genai"
_COST_QUANTUM = Decimal("1e-12")


@dataclass(slots=True)
class Message:
    """One chat message, whatever convention it came from."""

    role: str
    content: str  # text content only; parts of other kinds are left out
    tool_calls: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class GenAIColumns:
    size: int
    provider: list[str] = field(default_factory=list)
    operation: list[str] = field(default_factory=list)
    span_kind: list[str] = field(default_factory=list)
    request_model: list[str] = field(default_factory=list)
    response_model: list[str] = field(default_factory=list)
    input_tokens: list[int | None] = field(default_factory=list)
    output_tokens: list[int | None] = field(default_factory=list)
    cached_input_tokens: list[int | None] = field(default_factory=list)
    reasoning_tokens: list[int | None] = field(default_factory=list)
    total_tokens: list[int | None] = field(default_factory=list)
    tokens_estimated: list[bool] = field(default_factory=list)
    input_cost_usd: list[Decimal | None] = field(default_factory=list)
    output_cost_usd: list[Decimal | None] = field(default_factory=list)
    total_cost_usd: list[Decimal | None] = field(default_factory=list)
    cost_source: list[str] = field(default_factory=list)  # "" | "reported" | "computed"
    price_version: list[str] = field(default_factory=list)  # price table of a computed cost
    prompt_name: list[str] = field(default_factory=list)
    prompt_version: list[str] = field(default_factory=list)
    prompt_template_hash: list[str] = field(default_factory=list)  # sha256 hex of the template
    prompt_source: list[str] = field(default_factory=list)  # convention that named the prompt
    session_id: list[str] = field(default_factory=list)
    user_id: list[str] = field(default_factory=list)
    # Not stored as columns: inputs of later processors.
    prompt_template: list[str] = field(default_factory=list)
    prompt_variables: list[str] = field(default_factory=list)
    input_messages: list[list[Message] | None] = field(default_factory=list)
    output_messages: list[list[Message] | None] = field(default_factory=list)

    @classmethod
    def empty(cls, size: int) -> GenAIColumns:
        cols = cls(size=size)
        for f in fields(cls):
            if f.name == "size":
                continue
            default: Any = _DEFAULTS.get(f.name, "")
            setattr(cols, f.name, [default] * size)
        return cols

    @classmethod
    def concat(cls, parts: list[GenAIColumns]) -> GenAIColumns:
        """Columns of merged batches, in the same order as TraceBatch.merge joins spans."""
        out = cls(size=sum(p.size for p in parts))
        for f in fields(cls):
            if f.name != "size":
                setattr(out, f.name, [v for p in parts for v in getattr(p, f.name)])
        return out

    def clickhouse_columns(self) -> dict[str, list[Any]]:
        columns = {column: getattr(self, name) for name, column in STORED.items()}
        for name in ("input_cost_usd", "output_cost_usd", "total_cost_usd"):
            # The columns are Decimal(18, 12); computed costs may carry more digits.
            columns[STORED[name]] = [None if v is None else v.quantize(_COST_QUANTUM) for v in getattr(self, name)]
        return columns


_DEFAULTS: dict[str, Any] = {
    "input_tokens": None, "output_tokens": None, "cached_input_tokens": None, "reasoning_tokens": None,
    "total_tokens": None, "tokens_estimated": False, "input_cost_usd": None, "output_cost_usd": None,
    "total_cost_usd": None, "input_messages": None, "output_messages": None,
}

# Field -> ClickHouse column of the spans table.
STORED = {
    "provider": "GenAIProvider", "operation": "GenAIOperation", "span_kind": "GenAISpanKind",
    "request_model": "GenAIRequestModel", "response_model": "GenAIResponseModel",
    "input_tokens": "GenAIInputTokens", "output_tokens": "GenAIOutputTokens",
    "cached_input_tokens": "GenAICachedInputTokens", "reasoning_tokens": "GenAIReasoningTokens",
    "total_tokens": "GenAITotalTokens", "tokens_estimated": "GenAITokensEstimated",
    "input_cost_usd": "GenAIInputCostUSD", "output_cost_usd": "GenAIOutputCostUSD",
    "total_cost_usd": "GenAITotalCostUSD", "cost_source": "GenAICostSource",
    "price_version": "GenAICostPriceVersion",
    "prompt_name": "GenAIPromptName", "prompt_version": "GenAIPromptVersion",
    "prompt_template_hash": "GenAIPromptTemplateHash", "prompt_source": "GenAIPromptSource",
    "session_id": "GenAISessionId", "user_id": "GenAIUserId",
}


def genai_columns(batch: TraceBatch) -> GenAIColumns | None:
    cols = batch.extras.get(EXTRAS_KEY)
    return cols if isinstance(cols, GenAIColumns) else None
