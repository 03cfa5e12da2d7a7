"""OTLP wire codec for traces: OTLP/JSON in and out, export responses, `google.rpc.Status` bodies.

No I/O here; the gRPC and HTTP receivers call these functions.

OTLP/JSON is the proto3 JSON mapping with the deviations the OTLP specification
(`docs/specification.md`, "JSON Protobuf Encoding") requires:

* `traceId`, `spanId` and `parentSpanId` (in spans and in links) are case-insensitive hex
  strings, not base64; `""` is empty bytes. Every other `bytes` field (`bytesValue`) stays
  base64. Id *lengths* are not checked here: a 15-byte trace id decodes to 15 bytes and is
  judged per span later.
* Enums are integers; the enum value names (`"SPAN_KIND_SERVER"`) are accepted as well, as
  the Collector does.
* Unknown keys are ignored. Keys are lowerCamelCase; like every proto3 JSON parser and the
  Collector's own OTLP/JSON unmarshaler we also accept the original snake_case field names.
* 64-bit integers are decimal strings (numbers accepted); doubles are numbers or the
  strings "NaN", "Infinity", "-Infinity"; `null` means "field not set".

Two choices beyond the spec: lone UTF-16 surrogates (`"\\ud83c"`) become U+FFFD, as in the
Collector, instead of failing the batch; and nesting deeper than `MAX_NESTING_DEPTH` is
rejected, because protobuf could not parse the re-serialized request back.

The decoder translates the parsed JSON into constructor kwargs (snake_case keys, converted
values), driven by tables built once from the protobuf descriptors, then makes a single
`ExportTraceServiceRequest(**kwargs)` call: upb builds the whole tree from the nested dicts
in C. Measured on 5000-span bodies this is about 3x faster than rewriting the ids and calling
`json_format.ParseDict` (pure Python, one `setattr` per field), and because it checks every
value itself it names the JSON path of any malformation. JSON parsing uses the stdlib `json`
module (`orjson` is not installed); of the total, parsing takes about a third, the kwargs
translation two fifths, the constructor a quarter.
"""

from __future__ import annotations

import base64
import binascii
import json as _json
import math
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Final

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tracehouse.core.errors import BadRequestError

__all__ = [
    "MAX_NESTING_DEPTH",
    "decode_json",
    "encode_export_response",
    "encode_json",
    "encode_status",
]

# Deepest message nesting accepted (ResourceSpans = 1, Span = 3, span attribute AnyValue = 5;
# only nested arrayValue/kvlistValue go deeper). It is upb's default decode depth limit: a
# deeper request would be accepted here, re-serialized, and then fail `TraceBatch.from_bytes`
# in a downstream consumer. The protobuf receivers get the same limit from upb itself.
MAX_NESTING_DEPTH: Final = 100

# Bytes fields named like this carry W3C ids and are hex-encoded in OTLP/JSON (Span, Link,
# and LogRecord/profiles should this codec ever cover them).
_HEX_ID_FIELDS: Final = frozenset({"trace_id", "span_id", "parent_span_id"})

_INT32: Final = (-(2**31), 2**31 - 1, "int32")
_UINT32: Final = (0, 2**32 - 1, "uint32")
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_INT64: Final = (_INT64_MIN, _INT64_MAX, "int64")
_UINT64: Final = (0, 2**64 - 1, "uint64")

