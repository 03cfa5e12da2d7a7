from __future__ import annotations

from tracehouse.core.component import ComponentConfig


class GenAINormalizeConfig(ComponentConfig):
    # Read the chat messages (and tool calls) of LLM spans.
    extract_messages: bool = True
    # ...but only where usage is missing: messages feed token estimation alone today, and
    # reading them is a third of this processor's cost on spans that report usage.
    messages_only_without_usage: bool = True
    # Fill session/user ids from resource attributes when spans do not carry them.
    resource_fallback: bool = True
