"""The GenAI fields as ClickHouse columns of the spans table.

Column names follow from the field names of `GenAIColumns` (core/genai.py), the one list
of GenAI fields: `GenAI` + the CamelCased name, `usd` as `USD`. One column predates the
rule and keeps its name. The query service selects the same list.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from tracehouse.core.genai import STORED_FIELDS, GenAIColumns, GenAIField

_RENAMED = {"price_version": "GenAICostPriceVersion"}
_WORDS = {"usd": "USD"}
# The columns are Decimal(18, 12); computed costs may carry more digits.
COST_SCALE = 12
_COST_QUANTUM = Decimal(f"1e-{COST_SCALE}")
# What the columns hold: Nullable(UInt64) counts, Decimal(18, 12) costs (six integer digits).
MAX_COUNT = 2**64 - 1
MAX_COST = Decimal("999999.999999999999")


def column_name(field: GenAIField) -> str:
    if field.name in _RENAMED:
        return _RENAMED[field.name]
    return "GenAI" + "".join(_WORDS.get(part, part.capitalize()) for part in field.name.split("_"))


# (field, column) of every stored field, in the order the exporter inserts them.
GENAI_COLUMNS: tuple[tuple[GenAIField, str], ...] = tuple((f, column_name(f)) for f in STORED_FIELDS)
GENAI_COLUMN_NAMES: tuple[str, ...] = tuple(column for _, column in GENAI_COLUMNS)


def clickhouse_columns(cols: GenAIColumns, dropped: dict[str, int] | None = None) -> dict[str, list[Any]]:
    """Column name -> values aligned with the batch's spans, costs rounded to the column's scale.

    A count or cost its column cannot hold (a client's absurd token count, a cost computed
    from one) becomes NULL, "not known", and is counted in `dropped` by column: one value
    must never fail the insert of the batch it sits in. The processors already drop what
    they can tell is absurd; this is the last line, at the storage's own limits."""
    out: dict[str, list[Any]] = {}
    for field, column in GENAI_COLUMNS:
        values = getattr(cols, field.name)
        if field.kind is Decimal:
            values = [None if v is None else _cost(v) for v in values]
        elif field.kind is int:
            values = [None if v is None or not 0 <= v <= MAX_COUNT else v for v in values]
        if dropped is not None and field.kind in (Decimal, int):
            lost = sum(1 for before, after in zip(getattr(cols, field.name), values, strict=True)
                       if before is not None and after is None)
            if lost:
                dropped[column] = dropped.get(column, 0) + lost
        out[column] = values
    return out


def _cost(value: Decimal) -> Decimal | None:
    if not value.is_finite():
        return None
    try:
        rounded = value.quantize(_COST_QUANTUM)
    except InvalidOperation:  # more digits than the context allows: far out of range anyway
        return None
    return rounded if -MAX_COST <= rounded <= MAX_COST else None
