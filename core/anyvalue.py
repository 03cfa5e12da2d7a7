"""OTLP AnyValue -> plain Python: the one walk, with the two renderings that differ by use
(bytes, and doubles) as a parameter.

`to_python(v)` keeps bytes as bytes and doubles as floats (for reading values, as the
GenAI processors do); the ClickHouse exporter passes a style with the Collector's
(pcommon AsString) renderings: bytes base64, non-finite doubles as text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue


@dataclass(frozen=True, slots=True)
class AnyValueStyle:
    """How the walk renders the values plain Python has more than one answer for."""

    bytes_value: Callable[[bytes], Any] | None = None  # None: bytes as they are
    double_value: Callable[[float], Any] | None = None  # None: the float as it is


PLAIN = AnyValueStyle()


def to_python(v: AnyValue, style: AnyValueStyle = PLAIN) -> Any:
    """str, int, bool, float, bytes, list, dict (kvlists; a repeated key keeps its last
    value), or None for an empty AnyValue; bytes and doubles as `style` renders them."""
    kind = v.WhichOneof("value")
    if kind == "string_value":  # by far the most common: first
        return v.string_value
    if kind == "int_value":
        return v.int_value
    if kind == "bool_value":
        return v.bool_value
    if kind == "double_value":
        return v.double_value if style.double_value is None else style.double_value(v.double_value)
    if kind == "array_value":
        return [to_python(x, style) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: to_python(kv.value, style) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        return v.bytes_value if style.bytes_value is None else style.bytes_value(v.bytes_value)
    return None
