"""Model prices from the `genai-prices` table, and the cost arithmetic.

`genai-prices` (pydantic/genai-prices) bundles its price table in the wheel
(`genai_prices/data.py`), so a given package version always prices the same way and
nothing is fetched. The package can also refresh prices from GitHub (`UpdatePrices`, a
background thread); this module never uses it: it reads the bundled
`genai_prices.data.providers` list itself instead of the package's process-wide
"current snapshot", which an `UpdatePrices` started by some other library in the
process could have replaced.

Resolving a model name is the slow part (a scan of match rules), so `PriceBook.lookup`
remembers its answer per (provider, model) as they arrive on spans, misses included.
The arithmetic is done here rather than with `genai_prices.calc_price` (about 14k
calls/s): it follows the package's semantics (inclusive token counts, cliff tiers on
the request's input tokens, time-dependent prices) but touches only the units our
columns carry.

Token semantics are OpenTelemetry's: input tokens include cache reads (and cache
writes), output tokens include reasoning tokens.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from importlib.metadata import version as _dist_version
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from genai_prices.types import ModelInfo, Provider

PER_MTOK = Decimal(1_000_000)
_ZERO = Decimal(0)
PACKAGE = "genai-prices"

# OpenTelemetry `gen_ai.provider.name` values (and the normalized names of other
# conventions) -> genai-prices provider ids. None: the provider is known but has no
# prices in the table, so its spans stay unpriced rather than priced as someone else's.
PROVIDER_IDS: dict[str, str | None] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "google": "google",
    "aws.bedrock": "aws",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "mistral_ai": "mistral",
    "x_ai": "x-ai",
    "deepseek": "deepseek",
    "groq": "groq",
    "cohere": "cohere",
    "perplexity": "perplexity",
    "ibm.watsonx.ai": None,
}
# Provider values that mean "not said": the model name alone picks the provider.
UNKNOWN_PROVIDERS = frozenset({"", "_other"})


class _Constraint(Protocol):
    def active(self, request_timestamp: datetime) -> bool: ...


@dataclass(frozen=True, slots=True)
class TieredRate:
    """Price per million tokens that depends on the request's input tokens, as a cliff:
    past a tier's `start`, every token of the unit pays that tier's rate."""

    base: Decimal
    tiers: tuple[tuple[int, Decimal], ...]  # (start, rate), ascending start

    def at(self, input_tokens: int) -> Decimal:
        rate = self.base
        for start, tier_rate in self.tiers:
            if input_tokens <= start:
                break
            rate = tier_rate
        return rate


Rate = Decimal | TieredRate


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per million tokens. None: the table has no price for that kind of token."""

    input: Rate | None
    output: Rate | None
    cache_read: Rate | None = None
    cache_write: Rate | None = None
    reasoning: Rate | None = None


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """A resolved model's prices.

    `schedule` is set only when the price depends on the time of the request (a price
    change on a date, off-peak hours): (constraint, rates) in table order, where the last
    active entry wins and `rates` (the first entry) applies when none is.
    """

    provider: str  # genai-prices provider id; for an override, the override's provider ("" = any)
    model: str  # the table's model id (the undated name), or the override's model
    rates: Rates
    schedule: tuple[tuple[_Constraint | None, Rates], ...] = ()
    source: str = PACKAGE  # PACKAGE or "override"

    @property
    def varies(self) -> bool:
        return bool(self.schedule)

    def rates_at(self, when: datetime | None) -> Rates:
        if not self.schedule:
            return self.rates
        when = when or datetime.now(UTC)
        for constraint, rates in reversed(self.schedule):
            if constraint is None or constraint.active(when):
                return rates
        return self.rates


@dataclass(frozen=True, slots=True)
class CostBreakdown:
    """USD. A part is None when its token count is unknown; the total adds the known parts."""

    input_usd: Decimal | None
    output_usd: Decimal | None
    total_usd: Decimal


def _usd(tokens: int, rate: Rate | None, input_tokens: int) -> Decimal:
    if rate is None or not tokens:
        return _ZERO
    per_mtok = rate.at(input_tokens) if isinstance(rate, TieredRate) else rate
    return Decimal(tokens) * per_mtok / PER_MTOK


def cost(
    price: ModelPrice,
    input_tokens: int | None,
    output_tokens: int | None,
    cached_input_tokens: int | None = None,
    reasoning_tokens: int | None = None,
    cache_write_tokens: int | None = None,
    *,
    at: datetime | None = None,
) -> CostBreakdown | None:
    """Cost of one request; None when neither input nor output tokens are known.

    `input_tokens` includes `cached_input_tokens` (cache reads) and `cache_write_tokens`;
    the rest is priced at the input rate, cache reads at the cache-read rate and cache
    writes at the cache-write rate (each falling back to the input rate when the table
    has none). `output_tokens` includes `reasoning_tokens`, priced at the reasoning rate
    where the model has one, else at the output rate. Detail counts larger than their
    total are capped at the total. `at` is the request time, for time-dependent prices
    (None: now).
    """
    if input_tokens is None and output_tokens is None:
        return None
    r = price.rates_at(at) if price.schedule else price.rates
    tier_tokens = input_tokens or 0
    input_usd: Decimal | None = None
    output_usd: Decimal | None = None
    if input_tokens is not None:
        cached = min(cached_input_tokens or 0, input_tokens)
        written = min(cache_write_tokens or 0, input_tokens - cached)
        plain = input_tokens - cached - written
        input_usd = (
            _usd(plain, r.input, tier_tokens)
            + _usd(cached, r.cache_read if r.cache_read is not None else r.input, tier_tokens)
            + _usd(written, r.cache_write if r.cache_write is not None else r.input, tier_tokens)
        )
    if output_tokens is not None:
        if r.reasoning is not None and reasoning_tokens:
            reasoning = min(reasoning_tokens, output_tokens)
            output_usd = (_usd(output_tokens - reasoning, r.output, tier_tokens)
                          + _usd(reasoning, r.reasoning, tier_tokens))
        else:
            output_usd = _usd(output_tokens, r.output, tier_tokens)
    total = (input_usd if input_usd is not None else _ZERO) + (output_usd if output_usd is not None else _ZERO)
    return CostBreakdown(input_usd, output_usd, total)


