"""Chat messages from each convention, reduced to `ChatMessage(role, content, tool_calls)`.

Only text content is kept (what token estimation needs); images, audio and other parts
are skipped. The shapes handled:
- OTel GenAI `gen_ai.input.messages` / `gen_ai.output.messages`: `[{role, parts: [{type, content}]}]`
  (a JSON string or a structured value), plus `gen_ai.system_instructions`;
- OpenAI-style `[{role, content: str | [{type: "text", text}]}]` (MLflow inputs, Vercel
  `ai.prompt.messages`, LiteLLM, Langfuse);
- flattened `llm.input_messages.{i}.message.*` (OpenInference) and `gen_ai.prompt.{i}.*`
  (OpenLLMetry legacy);
- OTel GenAI events: `gen_ai.client.inference.operation.details` and the deprecated
  `gen_ai.{system,user,assistant,tool}.message` and `gen_ai.choice`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tracehouse.core.genai import ChatMessage
from tracehouse.processors.genai_normalize.values import loads, path, raw

Attrs = Mapping[str, AnyValue]


def _text_of(content: Any) -> str:
    content = loads(content)
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        for key in ("text", "content"):
            if isinstance(content.get(key), str):
                return str(content[key])
        return ""
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and part.get("type", "text") in ("text", "input_text", "output_text",
                                                                         "reasoning"):
                piece = part.get("content", part.get("text"))
                if isinstance(piece, str):
                    texts.append(piece)
        return "\n".join(texts)
    return ""


def _tool_calls(message: dict[str, Any]) -> list[dict[str, Any]]:
    calls = []
    for call in message.get("tool_calls") or []:
        if isinstance(call, dict):
            fn: dict[str, Any] = call["function"] if isinstance(call.get("function"), dict) else call
            calls.append({"name": fn.get("name", ""), "arguments": fn.get("arguments", "")})
    for part in message.get("parts") or []:
        if isinstance(part, dict) and part.get("type") == "tool_call":
            calls.append({"name": part.get("name", ""), "arguments": part.get("arguments", "")})
    return calls


def from_list(value: Any) -> list[ChatMessage] | None:
    """OTel `{role, parts}` or OpenAI `{role, content}` message lists."""
    items = loads(value)
    if isinstance(items, dict) and isinstance(items.get("messages"), list):
        items = items["messages"]
    if not isinstance(items, list):
        return None
    out = []
    for item in items:
        item = loads(item)
        if not isinstance(item, dict):
            continue
        content = item.get("parts") if "parts" in item else item.get("content")
        out.append(ChatMessage(role=str(item.get("role", "")), content=_text_of(content), tool_calls=_tool_calls(item)))
    return out or None


def _flattened(attrs: Attrs, prefix: str, role_key: str, content_key: str) -> list[ChatMessage] | None:
    """`<prefix>.{i}.<role_key>` / `.<content_key>` attributes, in index order."""
    if f"{prefix}.0.{role_key}" not in attrs and f"{prefix}.0.{content_key}" not in attrs:
        return None  # lists start at index 0: no need to scan every attribute
    found: dict[int, dict[str, str]] = {}
    calls: dict[int, dict[int, dict[str, str]]] = {}  # message index -> call index -> name/arguments
    start = len(prefix) + 1
    for key, value in attrs.items():
        if not key.startswith(prefix):
            continue
        index_text, _, rest = key[start:].partition(".")
        if not index_text.isdigit():
            continue
        slot = found.setdefault(int(index_text), {})
        if rest == role_key:
            slot["role"] = str(raw(value))
        elif rest == content_key:
            slot["content"] = _text_of(raw(value))
        elif "contents." in rest and rest.endswith(".text"):
            slot["content"] = (slot.get("content", "") + "\n" + str(raw(value))).strip("\n")
        elif rest.startswith("message.tool_calls.") and rest.endswith((".function.name", ".function.arguments")):
            # OpenInference: message.tool_calls.{k}.tool_call.function.{name,arguments}
            call_index, _, _ = rest[len("message.tool_calls."):].partition(".")
            if call_index.isdigit():
                field = "name" if rest.endswith(".name") else "arguments"
                calls.setdefault(int(index_text), {}).setdefault(int(call_index), {})[field] = str(raw(value))
    if not found:
        return None
    return [ChatMessage(role=found[i].get("role", ""), content=found[i].get("content", ""),
                    tool_calls=[{"name": c.get("name", ""), "arguments": c.get("arguments", "")}
                                for _, c in sorted(calls.get(i, {}).items())])
            for i in sorted(found)]


def _openai_choices(value: Any) -> list[ChatMessage] | None:
    choices = path(value, "choices")
    if not isinstance(choices, list):
        return None
    out = []
    for choice in choices:
        message = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(message, dict):
            out.append(ChatMessage(role=str(message.get("role", "assistant")), content=_text_of(message.get("content")),
                               tool_calls=_tool_calls(message)))
    return out or None


def _langfuse_output(value: Any) -> list[ChatMessage] | None:
    """Langfuse's `langfuse.observation.output`: a message list, ONE message object (what its
    OpenAI integration records: `{role, content}` or `{role, tool_calls}`), or plain text."""
    output = loads(value)
    if isinstance(output, str):
        return [ChatMessage(role="assistant", content=output)] if output else None
    if isinstance(output, dict) and "role" in output and ("content" in output or "tool_calls" in output):
        output = [output]
    return from_list(output)


def _system_instructions(attrs: Attrs) -> list[ChatMessage]:
    value = attrs.get("gen_ai.system_instructions")
    if value is None:
        return []
    content = _text_of(raw(value))
    return [ChatMessage(role="system", content=content)] if content else []


Extractor = Callable[[Attrs], list[ChatMessage] | None]


def _attr(key: str, parse: Callable[[Any], list[ChatMessage] | None] = from_list) -> Extractor:
    def extract(attrs: Attrs) -> list[ChatMessage] | None:
        value = attrs.get(key)
        return parse(raw(value)) if value is not None else None
    extract.__name__ = key
    return extract


def _otel_input(attrs: Attrs) -> list[ChatMessage] | None:
    messages = _attr("gen_ai.input.messages")(attrs)
    return [*_system_instructions(attrs), *messages] if messages else None


def _single_text(role: str, key: str) -> Extractor:
    def extract(attrs: Attrs) -> list[ChatMessage] | None:
        value = attrs.get(key)
        if value is None:
            return None
        content = _text_of(raw(value))
        return [ChatMessage(role=role, content=content)] if content else None
    return extract


INPUT_EXTRACTORS: tuple[Extractor, ...] = (
    _otel_input,
    lambda a: _flattened(a, "llm.input_messages", "message.role", "message.content"),
    lambda a: _flattened(a, "gen_ai.prompt", "role", "content"),
    _attr("mlflow.spanInputs"),
    _attr("ai.prompt.messages"),
    _attr("langfuse.observation.input"),
    _attr("gen_ai.prompt"),
)

OUTPUT_EXTRACTORS: tuple[Extractor, ...] = (
    _attr("gen_ai.output.messages"),
    lambda a: _flattened(a, "llm.output_messages", "message.role", "message.content"),
    lambda a: _flattened(a, "gen_ai.completion", "role", "content"),
    _attr("mlflow.spanOutputs", _openai_choices),
    _single_text("assistant", "ai.response.text"),
    _attr("langfuse.observation.output", _langfuse_output),
    _attr("gen_ai.completion"),
)

# Every key an extractor above starts from (a flattened list: its first message's role or
# content): a span with none of them has no messages in its attributes, so a reader of many
# spans (the trace view) skips the extractors. An extractor reading another key adds it here;
# tests/query/test_span_messages.py checks every captured convention against the extractors.
MESSAGE_KEYS = frozenset({
    "gen_ai.input.messages", "gen_ai.system_instructions", "gen_ai.output.messages",
    "llm.input_messages.0.message.role", "llm.input_messages.0.message.content",
    "llm.output_messages.0.message.role", "llm.output_messages.0.message.content",
    "gen_ai.prompt.0.role", "gen_ai.prompt.0.content", "gen_ai.completion.0.role", "gen_ai.completion.0.content",
    "mlflow.spanInputs", "mlflow.spanOutputs", "ai.prompt.messages", "ai.response.text",
    "langfuse.observation.input", "langfuse.observation.output", "gen_ai.prompt", "gen_ai.completion",
})

_EVENT_ROLES = {"gen_ai.system.message": "system", "gen_ai.user.message": "user",
                "gen_ai.assistant.message": "assistant", "gen_ai.tool.message": "tool"}
# The current event (semconv v1.37+): the span's own content attributes, on an opt-in event
# that an instrumentation records instead of (or beside) the span attributes.
DETAILS_EVENT = "gen_ai.client.inference.operation.details"


def from_events(events: Any) -> tuple[list[ChatMessage] | None, list[ChatMessage] | None]:
    """The messages of GenAI events, in the order given: `gen_ai.client.inference.operation.details`
    (its `gen_ai.input.messages` / `gen_ai.output.messages` / `gen_ai.system_instructions`) and
    the deprecated per-message events (v1.28–v1.36: `gen_ai.{system,user,assistant,tool}.message`
    and `gen_ai.choice`, their body fields as attributes). Anything else is skipped."""
    inputs: list[ChatMessage] = []
    outputs: list[ChatMessage] = []
    for event in events:
        if event.name == DETAILS_EVENT:
            attrs = {kv.key: kv.value for kv in event.attributes}
            inputs.extend(first(INPUT_EXTRACTORS[:1], attrs) or ())
            outputs.extend(first(OUTPUT_EXTRACTORS[:1], attrs) or ())
            continue
        role = _EVENT_ROLES.get(event.name)
        if role is None and event.name != "gen_ai.choice":
            continue
        fields = {kv.key: loads(raw(kv.value)) for kv in event.attributes}
        if role is not None:
            inputs.append(ChatMessage(role=str(fields.get("role") or role), content=_text_of(fields.get("content")),
                                      tool_calls=_tool_calls(fields)))
        else:
            message = fields.get("message")
            message = message if isinstance(message, dict) else fields
            outputs.append(ChatMessage(role=str(message.get("role") or "assistant"),
                                       content=_text_of(message.get("content")), tool_calls=_tool_calls(message)))
    return inputs or None, outputs or None


def first(extractors: tuple[Extractor, ...], attrs: Attrs) -> list[ChatMessage] | None:
    for extract in extractors:
        messages = extract(attrs)
        if messages:
            return messages
    return None
