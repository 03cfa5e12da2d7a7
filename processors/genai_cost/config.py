from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tracehouse.core.component import ComponentConfig


class PriceOverride(BaseModel):
    """A custom price for one model (USD per million tokens); wins over the price table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Provider as it arrives on spans (`openai`, `gcp.vertex_ai`, ...); "" = any provider.
    provider: str = ""
    # Model name as it arrives on spans (response model, else request model); case-insensitive.
    model: str
    input_per_mtok: Decimal = Field(ge=0)
    output_per_mtok: Decimal = Field(ge=0)
    # Cache reads; unset = priced at input_per_mtok.
    cached_input_per_mtok: Decimal | None = Field(default=None, ge=0)
    # Reasoning tokens (part of the output); unset = priced at output_per_mtok.
    reasoning_per_mtok: Decimal | None = Field(default=None, ge=0)

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("model must not be empty")
        return v.strip()

    @field_validator("input_per_mtok", "output_per_mtok", "cached_input_per_mtok", "reasoning_per_mtok")
    @classmethod
    def _finite(cls, v: Decimal | None) -> Decimal | None:
        if v is not None and not v.is_finite():
            raise ValueError("a price must be a finite number")
        return v


class GenAICostConfig(ComponentConfig):
    # Off: spans pass through untouched.
    enabled: bool = True
    # Custom prices that win over the table (private or fine-tuned models, negotiated rates).
    overrides: list[PriceOverride] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> GenAICostConfig:
        seen: set[tuple[str, str]] = set()
        for o in self.overrides:
            key = (o.provider.strip().lower(), o.model.lower())
            if key in seen:
                raise ValueError(f"overrides: model {o.model!r} of provider {o.provider!r} is listed twice")
            seen.add(key)
        return self
