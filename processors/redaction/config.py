from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AliasChoices, Field, field_validator, model_validator

from tracehouse.core.component import ComponentConfig
from tracehouse.processors.redaction.detectors import DETECTOR_KINDS


def _regex(pattern: str) -> str:
    """Compiled at config load, so a bad pattern fails the start and names itself."""
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
    return pattern


Regex = Annotated[str, AfterValidator(_regex)]


class GenAIRedactionConfig(ComponentConfig):
    # What happens to message content (messages, prompts, completions, tool-call payloads,
    # template variables) in every convention genai_normalize reads:
    #   keep: left as it is (the Collector keys still apply);
    #   mask: the detectors' matches inside it are replaced by [REDACTED:<kind>];
    #   drop: removed ("" / null), keeping roles, types, names and ids (the structure).
    content: Literal["keep", "mask", "drop"] = "mask"
    # Detectors run on content (mask and drop modes; drop masks templates) and, with
    # mask_attributes, on every other string value. [] disables them.
    detectors: list[str] = Field(default_factory=lambda: list(DETECTOR_KINDS))
    # Also run the detectors on every other string attribute of spans, span events (exception
    # messages), log records, scopes and resources, on span status messages, and on the
    # bodies of log records that are not GenAI events.
    mask_attributes: bool = True

    @field_validator("detectors")
    @classmethod
    def _known(cls, detectors: list[str]) -> list[str]:
        unknown = [d for d in detectors if d not in DETECTOR_KINDS]
        if unknown:
            raise ValueError(f"unknown detector(s) {', '.join(map(repr, unknown))}; "
                             f"known: {', '.join(DETECTOR_KINDS)}")
        return list(dict.fromkeys(detectors))


class RedactionConfig(ComponentConfig):
    # The OpenTelemetry Collector's redaction processor keys, with its meaning.
    # Every attribute key passes unless this is false; then only allowed_keys (and
    # ignored_keys) are kept and every other attribute is removed. The Collector defaults to
    # false; here true, because GenAI conventions add attribute names faster than an
    # allowlist can follow, and an allowlist that misses one silently drops token counts.
    allow_all_keys: bool = True
    allowed_keys: list[str] = []
    # Passed through untouched by every rule, detectors included.
    ignored_keys: list[str] = []
    # Regexes on keys (searched, as the Collector does): a matching attribute's whole value
    # becomes "****". The Collector spells this key `blocked_key_patterns`; both are accepted.
    blocked_keys: list[Regex] = Field(default=[], validation_alias=AliasChoices("blocked_keys",
                                                                                "blocked_key_patterns"))
    # Regexes on values: the matching parts become "****".
    blocked_values: list[Regex] = []
    # Diagnostic attributes (redaction.masked.keys/count, redaction.redacted.keys/count,
    # redaction.ignored.count): debug = keys and counts, info = counts, silent = none.
    summary: Literal["debug", "info", "silent"] = "silent"
    genai: GenAIRedactionConfig = GenAIRedactionConfig()

    @model_validator(mode="before")
    @classmethod
    def _one_spelling(cls, data: Any) -> Any:
        if isinstance(data, dict) and "blocked_keys" in data and "blocked_key_patterns" in data:
            raise ValueError("set blocked_keys or its Collector spelling blocked_key_patterns, not both")
        return data
