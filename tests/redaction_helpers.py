"""Secrets to plant in real payloads, and what "the structure was kept" means, for the
redaction tests. Where secrets go is decided here, independently of the processor's own
list of content attributes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tracehouse.core.component import ComponentID, Kind, Settings
from tracehouse.core.pdata import LogBatch, TraceBatch
from tracehouse.core.testing import TestHost, TracesSink
from tracehouse.processors.redaction.config import RedactionConfig
from tracehouse.processors.redaction.processor import RedactionProcessor

# One of each detector's kind, as they leak into prompts.
SECRETS: dict[str, str] = {
    "email": "jane.doe@example.com",
    "phone": "+1 415 555 0132",
    "credit_card": "4111 1111 1111 1111",
    "us_ssn": "123-45-6789",
    "openai_api_key": "sk-live-4eC39HqLyjWDarjtT1zdp7dc",
    "anthropic_api_key": "sk-ant-api03-Zx9_Yw8-Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe",
    "aws_access_key": "AKIAIOSFODNN7EXAMPLE",
    "google_api_key": "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
    "github_token": "ghp_" + "a1B2c3D4e5" * 4,
    "slack_token": "xoxb-1234567890-0987654321-AbCdEfGhIjKl",
    "stripe_key": "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "private_key": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----",
}
SECRET_TEXT = " Also: " + " ; ".join(SECRETS.values()) + " (thanks)"


def markers() -> list[bytes]:
    """What must not be found in stored bytes: each secret (a key's body line for PEM, whose
    newlines a JSON text escapes)."""
    return [(s.split("\n")[1] if "\n" in s else s).encode() for s in SECRETS.values()]


_TEXT_LEAF_KEYS = ("content", "text")
_TEXT_ATTRIBUTE_SUFFIXES = (".content", ".template", ".text")


def _plant(node: Any) -> tuple[Any, int]:
    if isinstance(node, dict):
        n = 0
        for k, v in node.items():
            if k in _TEXT_LEAF_KEYS and isinstance(v, str) and v:
                node[k] = v + SECRET_TEXT
                n += 1
            else:
                node[k], m = _plant(v)
                n += m
        return node, n
    if isinstance(node, list):
        n = 0
        for i, v in enumerate(node):
            node[i], m = _plant(v)
            n += m
        return node, n
    return node, 0


def inject_secrets(batch: TraceBatch) -> int:
    """Append every secret to each message text of every span (JSON `content`/`text` leaves,
    flattened `*.content`, templates, `*.text`); returns the number of texts planted."""
    planted = 0
    for _, _, sp in batch.iter_spans():
        for kv in sp.attributes:
            s = kv.value.string_value
            if not s:
                continue
            if kv.key.endswith(_TEXT_ATTRIBUTE_SUFFIXES):
                kv.value.string_value = s + SECRET_TEXT
                planted += 1
                continue
            if s.startswith(("[", "{")):
                try:
                    tree = json.loads(s)
                except ValueError:
                    continue
                tree, n = _plant(tree)
                if n:
                    kv.value.string_value = json.dumps(tree)
                    planted += n
    batch.mark_mutated()
    return planted


def inject_secrets_logs(batch: LogBatch) -> int:
    """Append every secret to each message text the GenAI log events carry, in place (value
    types untouched): the `content`/`text` leaves of structured attribute values (the
    inference details event's messages) and of map bodies (the per-message events'
    `content`, `message.content`), and evaluation explanations. Returns the texts planted."""
    planted = 0
    for rl in batch.request.resource_logs:
        for sl in rl.scope_logs:
            for record in sl.log_records:
                for kv in record.attributes:
                    if kv.key.endswith(".explanation") and kv.value.string_value:
                        kv.value.string_value += SECRET_TEXT
                        planted += 1
                    else:
                        planted += _plant_value(kv.value)
                planted += _plant_value(record.body)
    batch.mark_mutated()
    return planted


def _plant_value(value: AnyValue) -> int:
    which = value.WhichOneof("value")
    planted = 0
    if which == "kvlist_value":
        for kv in value.kvlist_value.values:
            if kv.key in _TEXT_LEAF_KEYS and kv.value.string_value:
                kv.value.string_value += SECRET_TEXT
                planted += 1
            else:
                planted += _plant_value(kv.value)
    elif which == "array_value":
        for v in value.array_value.values:
            planted += _plant_value(v)
    return planted


STRUCTURAL = frozenset({"role", "type", "name", "id", "tool_call_id", "finish_reason", "model", "mime_type",
                        "object", "index"})


def shape_of(value: Any, drop: bool = False, key: str | None = None, top: bool = True) -> Any:
    """A value with its text abstracted: same keys, list lengths, roles, types, names, ids and
    (unless `drop`, which empties tool-call numbers) numbers. An attribute's JSON text is
    compared decoded (JSON texts inside it, like tool arguments, are text)."""
    if isinstance(value, str):
        if top and value.startswith(("[", "{")):
            try:
                return shape_of(json.loads(value), drop, key, False)
            except ValueError:
                pass
        leaf = (key or "").rsplit(".", 1)[-1]
        return value if leaf in STRUCTURAL else "<text>"
    if isinstance(value, dict):
        return {k: shape_of(v, drop, k, False) for k, v in value.items()}
    if isinstance(value, list):
        return [shape_of(v, drop, key, False) for v in value]
    if drop and (value is None or isinstance(value, (int, float))) and not isinstance(value, bool):
        return "<number>"
    return value


CONTENT_ATTRIBUTES = ("gen_ai.input.messages", "gen_ai.output.messages", "input.value", "output.value",
                      "mlflow.spanInputs", "mlflow.spanOutputs", "ai.prompt", "ai.prompt.messages", "ai.response.text",
                      "llm.prompt_template.variables")


def text_values(key: str, value: Any) -> Iterator[tuple[str, str]]:
    """(leaf key, text) of every text inside a message attribute of the captured libraries."""
    if key.endswith((".message.content", ".function.arguments")):
        yield key.rsplit(".", 1)[-1], value
        return
    if key not in CONTENT_ATTRIBUTES or value == "null":  # a JSON null holds no text
        return
    tree: Any = value
    if isinstance(value, str) and value.startswith(("[", "{")):
        tree = json.loads(value)
    yield from _leaves(tree, key)


def _leaves(node: Any, key: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, str):
        yield key, node
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, k)
    elif isinstance(node, list):
        for v in node:
            yield from _leaves(v, key)


def redactor(host: TestHost | None = None, pipeline: str = "traces", **config: Any) -> RedactionProcessor:
    processor = RedactionProcessor(Settings(ComponentID("redaction"), Kind.PROCESSOR, pipeline),
                                   RedactionConfig.model_validate(config), TracesSink())
    if host is not None:
        asyncio.run(processor.start(host))
    return processor
