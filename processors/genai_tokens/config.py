from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from tracehouse.core.component import ComponentConfig


class GenAITokensConfig(ComponentConfig):
    # Estimate input tokens of LLM spans that report none but carry input messages.
    estimate_input: bool = True
    # Estimate output tokens of LLM spans that report none but carry output messages.
    estimate_output: bool = True
    # Characters tokenized at most per span and direction; the rest is extrapolated
    # linearly from the tokens per character of the counted part. 0 = no bound.
    max_chars_per_span: int = 200_000
    # Encoding for non-OpenAI and unknown models (OpenAI models always get their own).
    default_encoding: Literal["o200k_base", "cl100k_base"] = "o200k_base"

    @model_validator(mode="after")
    def _check(self) -> GenAITokensConfig:
        if self.max_chars_per_span and self.max_chars_per_span < 1000:
            raise ValueError("max_chars_per_span must be 0 (no bound) or at least 1000")
        return self
