"""Native blocks as a client of a given protocol revision reads them.

chDB writes Native as ClickHouse does for a client that names no protocol version: each
block is its column count, row count, then per column its name, type and data. A
ClickHouse server asked over HTTP with `client_protocol_version=N` adds what a native
client of revision N reads: from N > 0 a BlockInfo before each block, from N >= 54454 a
"custom serialization" byte after each column's type. clickhouse-go (the Grafana plugin's
driver) sends its revision and reads blocks so; clickhouse-connect probes with 54405.

The column data itself is the same at every revision, so `for_revision` copies it byte for
byte and only walks it to find where each column ends. A type it cannot walk is refused
with a message naming it (the client can ask for another format, or cast the column).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass

# ClickHouse's Protocol.h: the first revisions with BlockInfo over HTTP and with the custom
# serialization flag.
REVISION_WITH_CUSTOM_SERIALIZATION = 54454

# BlockInfo as ClickHouse writes it: field 1 is_overflows=false, field 2 bucket_num=-1, end.
_BLOCK_INFO = b"\x01\x00\x02\xff\xff\xff\xff\x00"

_FIXED_WIDTH = {
    "UInt8": 1, "Int8": 1, "Bool": 1, "Enum8": 1,
    "UInt16": 2, "Int16": 2, "Enum16": 2, "Date": 2,
    "UInt32": 4, "Int32": 4, "Float32": 4, "DateTime": 4, "Date32": 4, "IPv4": 4, "Decimal32": 4,
    "UInt64": 8, "Int64": 8, "Float64": 8, "DateTime64": 8, "Decimal64": 8, "Time": 4, "Time64": 8,
    "UInt128": 16, "Int128": 16, "UUID": 16, "IPv6": 16, "Decimal128": 16,
    "UInt256": 32, "Int256": 32, "Decimal256": 32, "BFloat16": 2,
}
_INTERVALS = re.compile(r"^Interval[A-Z][a-z]+$")


class NativeError(ValueError):
    """The bytes are not Native blocks this module can rewrite (ClickHouse's NOT_IMPLEMENTED)."""

    code = 48
    name = "NOT_IMPLEMENTED"


@dataclass(frozen=True, slots=True)
class _Type:
    name: str
    args: tuple[str, ...]


def _split_args(text: str) -> list[str]:
    """Top-level comma-separated arguments, respecting parentheses and quotes."""
    args, depth, start, quote = [], 0, 0, ""
    for i, ch in enumerate(text):
        if quote:
            if ch == quote and text[i - 1] != "\\":
                quote = ""
        elif ch in "'`\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            args.append(text[start:i].strip())
            start = i + 1
    tail = text[start:].strip()
    if tail:
        args.append(tail)
    return args


def parse_type(text: str) -> _Type:
    text = text.strip()
    open_at = text.find("(")
    if open_at < 0:
        return _Type(text, ())
    if not text.endswith(")"):
        raise NativeError(f"cannot parse the type {text!r}")
    return _Type(text[:open_at].strip(), tuple(_split_args(text[open_at + 1:-1])))


def _element_type(arg: str) -> str:
    """A Tuple or Nested element, `name Type` or `Type`: its type."""
    # No type name is followed by a space and more text: a word then a space is an element's name.
    m = re.match(r"^(`[^`]*`|[A-Za-z_][A-Za-z0-9_]*)\s+(\S.*)$", arg, re.S)
    return m.group(2) if m else arg


class _Reader:
    def __init__(self, data: bytes | memoryview, pos: int = 0):
        self.data = data
        self.pos = pos

    def take(self, n: int) -> None:
        if n < 0 or self.pos + n > len(self.data):
            raise NativeError("truncated Native data")
        self.pos += n

    def uvarint(self) -> int:
        shift = result = 0
        while True:
            if self.pos >= len(self.data):
                raise NativeError("truncated Native data")
            b = self.data[self.pos]
            self.pos += 1
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift > 63:
                raise NativeError("malformed varint in Native data")

    def string(self) -> bytes:
        n = self.uvarint()
        start = self.pos
        self.take(n)
        return bytes(self.data[start:self.pos])

    def uint64(self) -> int:
        start = self.pos
        self.take(8)
        return int(struct.unpack_from("<Q", self.data, start)[0])


# A column walker: its prefix (state written before any data: LowCardinality's key version)
# and its data of `rows` rows.
_Skip = Callable[[_Reader, int], None]
_Prefix = Callable[[_Reader], None]
_Walker = tuple[_Prefix, _Skip]


def _walker(type_text: str) -> _Walker:
    t = parse_type(type_text)
    name = t.name
    if name in _FIXED_WIDTH or _INTERVALS.match(name):
        width = _FIXED_WIDTH.get(name, 8)
        return _no_prefix, lambda r, rows: r.take(width * rows)
    if name == "Decimal":
        precision = int(t.args[0])
        width = 4 if precision <= 9 else 8 if precision <= 18 else 16 if precision <= 38 else 32
        return _no_prefix, lambda r, rows: r.take(width * rows)
    if name == "FixedString":
        size = int(t.args[0])
        return _no_prefix, lambda r, rows: r.take(size * rows)
    if name == "String":
        return _no_prefix, _skip_strings
    if name == "Nothing":
        return _no_prefix, lambda r, rows: r.take(rows)
    if name in ("Nullable", "SimpleAggregateFunction"):
        inner_prefix, inner = _walker(t.args[-1])
        if name == "SimpleAggregateFunction":
            return inner_prefix, inner

        def nullable(r: _Reader, rows: int) -> None:
            r.take(rows)  # the null map
            inner(r, rows)

        return inner_prefix, nullable
    if name == "LowCardinality":
        return _low_cardinality(t.args[0])
    if name == "Array":
        return _array(_walker(t.args[0]))
    if name == "Map":
        return _array(_tuple(t.args[:2]))
    if name == "Tuple":
        return _tuple([_element_type(a) for a in t.args])
    if name == "Nested":
        return _array(_tuple([_element_type(a) for a in t.args]))
    if name in _GEO:
        return _walker(_GEO[name])
    raise NativeError(f"Native output of the type {type_text} is not supported at this protocol version: "
                      f"cast the column (e.g. toString) or ask for another format (RowBinaryWithNamesAndTypes, JSON)")


def _no_prefix(_r: _Reader) -> None:
    return None


def _skip_strings(r: _Reader, rows: int) -> None:
    for _ in range(rows):
        r.take(r.uvarint())


_GEO = {"Point": "Tuple(Float64, Float64)", "Ring": "Array(Point)", "LineString": "Array(Point)",
        "Polygon": "Array(Ring)", "MultiLineString": "Array(LineString)", "MultiPolygon": "Array(Polygon)"}


def _array(inner_walker: _Walker) -> _Walker:
    inner_prefix, inner = inner_walker

    def skip(r: _Reader, rows: int) -> None:
        # Offsets are cumulative: the last one is the number of nested rows.
        if rows == 0:
            return
        r.take(8 * (rows - 1))
        total = r.uint64()
        inner(r, total)

    return inner_prefix, skip


def _tuple(elements: list[str] | tuple[str, ...]) -> _Walker:
    walkers = [_walker(e) for e in elements]

    def prefix(r: _Reader) -> None:
        for p, _ in walkers:
            p(r)

    def skip(r: _Reader, rows: int) -> None:
        for _, s in walkers:
            s(r, rows)

    return prefix, skip


# LowCardinality's index serialization: bits 0-7 the index width (UInt8..UInt64), bit 9
# "has additional keys" (always set in Native), bit 10 "needs global dictionary" (never).
_LC_INDEX_WIDTH = (1, 2, 4, 8)


def _low_cardinality(inner_type: str) -> _Walker:
    t = parse_type(inner_type)
    # The dictionary holds the nested type without Nullable (NULL is key 0).
    _, keys = _walker(t.args[0] if t.name == "Nullable" else inner_type)

    def prefix(r: _Reader) -> None:
        r.take(8)  # key serialization version

    def skip(r: _Reader, rows: int) -> None:
        if rows == 0:
            return
        flags = r.uint64()
        width = _LC_INDEX_WIDTH[flags & 0xFF]
        keys(r, r.uint64())
        r.take(width * r.uint64())

    return prefix, skip


def for_revision(data: bytes, revision: int) -> bytes:
    """Native blocks as chDB wrote them (revision 0), rewritten for a client of `revision`."""
    if revision <= 0 or not data:
        return data
    custom_flag = revision >= REVISION_WITH_CUSTOM_SERIALIZATION
    out = bytearray()
    r = _Reader(memoryview(data))
    while r.pos < len(data):
        out += _BLOCK_INFO
        start = r.pos
        columns = r.uvarint()
        rows = r.uvarint()
        out += data[start:r.pos]
        for _ in range(columns):
            head = r.pos
            r.string()
            type_name = r.string().decode()
            out += data[head:r.pos]
            if custom_flag:
                out.append(0)
            body = r.pos
            prefix, skip = _walker(type_name)
            if rows:
                prefix(r)
                skip(r, rows)
            out += data[body:r.pos]
    return bytes(out)