_T = FieldDescriptor
_INT_RANGES: Final[dict[int, tuple[int, int, str]]] = {
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
_64BIT_TYPES: Final = frozenset(
    {_T.TYPE_INT64, _T.TYPE_SINT64, _T.TYPE_SFIXED64, _T.TYPE_UINT64, _T.TYPE_FIXED64}
)

# A JSON number written as a string ("1e3", "-12.0"); plain digit strings take a faster path.
_NUMBER_STR: Final = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?\Z")
_INT_STR: Final = re.compile(r"[+-]?[0-9]+\Z")
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
_URLSAFE_TO_STD: Final = str.maketrans("-_", "+/")
_SPECIAL_DOUBLES: Final = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class _Malformed(Exception):
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


def _json_type(value: Any) -> str:
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


def _reject_constant(name: str) -> Any:
    # Python's json accepts the non-standard literals NaN/Infinity; OTLP/JSON spells them as strings.
    raise ValueError(f"non-standard JSON literal {name} (use the string \"{name}\")")


# Decimal keeps JSON numbers with a fraction or exponent exact, so `"intValue": 1.5e18` is
# judged on its real value; floats only occur in doubleValue, rarely, so the cost is moot.
_DECODER: Final = _json.JSONDecoder(parse_float=Decimal, parse_constant=_reject_constant)

# ---------------------------------------------------------------------------------------
# Scalar converters: (JSON value, depth of the enclosing message) -> constructor value.
# ---------------------------------------------------------------------------------------

_Conv = Callable[[Any, int], Any]


def _integer_of(value: Any) -> int:
    """The exact integer a JSON number or string denotes; `_Malformed` if it is not one."""
    t = type(value)
    if t is int:
        return value
    if t is str:
        if _INT_STR.match(value) and len(value) <= 64:  # length: keep int() away from huge inputs
            return int(value)
        if not _NUMBER_STR.match(value):
            raise _Malformed(f"invalid integer {_short(value)}")
        value = Decimal(value)
    elif t is not Decimal:
        raise _Malformed(f"expected an integer, got {_json_type(value)}")
    # A number with a fraction or exponent: accepted when integral (proto3 JSON).
    if value.adjusted() > 30:  # far out of any range; avoid materializing 10**huge
        raise _Malformed(f"integer {_short(str(value))} out of range")
    if value != value.to_integral_value():
        raise _Malformed(f"invalid integer {_short(str(value))} (has a fraction)")
    return int(value)


def _int_converter(lo: int, hi: int, type_name: str) -> _Conv:
    def convert(value: Any, depth: int) -> int:
        if type(value) is int:
            n = value
        elif type(value) is str and len(value) <= 20 and value.isdigit() and value.isascii():
            n = int(value)  # the usual "1795364734925000000": skip the general parser
        else:
            n = _integer_of(value)
        if lo <= n <= hi:
            return n
        raise _Malformed(f"{n} out of {type_name} range")

    return convert


def _enum_converter(fd: FieldDescriptor) -> _Conv:
    by_name = {v.name: v.number for v in fd.enum_type.values}
    as_int32 = _int_converter(*_INT32)

    def convert(value: Any, depth: int) -> int:
        if type(value) is str:
            number = by_name.get(value)
            if number is None:
                raise _Malformed(f"unknown {fd.enum_type.name} value {_short(value)}")
            return number
        # Open proto3 enum: any int32 is kept, known or not.
        return as_int32(value, depth)

    return convert


def _double(value: Any, depth: int) -> float:
    t = type(value)
    if t is Decimal or t is int:
        try:
            f = float(value)
        except OverflowError:
            f = math.inf
        if math.isinf(f):
            raise _Malformed(f"number {_short(str(value))} out of double range")
        return f
    if t is str:
        special = _SPECIAL_DOUBLES.get(value)
        if special is not None:
            return special
        if _NUMBER_STR.match(value):  # proto3 JSON also allows quoted numbers
            return _double(Decimal(value), depth)
        raise _Malformed(f"invalid double {_short(value)}")
    raise _Malformed(f"expected a number, got {_json_type(value)}")


def _string(value: Any, depth: int) -> str:
    if type(value) is str:
        return value
    raise _Malformed(f"expected a string, got {_json_type(value)}")


def _bool(value: Any, depth: int) -> bool:
    if type(value) is bool:
        return value
    raise _Malformed(f"expected true or false, got {_json_type(value)}")


def _base64(value: Any, depth: int) -> bytes:
    if type(value) is not str:
        raise _Malformed(f"expected a base64 string, got {_json_type(value)}")
    # proto3 JSON: standard or URL-safe alphabet, padding optional.
    text = value.translate(_URLSAFE_TO_STD)
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise _Malformed(f"invalid base64 {_short(value)}") from None


def _hex_id(value: Any, depth: int) -> bytes:
    if type(value) is not str:
        raise _Malformed(f"expected a hex string, got {_json_type(value)}")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raw = None
    # fromhex skips ASCII whitespace between pairs; the length check rejects that too.
    if raw is None or len(raw) * 2 != len(value):
        if len(value) % 2:
            raise _Malformed(f"invalid hex {_short(value)}: odd number of digits")
        raise _Malformed(f"invalid hex {_short(value)}")
    return raw


# ---------------------------------------------------------------------------------------
# Message plans: per message type, JSON key -> (constructor kwarg, converter).
# ---------------------------------------------------------------------------------------


# Field kinds whose common, valid JSON form `_MessagePlan.convert` handles inline instead of
# calling the converter (a Python call costs as much as the conversion itself). Anything the
# inline test does not accept, valid or not, goes to the converter, which has the final word.
_K_OTHER: Final = 0
_K_PASS: Final = 1  # string or bool: the JSON value is the field value
_K_HEX: Final = 2  # a hex id
_K_UINT64: Final = 3  # fixed64/uint64 timestamps, usually a digit string
_K_UINT32: Final = 4  # counts and flags, usually a JSON number
_K_LIST: Final = 5  # repeated field, often an empty list


class _MessagePlan:
    __slots__ = ("fields", "full_name", "oneof_of")

    def __init__(self, full_name: str) -> None:
        self.full_name = full_name
        # JSON key -> (kwarg, converter, inline kind, the JSON type `_K_PASS` lets through)
        self.fields: dict[str, tuple[str, _Conv, int, type]] = {}
        self.oneof_of: dict[str, str] = {}  # kwarg -> oneof name, for messages with oneofs

    def convert(self, obj: Any, depth: int) -> dict[str, Any]:
        depth += 1
        if depth > MAX_NESTING_DEPTH:
            raise _Malformed(f"messages nested deeper than {MAX_NESTING_DEPTH} levels")
        if type(obj) is not dict:
            raise _Malformed(f"expected an object, got {_json_type(obj)}")
        out: dict[str, Any] = {}
        fields = self.fields
        for key, value in obj.items():
            entry = fields.get(key)
            if entry is None or value is None:  # unknown key: ignored; null: not set
                continue
            name, convert, kind, pass_type = entry
            if kind == _K_PASS:
                if type(value) is pass_type:
                    out[name] = value
                    continue
            elif kind == _K_HEX:
                if type(value) is str:
                    try:
                        raw = bytes.fromhex(value)
                    except ValueError:
                        pass
                    else:
                        if len(raw) * 2 == len(value):  # fromhex skips whitespace; we do not
                            out[name] = raw
                            continue
            elif kind == _K_UINT64:
                # <= 19 digits is always < 2**64: no range check needed.
                if type(value) is str and len(value) <= 19 and value.isdigit() and value.isascii():
                    out[name] = int(value)
                    continue
            elif kind == _K_UINT32:
                if type(value) is int and 0 <= value <= 0xFFFFFFFF:
                    out[name] = value
                    continue
            elif kind == _K_LIST:
                if type(value) is list and not value:
                    out[name] = value  # the constructor only reads it
                    continue
            try:
                out[name] = convert(value, depth)
            except _Malformed as exc:
                exc.segments.append("." + key)
                raise
        if self.oneof_of and len(out) > 1:
            self._check_oneofs(out)
        return out

    def _check_oneofs(self, out: dict[str, Any]) -> None:
        seen: dict[str, str] = {}
        for name in out:
            oneof = self.oneof_of.get(name)
            if oneof is None:
                continue
            if oneof in seen:
                raise _Malformed(f"more than one of {seen[oneof]!r} and {name!r} set (oneof {oneof})")
            seen[oneof] = name


def _repeated(convert_one: _Conv) -> _Conv:
    def convert(value: Any, depth: int) -> list[Any]:
        if type(value) is not list:
            raise _Malformed(f"expected an array, got {_json_type(value)}")
        out: list[Any] = []
        append = out.append
        try:
            for item in value:
                append(convert_one(item, depth))
        except _Malformed as exc:
            exc.segments.append(f"[{len(out)}]")  # items before the failing one were appended
            raise
        return out

    return convert


_PLANS: dict[str, _MessagePlan] = {}
# Message types with a hand-written converter (hot path); `_message_converter` routes to them.
_SPECIAL: dict[str, _Conv] = {}


def _plan_for(desc: Descriptor) -> _MessagePlan:
    plan = _PLANS.get(desc.full_name)
    if plan is not None:
        return plan
    plan = _PLANS[desc.full_name] = _MessagePlan(desc.full_name)  # before recursing: types nest
    for fd in desc.fields:
        convert = _field_converter(fd)
        kind, pass_type = _inline_kind(fd)
        entry = (fd.name, convert, kind, pass_type)
        plan.fields[fd.json_name] = entry
        plan.fields.setdefault(fd.name, entry)
        if fd.containing_oneof is not None:
            plan.oneof_of[fd.name] = fd.containing_oneof.name
    return plan


def _inline_kind(fd: FieldDescriptor) -> tuple[int, type]:
    if fd.is_repeated:
        return _K_LIST, list
    if fd.type == _T.TYPE_STRING:
        return _K_PASS, str
    if fd.type == _T.TYPE_BOOL:
        return _K_PASS, bool
    if fd.type == _T.TYPE_BYTES and fd.name in _HEX_ID_FIELDS:
        return _K_HEX, str
    if fd.type in (_T.TYPE_FIXED64, _T.TYPE_UINT64):
        return _K_UINT64, str
    if fd.type in (_T.TYPE_FIXED32, _T.TYPE_UINT32):
        return _K_UINT32, int
    return _K_OTHER, object


def _message_converter(desc: Descriptor) -> _Conv:
    plan = _plan_for(desc)  # also for special types: their fast paths fall back to it
    return _SPECIAL.get(desc.full_name, plan.convert)


def _field_converter(fd: FieldDescriptor) -> _Conv:
    convert: _Conv
    if fd.type == _T.TYPE_MESSAGE:
        convert = _message_converter(fd.message_type)
    elif fd.type == _T.TYPE_ENUM:
        convert = _enum_converter(fd)
    elif fd.type in _INT_RANGES:
        convert = _int_converter(*_INT_RANGES[fd.type])
    elif fd.type in (_T.TYPE_DOUBLE, _T.TYPE_FLOAT):
        convert = _double
    elif fd.type == _T.TYPE_STRING:
        convert = _string
    elif fd.type == _T.TYPE_BOOL:
        convert = _bool
    elif fd.type == _T.TYPE_BYTES:
        convert = _hex_id if fd.name in _HEX_ID_FIELDS else _base64
    else:  # pragma: no cover - groups do not exist in proto3
        raise TypeError(f"unsupported field type {fd.type} for {fd.full_name}")
    return _repeated(convert) if fd.is_repeated else convert


# Hand-written fast paths for the two types that make up most of every payload. They fall
# back to the generic plan for anything unusual, so they add speed, not semantics.

_ANY_VALUE = "opentelemetry.proto.common.v1.AnyValue"
_KEY_VALUE = "opentelemetry.proto.common.v1.KeyValue"


def _any_value(obj: Any, depth: int) -> dict[str, Any]:
    if type(obj) is dict and len(obj) == 1 and depth < MAX_NESTING_DEPTH:
        [(key, value)] = obj.items()
        if key == "stringValue":
            if type(value) is str:
                return {"string_value": value}
        elif key == "intValue":
            if type(value) is int and _INT64_MIN <= value <= _INT64_MAX:
                return {"int_value": value}
        elif key == "boolValue":
            if type(value) is bool:
                return {"bool_value": value}
    return _PLANS[_ANY_VALUE].convert(obj, depth)


def _key_value(obj: Any, depth: int) -> dict[str, Any]:
    if type(obj) is dict and len(obj) == 2 and depth < MAX_NESTING_DEPTH - 1:
        key = obj.get("key")
        value = obj.get("value")
        if type(key) is str and type(value) is dict:
            if len(value) == 1:  # inlined `_any_value` string case: most attributes are strings
                text = value.get("stringValue")
                if type(text) is str:
                    return {"key": key, "value": {"string_value": text}}
            try:
                return {"key": key, "value": _any_value(value, depth + 1)}
            except _Malformed as exc:
                exc.segments.append(".value")
                raise
    return _PLANS[_KEY_VALUE].convert(obj, depth)


_SPECIAL[_ANY_VALUE] = _any_value
_SPECIAL[_KEY_VALUE] = _key_value

_REQUEST_PLAN: Final = _plan_for(ExportTraceServiceRequest.DESCRIPTOR)
assert _ANY_VALUE in _PLANS and _KEY_VALUE in _PLANS  # built while walking the request


def _scrub_surrogates(node: Any) -> Any:
    """Replace lone UTF-16 surrogates (legal as JSON escapes, not encodable as UTF-8) with
    U+FFFD, as Go's JSON decoders (and so the Collector) do. JavaScript exporters produce them
    when they truncate a string in the middle of a surrogate pair."""
    if isinstance(node, str):
        return _SURROGATE.sub("\ufffd", node)
    if isinstance(node, list):
        return [_scrub_surrogates(item) for item in node]
    if isinstance(node, dict):
        return {key: _scrub_surrogates(value) for key, value in node.items()}
    return node


def decode_json(body: bytes) -> ExportTraceServiceRequest:
    """Parse an OTLP/JSON `ExportTraceServiceRequest` body.

    Raises `BadRequestError` naming the problem and its JSON path on any malformation.
    """
    try:
        text = str(body, "utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequestError(
            f"malformed OTLP/JSON: body is not valid UTF-8 ({exc.reason} at byte {exc.start})"
        ) from None
    if text.startswith("\ufeff"):  # RFC 8259 lets parsers ignore a byte order mark
        text = text[1:]
    try:
        doc = _DECODER.decode(text)
    except _json.JSONDecodeError as exc:
        raise BadRequestError(f"malformed OTLP/JSON: invalid JSON: {exc}") from None
    except ValueError as exc:  # a rejected NaN literal, an integer with > 4300 digits
        raise BadRequestError(f"malformed OTLP/JSON: invalid JSON: {exc}") from None
    except RecursionError:
        raise BadRequestError("malformed OTLP/JSON: invalid JSON: nested too deeply") from None
    if type(doc) is not dict:
        raise BadRequestError(f"malformed OTLP/JSON: top level must be an object, got {_json_type(doc)}")
    try:
        kwargs = _REQUEST_PLAN.convert(doc, -1)
    except _Malformed as exc:
        raise exc.to_bad_request() from None
    try:
        return ExportTraceServiceRequest(**kwargs)
    except UnicodeEncodeError:
        return ExportTraceServiceRequest(**_scrub_surrogates(kwargs))
    except (TypeError, ValueError) as exc:  # pragma: no cover - the converters validate everything
        raise BadRequestError(f"malformed OTLP/JSON: {exc}") from None


# ---------------------------------------------------------------------------------------
# Encoder: message -> OTLP/JSON (hex ids, integer enums, 64-bit integers as strings).
# ---------------------------------------------------------------------------------------

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
            enc = bytes.hex if fd.name in _HEX_ID_FIELDS else _encode_base64
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


def encode_json(request: ExportTraceServiceRequest) -> bytes:
    """Serialize to OTLP/JSON (compact, UTF-8). Unknown protobuf fields are dropped."""
    return _json.dumps(
        _ENCODE_REQUEST(request), ensure_ascii=False, allow_nan=False, separators=(",", ":")
    ).encode("utf-8")


# ---------------------------------------------------------------------------------------
# Responses
# ---------------------------------------------------------------------------------------


def _dump_message(message: Message) -> bytes:
    # json_format gives the canonical proto3 JSON (camelCase, int64 as strings, Any with
    # "@type"); the messages here are tiny, so its speed does not matter.
    return _json.dumps(json_format.MessageToDict(message), separators=(",", ":")).encode("utf-8")


def encode_export_response(rejected_spans: int, error_message: str, *, json: bool) -> bytes:
    """An `ExportTraceServiceResponse` body. `partial_success` stays unset on full success
    (nothing rejected, no message), as the OTLP spec requires; a message with
    `rejected_spans == 0` is the spec's "warning" form."""
    if rejected_spans < 0:
        raise ValueError("rejected_spans must be >= 0")
    response = ExportTraceServiceResponse()
    if rejected_spans or error_message:
        response.partial_success.rejected_spans = rejected_spans
        response.partial_success.error_message = error_message
    return _dump_message(response) if json else response.SerializeToString()


def encode_status(code: int, message: str, *, json: bool, retry_after_s: float | None = None) -> bytes:
    """A `google.rpc.Status` body for an HTTP error response (`code` is a `google.rpc.Code`).

    With `retry_after_s`, a `google.rpc.RetryInfo` detail carries the delay (negative values
    are clamped to 0), for 429/503 answers alongside the `Retry-After` header.
    """
    status = status_pb2.Status(code=code, message=message)
    if retry_after_s is not None:
        if not math.isfinite(retry_after_s):
            raise ValueError(f"retry_after_s must be finite, got {retry_after_s}")
        info = error_details_pb2.RetryInfo()
        info.retry_delay.FromNanoseconds(round(max(0.0, retry_after_s) * 1e9))
        status.details.add().Pack(info)
    return _dump_message(status) if json else status.SerializeToString()
