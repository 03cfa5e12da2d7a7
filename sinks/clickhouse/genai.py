"""The GenAI fields as ClickHouse columns of the spans table.

Column names follow from the field names of `GenAIColumns` (core/genai.py), the one list
of GenAI fields: `GenAI` + the CamelCased name, `usd` as `USD`. One column predates the
rule and keeps its name. The query service selects the same list.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tracehouse.core.genai import STORED_FIELDS, GenAIColumns, GenAIField

_RENAMED = {"price_version": "GenAICostPriceVersion"}
_WORDS = {"usd": "USD"}
# The columns are Decimal(18, 12); computed costs may carry more digits.
_COST_QUANTUM = Decimal("1e-12")


def column_name(field: GenAIField) -> str:
    if field.name in _RENAMED:
        return _RENAMED[field.name]
    return "GenAI" + "".join(_WORDS.get(part, part.capitalize()) for part in field.name.split("_"))


# (field, column) of every stored field, in the order the exporter inserts them.
GENAI_COLUMNS: tuple[tuple[GenAIField, str], ...] = tuple((f, column_name(f)) for f in STORED_FIELDS)
GENAI_COLUMN_NAMES: tuple[str, ...] = tuple(column for _, column in GENAI_COLUMNS)


def clickhouse_columns(cols: GenAIColumns) -> dict[str, list[Any]]:
    """Column name -> values aligned with the batch's spans, costs rounded to the column's scale."""
    out: dict[str, list[Any]] = {}
    for field, column in GENAI_COLUMNS:
        values = getattr(cols, field.name)
        if field.kind is Decimal:
            values = [None if v is None else v.quantize(_COST_QUANTUM) for v in values]
        out[column] = values
    return out