def override_price(provider: str, model: str, input_per_mtok: Decimal, output_per_mtok: Decimal,
                   cached_input_per_mtok: Decimal | None = None,
                   reasoning_per_mtok: Decimal | None = None) -> ModelPrice:
    return ModelPrice(provider=provider.strip().lower(), model=model.strip(), source="override",
                      rates=Rates(input=input_per_mtok, output=output_per_mtok,
                                  cache_read=cached_input_per_mtok, reasoning=reasoning_per_mtok))


def package_version() -> str:
    return _dist_version(PACKAGE)


class PriceBook:
    """Looks up model prices, remembering each (provider, model) answer, misses included.

    `overrides` win over the table; an override with provider "" applies to every
    provider. `table_lookups` counts how often the price table itself was consulted.
    """

    def __init__(self, overrides: Iterable[ModelPrice] = (), *, max_entries: int = 10_000):
        self._overrides: dict[tuple[str, str], ModelPrice] = {}
        for o in overrides:
            self._overrides[(o.provider.lower(), o.model.lower())] = o
        self._cache: dict[tuple[str, str], ModelPrice | None] = {}
        self._max_entries = max_entries
        self._providers: list[Provider] | None = None
        self.table_lookups = 0
        self.version = f"{PACKAGE}=={package_version()}"
        if self._overrides:
            self.version += f"+overrides.{_overrides_digest(self._overrides.values())}"

    def load(self) -> None:
        """Import the bundled table (about 0.4 s, once per process)."""
        if self._providers is None:
            from genai_prices.data import providers

            self._providers = providers

    def lookup(self, provider: str, model: str) -> ModelPrice | None:
        key = (provider, model)
        try:
            return self._cache[key]
        except KeyError:
            pass
        price = self._resolve(provider, model)
        if len(self._cache) >= self._max_entries:
            # Model names come from clients; never let them grow this without bound.
            self._cache.clear()
        self._cache[key] = price
        return price

    def _resolve(self, provider: str, model: str) -> ModelPrice | None:
        model_ref = model.strip().lower()
        if not model_ref:
            return None
        provider_key = provider.strip().lower()
        override = self._overrides.get((provider_key, model_ref)) or self._overrides.get(("", model_ref))
        if override is not None:
            return override
        self.table_lookups += 1
        table = self._table_provider(provider_key, model_ref)
        if table is None:
            return None
        self.load()
        info = table.find_model(model_ref, all_providers=self._providers)
        return None if info is None else _compile(table.id, info)

    def _table_provider(self, provider_key: str, model_ref: str) -> Provider | None:
        self.load()
        providers = self._providers
        assert providers is not None
        if provider_key in UNKNOWN_PROVIDERS:
            # The package's own inference: the first provider whose model rule matches.
            return next((p for p in providers if p.model_match is not None and p.model_match.is_match(model_ref)),
                        None)
        if provider_key in PROVIDER_IDS:
            table_id = PROVIDER_IDS[provider_key]
            if table_id is None:
                return None
        else:
            table_id = provider_key
        from genai_prices.data_snapshot import find_provider_by_id

        return find_provider_by_id(providers, table_id)


def _compile(provider_id: str, info: ModelInfo) -> ModelPrice | None:
    prices = info.prices
    if isinstance(prices, list):
        if not prices:
            return None
        schedule = tuple((cp.constraint, _rates(cp.prices)) for cp in prices)
        if all(r.input is None and r.output is None for _, r in schedule):
            return None
        return ModelPrice(provider=provider_id, model=info.id, rates=schedule[0][1], schedule=schedule)
    rates = _rates(prices)
    if rates.input is None and rates.output is None:
        return None  # priced per image, per second, per request...: not by tokens
    return ModelPrice(provider=provider_id, model=info.id, rates=rates)


def _rates(mp: Any) -> Rates:
    return Rates(
        input=_rate(getattr(mp, "input_mtok", None)),
        output=_rate(getattr(mp, "output_mtok", None)),
        cache_read=_rate(getattr(mp, "cache_read_mtok", None)),
        cache_write=_rate(getattr(mp, "cache_write_mtok", None)),
        reasoning=_rate(getattr(mp, "output_reasoning_mtok", None)),
    )


def _rate(value: Any) -> Rate | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return value
    # genai_prices.types.TieredPrices
    return TieredRate(base=value.base, tiers=tuple((t.start, t.price) for t in value.tiers))


def _overrides_digest(overrides: Iterable[ModelPrice]) -> str:
    rows = sorted(json.dumps([o.provider, o.model, str(o.rates.input), str(o.rates.output),
                              str(o.rates.cache_read), str(o.rates.reasoning)]) for o in overrides)
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()[:8]
