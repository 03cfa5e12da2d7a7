"""Which attributes hold GenAI message content, and what `drop` keeps of a message.

Every convention genai_normalize reads (docs/genai-conventions.md) puts content somewhere
else: OTel GenAI JSON messages, flattened OpenInference / OpenLLMetry keys, MLflow span
inputs and outputs, Langfuse observation input/output, Vercel `ai.*`, Traceloop entity
input/output, Pydantic AI messages, and the deprecated message events. An attribute is one of:

- JSON: a JSON text (or a structured AnyValue) of messages or call payloads. It is parsed
  only when a detector may match it (or to drop its content); string leaves are masked and
  the JSON is written back, so its structure stays as it was;
- TEXT: content as plain text (a flattened message's content, `ai.response.text`): never
  parsed, since a user's message may itself look like JSON;
- TEMPLATE: a prompt template. The prompt registry versions templates by content, so
  `drop` masks them instead of removing them (a template is the app's prompt, not the
  user's words; to hide it too, list its key in `blocked_keys`).

What `drop` keeps: roles, types, names, ids, finish reasons, models and numbers (the
structure); every other string leaf becomes "". Inside tool-call payloads (arguments,
results, responses) and template variables every value goes, numbers included; their keys
stay.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from typing import Any


class Content(enum.Enum):
    JSON = "json"
    TEXT = "text"
    TEMPLATE = "template"
    OPAQUE = "opaque"  # JSON whose every leaf is data (tool arguments, template variables)
    KEPT = "kept"  # any content with `content: keep`: only blocked_values apply


# Exact span (and event) attribute keys.
CONTENT_KEYS: dict[str, Content] = {
    # OpenTelemetry GenAI (current and deprecated)
    "gen_ai.input.messages": Content.JSON, "gen_ai.output.messages": Content.JSON,
    "gen_ai.system_instructions": Content.JSON, "gen_ai.prompt": Content.JSON, "gen_ai.completion": Content.JSON,
    "gen_ai.tool.call.arguments": Content.OPAQUE, "gen_ai.tool.call.result": Content.OPAQUE,
    "gen_ai.retrieval.documents": Content.JSON, "gen_ai.retrieval.query.text": Content.TEXT,
    # An evaluator's words on a response (the gen_ai.evaluation.result event), which may quote it.
    "gen_ai.evaluation.explanation": Content.TEXT,
    # OpenInference
    "input.value": Content.JSON, "output.value": Content.JSON, "llm.prompts": Content.JSON,
    "llm.prompt_template.template": Content.TEMPLATE, "llm.prompt_template.variables": Content.OPAQUE,
    "tool.parameters": Content.OPAQUE,
    # MLflow (and POML's MLflow backend)
    "mlflow.spanInputs": Content.JSON, "mlflow.spanOutputs": Content.JSON, "mlflow.chunk.value": Content.JSON,
    # Langfuse
    "langfuse.observation.input": Content.JSON, "langfuse.observation.output": Content.JSON,
    "langfuse.trace.input": Content.JSON, "langfuse.trace.output": Content.JSON,
    # Vercel AI SDK (ai.result.* before 4.0)
    "ai.prompt": Content.JSON, "ai.prompt.messages": Content.JSON, "ai.response.text": Content.TEXT,
    "ai.response.object": Content.JSON, "ai.response.toolCalls": Content.JSON, "ai.toolCall.args": Content.OPAQUE,
    "ai.toolCall.result": Content.OPAQUE, "ai.result.text": Content.TEXT, "ai.result.object": Content.JSON,
    "ai.result.toolCalls": Content.JSON,
    # OpenLLMetry / Traceloop
    "traceloop.entity.input": Content.JSON, "traceloop.entity.output": Content.JSON,
    "traceloop.prompt.template": Content.TEMPLATE, "traceloop.prompt.template_variables": Content.OPAQUE,
    # Pydantic AI / Logfire
    "pydantic_ai.all_messages": Content.JSON, "final_result": Content.JSON, "all_messages_events": Content.JSON,
    "tool_arguments": Content.OPAQUE, "tool_response": Content.OPAQUE,
}

# Flattened messages: everything under a message is content except its structural keys.
_FLATTENED = re.compile(
    r"(?:llm\.(?:input|output)_messages\.\d+\.message|gen_ai\.(?:prompt|completion)\.\d+)\."
    r"(?!(?:role|name|tool_call_id|finish_reason|contents\.\d+\.message_content\.type"
    r"|tool_calls\.\d+\.(?:tool_call\.)?(?:id|type|name|function\.name))$)"
    r"|reranker\.(?:input|output)_documents\.\d+\.document\.content$"
    r"|retrieval\.documents\.\d+\.document\.content$"
    r"|embedding\.embeddings\.\d+\.embedding\.text$"
    r"|reranker\.query$")

# Keys of the deprecated per-message events (`gen_ai.user.message`, `gen_ai.choice`, ...):
# span event attributes, or the top-level keys of a log record's map body.
# `tool_calls` is a list of calls: their ids, types and function names are structure; their
# `arguments` are a payload (OPAQUE_KEYS).
GENAI_EVENT_KEYS: dict[str, Content] = {"content": Content.TEXT, "message": Content.JSON,
                                        "tool_calls": Content.JSON}

_CACHE: dict[str, Content | None] = {}
_MAX_CACHE = 8192


def classify(key: str) -> Content | None:
    """The content class of a span attribute key, or None for any other attribute."""
    found = _CACHE.get(key, False)
    if found is not False:
        return found  # type: ignore[return-value]
    kind = CONTENT_KEYS.get(key)
    if kind is None and _FLATTENED.match(key):
        kind = Content.TEXT
    if len(_CACHE) >= _MAX_CACHE:
        _CACHE.clear()
    _CACHE[key] = kind
    return kind


def classify_event(event_name: str, key: str) -> Content | None:
    if event_name.startswith("gen_ai."):
        kind = GENAI_EVENT_KEYS.get(key)
        if kind is not None:
            return kind
    return classify(key)


# String leaves `drop` keeps: structure, not content. A message participant's `name` is kept
# (in the formats seen it names the app's tool, function or agent).
KEEP = frozenset({
    "role", "type", "name", "id", "tool_call_id", "call_id", "finish_reason", "finishReason", "stop_reason",
    "model", "mime_type", "mimeType", "modality", "object", "system_fingerprint", "service_tier", "toolCallId",
    "toolName", "toolCallType", "file_id", "format", "refusal_type",
})
# Values whose every leaf is data, numbers included (their keys stay): tool-call payloads,
# template variables.
OPAQUE_KEYS = frozenset({"arguments", "args", "kwargs", "result", "response", "variables", "context"})


def drop_tree(node: Any, key: str | None = None, opaque: bool = False) -> tuple[Any, int]:
    """`node` with its content removed; returns (node, values removed). Containers keep
    their keys and length and are changed in place. Outside an opaque value, string leaves
    under a KEEP key and numbers stay; inside one, every leaf goes ("" or null)."""
    if isinstance(node, str):
        if not node or (not opaque and key in KEEP):
            return node, 0
        return "", 1
    dropped = 0
    if isinstance(node, dict):
        for k, v in node.items():
            node[k], n = drop_tree(v, k, opaque or k in OPAQUE_KEYS)
            dropped += n
    elif isinstance(node, list):
        for i, v in enumerate(node):
            node[i], n = drop_tree(v, key, opaque)
            dropped += n
    elif opaque and node is not None:
        return None, 1
    return node, dropped


def map_strings(node: Any, fn: Callable[[str], str]) -> tuple[Any, bool]:
    """Apply `fn` to every string leaf (not to dict keys); containers changed in place.
    Returns (node, whether anything changed); `fn` returns its argument when unchanged."""
    if isinstance(node, str):
        new = fn(node)
        return new, new is not node
    changed = False
    if isinstance(node, dict):
        for k, v in node.items():
            if isinstance(v, (str, dict, list)):
                node[k], c = map_strings(v, fn)
                changed |= c
    elif isinstance(node, list):
        for i, v in enumerate(node):
            if isinstance(v, (str, dict, list)):
                node[i], c = map_strings(v, fn)
                changed |= c
    return node, changed
