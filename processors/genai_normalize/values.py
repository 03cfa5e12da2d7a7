"""Reading attribute values the many ways GenAI libraries encode them.

MLflow JSON-encodes every value (`"\\"CHAT_MODEL\\""`), OpenInference and Langfuse put
JSON objects in strings, OTel message attributes may be JSON strings or structured
AnyValues, LiteLLM writes Python reprs. Decode defensively: try JSON, else keep the raw
value; never raise on a client's odd value.
"""

from __future__ import annotations

import ast
import json
import math
from decimal import Decimal, InvalidOperation
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tracehouse.core.anyvalue import to_python


def raw(value: Any) -> Any:
    """An attribute value as plain Python (str, int, float, bool, bytes, list, dict, None): an
    AnyValue through the shared walk; a value already plain (span attributes read in C,
    core/_otlpwire.c) as it is."""
    return to_python(value) if isinstance(value, AnyValue) else value


def loads(value: Any) -> Any:
    """A JSON string's value; anything else (or invalid JSON) as it is."""
    if isinstance(value, str) and value and value[0] in '{["0123456789-tfn':
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


# Python reprs longer than this are not evaluated (literal_eval's cost grows with them).
_MAX_REPR = 16_384


def python_literal(value: Any) -> Any:
    """A Python repr of a dict or list (LiteLLM's `metadata.*`: single quotes, `None`) as its
    value; anything else as it is. `ast.literal_eval` builds only literals, never runs code."""
    if isinstance(value, str) and value[:1] in "{[" and len(value) <= _MAX_REPR:
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return value
    return value


def text(value: Any) -> str:
    """A non-empty string, or ""; JSON-encoded strings (MLflow) are unwrapped."""
    if isinstance(value, str):
        if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
            decoded = loads(value)
            return decoded if isinstance(decoded, str) else value
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return ""


def json_text(value: Any) -> str:
    """Like `text`, but a JSON object or array (template variables) is kept as JSON text."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True) if value else ""
    return text(value)


def count(value: Any) -> int | None:
    """A token count: a non-negative whole number, from an int, float or numeric string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = loads(value.strip())
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and math.isfinite(value) and value >= 0 and value == int(value):
        return int(value)
    return None


def usd(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        value = loads(value.strip())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        try:
            amount = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        except InvalidOperation:
            return None
        return amount if amount >= 0 else None
    return None


def path(value: Any, *keys: str | int) -> Any:
    """Walk into a (possibly JSON-encoded) object: path(v, "usage", "input_tokens")."""
    current = loads(value)
    for key in keys:
        if isinstance(key, int):
            if not isinstance(current, list) or len(current) <= key:
                return None
            current = loads(current[key])
        else:
            if not isinstance(current, dict):
                return None
            current = loads(current.get(key))
    return current
