"""`GET /api/v1/traces/export`: every span of every trace a search finds, streamed as JSONL
or Parquet.

Memory stays constant in the number of traces: trace ids come a page at a time through the
search's own keyset (sql/trace_search.sql, the same filters and order as the list), and the
spans of a page in reads of at most `SPANS_PER_READ` rows, each continuing after the last
(sql/trace_spans.sql's keyset), so a trace of a million spans is read in pieces too. Each
read is converted on a worker thread and written out before the next is made.

A span is the API's span shape (`SpanDetail`, as on a trace's page): in JSONL one per line,
built by the same `span_json`; in Parquet one per row, its columns typed from the same model
(strings, int64, float64, bool, maps, lists and structs), times as `timestamp[ns, UTC]`
(`start_time`) and int64 nanoseconds (`*_unix_nano`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import types
import typing
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

from tracehouse.query.errors import ApiError
from tracehouse.query.models import SpanDetail
from tracehouse.query.rows import span_from_row, span_json
from tracehouse.query.store import SearchQuery, TraceStore, span_key

# Trace ids per search page, and span rows per read of their spans (one JSONL chunk or one
# Parquet row group each).
TRACES_PER_PAGE = 500
SPANS_PER_READ = 5000


@dataclass(frozen=True, slots=True)
class ExportFormat:
    media_type: str
    extension: str


FORMATS = {
    "jsonl": ExportFormat("application/jsonl", "jsonl"),  # jsonlines.org's (not IANA-registered)
    "parquet": ExportFormat("application/vnd.apache.parquet", "parquet"),  # IANA
}


def filename(query: SearchQuery, fmt: ExportFormat) -> str:
    """`traces-<start>-<end>.<ext>`, the searched range in UTC."""
    def stamp(ns: int) -> str:
        return datetime.fromtimestamp(ns // 1_000_000_000, UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"traces-{stamp(query.start_ns)}-{stamp(query.end_ns)}.{fmt.extension}"


# ------------------------------------------------------------------------------ reading


async def trace_id_pages(store: TraceStore, query: SearchQuery, limit: int | None, *,
                         tenant: str) -> AsyncIterator[list[str]]:
    """The ids of the traces the search finds, in its order, a page at a time (the first
    page always, even empty); at most `limit` in all (None: every one)."""
    cursor, remaining = query.cursor, limit
    while remaining is None or remaining > 0:
        size = TRACES_PER_PAGE if remaining is None else min(TRACES_PER_PAGE, remaining)
        # The search reads one row past the page when another page follows.
        rows = await store.search(dataclasses.replace(query, limit=size, cursor=cursor), tenant=tenant, with_labels=False,
                                  with_totals=False)
        yield [r["trace_id"] for r in rows[:size]]
        if len(rows) <= size:
            return
        cursor = (int(rows[size - 1]["sort_key"]), rows[size - 1]["trace_id"])
        remaining = None if remaining is None else remaining - size


def export_limit(values: list[str]) -> int | None:
    """The export's `limit`: at most this many traces; None (every one) when not given."""
    if not values or values == [""]:
        return None
    if len(values) > 1:
        raise ApiError(400, f"limit: given {len(values)} times; give it once", "limit")
    text = values[0].strip()
    if not text.isdigit() or len(text) > 19 or int(text) < 1:
        raise ApiError(400, f"limit: expected a whole number of at least 1, got {values[0]!r}", "limit")
    return int(text)


async def span_batches(store: TraceStore, pages: AsyncIterator[list[str]], *,
                       tenant: str) -> AsyncIterator[list[dict[str, Any]]]:
    """Every span of the traces of each page, at most `SPANS_PER_READ` rows at a time."""
    async for trace_ids in pages:
        after = None
        while trace_ids:
            rows = await store.traces_spans(trace_ids, SPANS_PER_READ, tenant=tenant, after=after)
            if rows:
                after = span_key(trace_ids, rows[-1])
                yield rows
            if len(rows) < SPANS_PER_READ:
                break


