"""The OTLP/JSON encoder for traces: `ExportTraceServiceRequest` -> request body.

The OTLP/JSON mapping (json_decode.py's docstring): hex ids, integer enums, 64-bit
integers as strings, the non-finite doubles as "NaN", "Infinity", "-Infinity". Built per
message type from the protobuf descriptors, like the decoder's plans.
"""

from __future__ import annotations

import base64
import json as _json
import math
from collections.abc import Callable
from typing import Any, Final

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tracehouse.ingest.otlp.json_scalars import HEX_ID_FIELDS

__all__ = ["encode_json", "encode_dict"]

_T = FieldDescriptor
_64BIT_TYPES: Final = frozenset(
    {_T.TYPE_INT64, _T.TYPE_SINT64, _T.TYPE_SFIXED64, _T.TYPE_UINT64, _T.TYPE_FIXED64}
)

_Enc = Callable[[Any], Any]
_ENCODERS: dict[str, dict[int, tuple[str, _Enc]]] = {}


def _encode_double(value: float) -> float | str:
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _encode_base64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _encoder_table(desc: Descriptor) -> dict[int, tuple[str, _Enc]]:
    table = _ENCODERS.get(desc.full_name)
    if table is not None:
        return table
    table = _ENCODERS[desc.full_name] = {}
    for fd in desc.fields:
        enc: _Enc
        if fd.type == _T.TYPE_MESSAGE:
            enc = _message_encoder(fd.message_type)
        elif fd.type in _64BIT_TYPES:
            enc = str
        elif fd.type in (_T.TYPE_DOUBLE, _T.TYPE_FLOAT):
            enc = _encode_double
        elif fd.type == _T.TYPE_BYTES:
            enc = bytes.hex if fd.name in HEX_ID_FIELDS else _encode_base64
        else:  # strings, bools, 32-bit integers, enums (as their numbers)
            enc = _identity
        if fd.is_repeated:
            enc = _repeated_encoder(enc)
        table[fd.number] = (fd.json_name, enc)
    return table


def _identity(value: Any) -> Any:
    return value


def _repeated_encoder(enc: _Enc) -> _Enc:
    if enc is _identity:
        return list
    return lambda values: [enc(v) for v in values]


def _message_encoder(desc: Descriptor) -> _Enc:
    # Registered before it is filled, so recursive types (AnyValue) get the same dict.
    table = _encoder_table(desc)

    def encode(message: Message) -> dict[str, Any]:
        out = {}
        for fd, value in message.ListFields():
            name, enc = table[fd.number]
            out[name] = enc(value)
        return out

    return encode


_ENCODE_REQUEST: Final = _message_encoder(ExportTraceServiceRequest.DESCRIPTOR)


def encode_dict(request: ExportTraceServiceRequest) -> dict[str, Any]:
    """The OTLP/JSON mapping as Python objects (what `encode_json` serializes)."""
    out: dict[str, Any] = _ENCODE_REQUEST(request)
    return out


def encode_json(request: ExportTraceServiceRequest) -> bytes:
    """Serialize to OTLP/JSON (compact, UTF-8). Unknown protobuf fields are dropped."""
    return _json.dumps(
        encode_dict(request), ensure_ascii=False, allow_nan=False, separators=(",", ":")
    ).encode("utf-8")
