from __future__ import annotations

from tracehouse.core.component import ComponentConfig


class GenAINormalizeConfig(ComponentConfig):
    # Read chat messages of LLM spans (needed by genai_tokens to estimate missing usage).
    extract_messages: bool = True
    # Fill session/user ids from resource attributes when spans do not carry them.
    resource_fallback: bool = True