async def prepend(first: list[str], rest: AsyncIterator[list[str]]) -> AsyncIterator[list[str]]:
    yield first
    async for page in rest:
        yield page


# ------------------------------------------------------------------------------ JSONL


def jsonl_lines(rows: Sequence[dict[str, Any]]) -> bytes:
    return b"".join(span_json(row) + b"\n" for row in rows)


async def jsonl_body(batches: AsyncIterator[list[dict[str, Any]]]) -> AsyncIterator[bytes]:
    async for rows in batches:
        yield await asyncio.to_thread(jsonl_lines, rows)


# ------------------------------------------------------------------------------ Parquet

# Fields whose API value is a decimal string or RFC 3339 text, typed in Parquet.
_TIME_FIELDS: dict[str, pa.DataType] = {
    "start_time": pa.timestamp("ns", tz="UTC"),
    "start_time_unix_nano": pa.int64(),
    "end_time_unix_nano": pa.int64(),
    "time_unix_nano": pa.int64(),
}
_SCALARS: dict[Any, pa.DataType] = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}


def arrow_field(name: str, annotation: Any) -> pa.Field:
    """A response model's field as an Arrow field: models are structs, `dict[str, str]` maps,
    `list[X]` lists; nullable only where the model allows None (`X | None`)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (types.UnionType, typing.Union):
        (inner,) = [a for a in args if a is not type(None)]
        return arrow_field(name, inner).with_nullable(True)
    if name in _TIME_FIELDS:
        arrow: pa.DataType = _TIME_FIELDS[name]
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        arrow = arrow_struct(annotation)
    elif origin is list:
        arrow = pa.list_(arrow_field("item", args[0]))
    elif origin is dict:
        arrow = pa.map_(arrow_field("key", args[0]).type, arrow_field("value", args[1]))
    else:
        arrow = _SCALARS[annotation]
    return pa.field(name, arrow, nullable=False)


def arrow_struct(model: type[BaseModel]) -> pa.StructType:
    return pa.struct([arrow_field(name, info.annotation) for name, info in model.model_fields.items()])


SPAN_SCHEMA = pa.schema(list(arrow_struct(SpanDetail)))


def parquet_record(row: dict[str, Any]) -> dict[str, Any]:
    """A span row as `SpanDetail`'s values, with the times as the numbers Arrow takes."""
    span = span_from_row(row, messages=True).model_dump()
    start = int(span["start_time_unix_nano"])
    span.update(start_time=start, start_time_unix_nano=start, end_time_unix_nano=int(span["end_time_unix_nano"]))
    for event in span["events"]:
        event["time_unix_nano"] = int(event["time_unix_nano"])
    return span


class _Chunks:
    """The file object the Parquet writer writes into: what it wrote since the last `take`."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._size = 0
        self.closed = False

    def write(self, data: Any) -> int:
        part = bytes(data)
        self._parts.append(part)
        self._size += len(part)
        return len(part)

    def tell(self) -> int:
        return self._size

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


class ParquetSpans:
    """A Parquet file of spans, written a row group per batch; each call returns the bytes it added."""

    def __init__(self) -> None:
        self._out = _Chunks()
        self._writer = pq.ParquetWriter(pa.PythonFile(self._out, mode="w"), SPAN_SCHEMA, compression="zstd")

    def write(self, rows: Sequence[dict[str, Any]]) -> bytes:
        self._writer.write_table(pa.Table.from_pylist([parquet_record(r) for r in rows], schema=SPAN_SCHEMA))
        return self._out.take()

    def close(self) -> bytes:
        self._writer.close()
        return self._out.take()


async def parquet_body(batches: AsyncIterator[list[dict[str, Any]]]) -> AsyncIterator[bytes]:
    file = await asyncio.to_thread(ParquetSpans)
    async for rows in batches:
        yield await asyncio.to_thread(file.write, rows)
    yield await asyncio.to_thread(file.close)


BODIES = {"jsonl": jsonl_body, "parquet": parquet_body}
