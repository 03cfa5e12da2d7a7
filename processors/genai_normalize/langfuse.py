"""Langfuse's usage object (`langfuse.observation.usage_details`) in OTel token semantics.

Langfuse SDKs (v3+) put a generation's usage in one JSON object, in whichever shape the
app or integration handed it over. Three are in the wild:

- **Langfuse's own keys**: `input` (without cached tokens), `output` (without reasoning
  tokens), `total`, `input_cached_tokens` / `input_cache_read`, `input_cache_creation`,
  `output_reasoning_tokens`. What apps pass to `generation.update(usage_details=...)`.
- **OpenAI Chat Completions usage**, passed on unchanged by the SDK's OpenAI integration
  (`langfuse.openai`): `prompt_tokens` (incl. cached), `completion_tokens` (incl.
  reasoning), `total_tokens`, `prompt_tokens_details.cached_tokens`,
  `completion_tokens_details.reasoning_tokens`.
- **OpenAI Responses usage**, the same integration on `client.responses`: `input_tokens`,
  `output_tokens`, `total_tokens`, `input_tokens_details.cached_tokens`,
  `output_tokens_details.reasoning_tokens`.

OTel counts input with cached tokens and output with reasoning tokens, as OpenAI does;
Langfuse's own keys are converted to that. Captured payloads: tests/fixtures/sdk/langfuse/.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tracehouse.processors.genai_normalize import mapping as m
from tracehouse.processors.genai_normalize.values import count, path, raw

Counts = dict[str, int | None]


def _detail(usage: dict[str, Any], details: str, key: str) -> int | None:
    inner = usage.get(details)
    return count(inner.get(key)) if isinstance(inner, dict) else None


def _langfuse_keys(usage: dict[str, Any]) -> Counts:
    cached = count(usage.get("input_cached_tokens"))
    if cached is None:
        cached = count(usage.get("input_cache_read"))
    created = count(usage.get("input_cache_creation"))
    reasoning = count(usage.get("output_reasoning_tokens"))
    inp, out = count(usage.get("input")), count(usage.get("output"))
    return {
        "input_tokens": None if inp is None else inp + (cached or 0) + (created or 0),
        "output_tokens": None if out is None else out + (reasoning or 0),
        "cached_input_tokens": cached, "reasoning_tokens": reasoning, "total_tokens": count(usage.get("total")),
    }


def _openai_keys(usage: dict[str, Any], inp: str, out: str, in_details: str, out_details: str) -> Counts:
    return {
        "input_tokens": count(usage.get(inp)), "output_tokens": count(usage.get(out)),
        "cached_input_tokens": _detail(usage, in_details, "cached_tokens"),
        "reasoning_tokens": _detail(usage, out_details, "reasoning_tokens"),
        "total_tokens": count(usage.get("total_tokens")),
    }


def langfuse_usage(attrs: Mapping[str, AnyValue]) -> Counts:
    """The span's Langfuse usage in OTel semantics; {} when it has none it can read."""
    value = attrs.get(m.LANGFUSE_USAGE.key)
    usage = path(raw(value)) if value is not None else None
    if not isinstance(usage, dict):
        return {}
    if "input" in usage or "output" in usage:
        return _langfuse_keys(usage)
    if "prompt_tokens" in usage or "completion_tokens" in usage:
        return _openai_keys(usage, "prompt_tokens", "completion_tokens", "prompt_tokens_details",
                            "completion_tokens_details")
    if "input_tokens" in usage or "output_tokens" in usage:
        return _openai_keys(usage, "input_tokens", "output_tokens", "input_tokens_details", "output_tokens_details")
    return {}
