"""OTLP/JSON scalar fields: the decoder's converters from a JSON value to a field value.

Each converter takes (JSON value, depth of the enclosing message) and returns what the
protobuf constructor takes, or raises `Malformed`. They have the final word on validity:
the message plans in json_decode.py accept the common forms inline for speed and pass
everything else here. Also the field-level rules the encoder shares (`HEX_ID_FIELDS`).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Final

from google.protobuf.descriptor import FieldDescriptor

from tracehouse.core.errors import BadRequestError

# Bytes fields named like this carry W3C ids and are hex-encoded in OTLP/JSON (Span, Link,
# LogRecord, Exemplar).
HEX_ID_FIELDS: Final = frozenset({"trace_id", "span_id", "parent_span_id"})

_INT32: Final = (-(2**31), 2**31 - 1, "int32")
_UINT32: Final = (0, 2**32 - 1, "uint32")
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
_INT64: Final = (INT64_MIN, INT64_MAX, "int64")
_UINT64: Final = (0, 2**64 - 1, "uint64")

_T = FieldDescriptor
INT_RANGES: Final[dict[int, tuple[int, int, str]]] = {
    _T.TYPE_INT32: _INT32,
    _T.TYPE_SINT32: _INT32,
    _T.TYPE_SFIXED32: _INT32,
    _T.TYPE_UINT32: _UINT32,
    _T.TYPE_FIXED32: _UINT32,
    _T.TYPE_INT64: _INT64,
    _T.TYPE_SINT64: _INT64,
    _T.TYPE_SFIXED64: _INT64,
    _T.TYPE_UINT64: _UINT64,
    _T.TYPE_FIXED64: _UINT64,
}

# A JSON number written as a string ("1e3", "-12.0"); plain digit strings take a faster path.
_NUMBER_STR: Final = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?\Z")
_INT_STR: Final = re.compile(r"[+-]?[0-9]+\Z")
_URLSAFE_TO_STD: Final = str.maketrans("-_", "+/")
_SPECIAL_DOUBLES: Final = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class Malformed(Exception):
    """Raised deep in the converters. Each enclosing level appends its path segment while the
    exception propagates, so the happy path never builds path strings."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.segments: list[str] = []  # innermost first

    def to_bad_request(self) -> BadRequestError:
        path = "".join(reversed(self.segments)).lstrip(".")
        where = f"{path}: " if path else ""
        return BadRequestError(f"malformed OTLP/JSON: {where}{self.reason}")


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, Decimal)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__  # pragma: no cover - json.loads produces nothing else


def _short(value: str, limit: int = 40) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")


# (JSON value, depth of the enclosing message) -> constructor value
Converter = Callable[[Any, int], Any]


def _integer_of(value: Any) -> int:
    """The exact integer a JSON number or string denotes; `Malformed` if it is not one."""
    t = type(value)
    if t is int:
        return value
    if t is str:
        if _INT_STR.match(value) and len(value) <= 64:  # length: keep int() away from huge inputs
            return int(value)
        if not _NUMBER_STR.match(value):
            raise Malformed(f"invalid integer {_short(value)}")
        value = Decimal(value)
    elif t is not Decimal:
        raise Malformed(f"expected an integer, got {json_type(value)}")
    # A number with a fraction or exponent: accepted when integral (proto3 JSON).
    if value.adjusted() > 30:  # far out of any range; avoid materializing 10**huge
        raise Malformed(f"integer {_short(str(value))} out of range")
    if value != value.to_integral_value():
        raise Malformed(f"invalid integer {_short(str(value))} (has a fraction)")
    return int(value)


def int_converter(lo: int, hi: int, type_name: str) -> Converter:
    def convert(value: Any, depth: int) -> int:
        if type(value) is int:
            n = value
        elif type(value) is str and len(value) <= 20 and value.isdigit() and value.isascii():
            n = int(value)  # the usual "1795364734925000000": skip the general parser
        else:
            n = _integer_of(value)
        if lo <= n <= hi:
            return n
        raise Malformed(f"{n} out of {type_name} range")

    return convert


def enum_converter(fd: FieldDescriptor) -> Converter:
    by_name = {v.name: v.number for v in fd.enum_type.values}
    as_int32 = int_converter(*_INT32)

    def convert(value: Any, depth: int) -> int:
        if type(value) is str:
            number = by_name.get(value)
            if number is None:
                raise Malformed(f"unknown {fd.enum_type.name} value {_short(value)}")
            return number
        # Open proto3 enum: any int32 is kept, known or not.
        return as_int32(value, depth)

    return convert


def double(value: Any, depth: int) -> float:
    t = type(value)
    if t is Decimal or t is int:
        try:
            f = float(value)
        except OverflowError:
            f = math.inf
        if math.isinf(f):
            raise Malformed(f"number {_short(str(value))} out of double range")
        return f
    if t is str:
        special = _SPECIAL_DOUBLES.get(value)
        if special is not None:
            return special
        if _NUMBER_STR.match(value):  # proto3 JSON also allows quoted numbers
            return double(Decimal(value), depth)
        raise Malformed(f"invalid double {_short(value)}")
    raise Malformed(f"expected a number, got {json_type(value)}")


def string(value: Any, depth: int) -> str:
    if type(value) is str:
        return value
    raise Malformed(f"expected a string, got {json_type(value)}")


def boolean(value: Any, depth: int) -> bool:
    if type(value) is bool:
        return value
    raise Malformed(f"expected true or false, got {json_type(value)}")


def base64_bytes(value: Any, depth: int) -> bytes:
    if type(value) is not str:
        raise Malformed(f"expected a base64 string, got {json_type(value)}")
    # proto3 JSON: standard or URL-safe alphabet, padding optional.
    text = value.translate(_URLSAFE_TO_STD)
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise Malformed(f"invalid base64 {_short(value)}") from None


def hex_id(value: Any, depth: int) -> bytes:
    if type(value) is not str:
        raise Malformed(f"expected a hex string, got {json_type(value)}")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raw = None
    # fromhex skips ASCII whitespace between pairs; the length check rejects that too.
    if raw is None or len(raw) * 2 != len(value):
        if len(value) % 2:
            raise Malformed(f"invalid hex {_short(value)}: odd number of digits")
        raise Malformed(f"invalid hex {_short(value)}")
    return raw

