"""Link an LLM call to the POML prompt whose rendered messages it sent.

POML's MLflow backend records each `poml.poml(...)` call as a `poml` span (inputs: the POML
source, context, stylesheet; outputs: the rendered messages) and registers the source in the
MLflow prompt registry, but nothing ties the LLM call that sends those messages to either:
with `mlflow.openai.autolog()` the call is a span of its own trace (the seed example makes two
one-span traces), or a sibling in the same trace when the app wraps both in a span.

The rule, applied to one batch (one OTLP request before `batch`, or one writer batch):
an `llm` span that names no prompt gets the prompt link (name, version, template hash, template,
variables) of a `poml` span of the same resource (the same attributes: the same exporting process) whose rendered
messages equal the call's input messages: same roles, same text, same order. When several
`poml` spans rendered the same messages, one of the call's own trace wins, else the latest that
started before the call did. Per span this costs a list append; the messages of the LLM spans
are read and hashed only when the batch holds a `poml` span.

Limits: a `poml` span and its call exported in different requests are not linked (the OTel
batch span processor exports every 5 s or 512 spans, so the two usually travel together; a
timer tick between them splits them), nor are they when they are different traces sent through
Kafka partitioned by trace id and read by different writers. A call that edits the rendered
messages (adds a system message, appends history) does not match.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tracehouse.core.genai import ChatMessage, GenAIColumns
from tracehouse.processors.genai_normalize import messages
from tracehouse.processors.genai_normalize.values import loads, path, raw

Attrs = Mapping[str, AnyValue]

# POML's speakers, as its own OpenAI conversion (poml.api._poml_response_to_openai_chat) maps them.
_SPEAKER_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}


def _poml_text(content: Any) -> str:
    """POML rich content: a string, or a list of strings and media parts (text kept, as the
    OpenAI conversion then `messages.from_list` read it)."""
    content = loads(content)
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(part for part in content if isinstance(part, str))
    return ""


def poml_rendered(attrs: Attrs) -> list[ChatMessage] | None:
    """The messages a `poml` span rendered (its `mlflow.spanOutputs`): POML's CLI result,
    `{"messages": [{"speaker", "content"}], ...}`, the legacy bare list, or (chat=False) text."""
    value = attrs.get("mlflow.spanOutputs")
    if value is None:
        return None
    result = path(raw(value))
    items = result.get("messages") if isinstance(result, dict) else result
    if isinstance(items, str):
        return [ChatMessage(role="user", content=items)] if items else None
    if not isinstance(items, list):
        return None
    out = []
    for item in items:
        item = loads(item)
        if not isinstance(item, dict):
            continue
        speaker = str(item.get("speaker", ""))
        out.append(ChatMessage(role=_SPEAKER_ROLES.get(speaker, speaker), content=_poml_text(item.get("content"))))
    return out or None


def messages_key(msgs: list[ChatMessage]) -> str:
    """What two renderings must share to be the same: roles and text, in order."""
    return hashlib.sha256(json.dumps([[m.role, m.content] for m in msgs], ensure_ascii=False).encode()).hexdigest()


@dataclass(slots=True)
class _Rendering:
    index: int
    trace_id: bytes
    start: int


@dataclass(slots=True)
class _Call:
    index: int
    attrs: Attrs
    trace_id: bytes
    start: int


class RenderedLinks:
    """One batch's `poml` renderings and unlinked LLM calls, per resource; linked at the end."""

    __slots__ = ("_renderings", "_calls")

    def __init__(self) -> None:
        self._renderings: dict[tuple[bytes, str], list[_Rendering]] = {}
        self._calls: list[tuple[bytes, _Call]] = []

    def add_rendering(self, resource: bytes, index: int, attrs: Attrs, span: Any) -> None:
        rendered = poml_rendered(attrs)
        if rendered:
            self._renderings.setdefault((resource, messages_key(rendered)), []).append(
                _Rendering(index, span.trace_id, span.start_time_unix_nano))

    def add_call(self, resource: bytes, index: int, attrs: Attrs, span: Any) -> None:
        self._calls.append((resource, _Call(index, attrs, span.trace_id, span.start_time_unix_nano)))

    def link(self, cols: GenAIColumns) -> int:
        """Copy the prompt link of the matching rendering onto each call; returns how many."""
        if not self._renderings or not self._calls:
            return 0
        linked = 0
        for resource, call in self._calls:
            sent = cols.input_messages[call.index] or messages.first(messages.INPUT_EXTRACTORS, call.attrs)
            if not sent:
                continue
            found = self._renderings.get((resource, messages_key(sent)))
            if not found:
                continue
            source = _pick(found, call).index
            for name in ("prompt_name", "prompt_version", "prompt_template_hash", "prompt_template",
                         "prompt_variables", "prompt_source"):
                getattr(cols, name)[call.index] = getattr(cols, name)[source]
            linked += 1
        return linked


def _pick(found: list[_Rendering], call: _Call) -> _Rendering:
    if len(found) == 1:
        return found[0]
    same_trace = [r for r in found if r.trace_id == call.trace_id]
    candidates = same_trace or found
    before = [r for r in candidates if r.start <= call.start] or candidates
    return max(before, key=lambda r: r.start)
