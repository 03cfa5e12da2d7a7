"""The one AnyValue -> Python walk, in its plain style and with a style of its own."""

from __future__ import annotations

import math

from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tracehouse.core.anyvalue import AnyValueStyle, to_python
from tracehouse.core.pdata import any_value


def test_plain_keeps_every_value_as_python_has_it() -> None:
    value = {"s": "x", "i": -3, "b": True, "d": 0.5, "inf": math.inf, "raw": b"\x00\xff", "list": [1, ["y"], {}]}
    assert to_python(any_value(value)) == value
    assert to_python(AnyValue()) is None


def test_a_style_renders_bytes_and_doubles_at_every_depth_and_nothing_else() -> None:
    style = AnyValueStyle(bytes_value=bytes.hex, double_value=lambda d: "nan" if math.isnan(d) else d)
    value = any_value([b"\x01", math.nan, 1.5, 7, "s", {"k": [b"\x02", math.nan]}])
    assert to_python(value, style) == ["01", "nan", 1.5, 7, "s", {"k": ["02", "nan"]}]
