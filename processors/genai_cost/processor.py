"""The `genai_cost` processor: fills the GenAI cost columns from a price table.

Per span, in the columns `genai_normalize` filled (nothing is rescanned):
- a cost the client reported (`cost_source == "reported"`) is kept as it is;
- else, with input or output tokens known and a model that resolves (response model
  first, it is the dated one; then the request model), input/output/total cost are
  computed and marked `computed`;
- a model that does not resolve leaves the cost empty and is counted, per
  (provider, model), never guessed;
- a span without a model or without token counts is left alone.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tracehouse.core.component import Host, Settings, TracesConsumer
from tracehouse.core.genai import GenAIColumns
from tracehouse.core.pdata import TraceBatch
from tracehouse.processors.genai_cost.config import GenAICostConfig
from tracehouse.processors.genai_cost.pricing import PriceBook, cost, override_price

# Distinct (provider, model) label pairs kept for the unpriced counter; later ones are
# counted under OTHER so a client sending random model names cannot blow up /metrics.
MAX_UNPRICED_KEYS = 1000
OTHER = "_other"
_MAX_LABEL = 200


class CostProcessor:
    mutates_data = True  # fills costs in the GenAI columns

    def __init__(self, settings: Settings, config: GenAICostConfig, next_consumer: TracesConsumer):
        self._settings = settings
        self._config = config
        self._next = next_consumer
        self._book = PriceBook(override_price(o.provider, o.model, o.input_per_mtok, o.output_per_mtok,
                                              o.cached_input_per_mtok, o.reasoning_per_mtok)
                               for o in config.overrides)
        self.price_table_version = self._book.version
        self.computed_spans = 0
        self.reported_spans = 0
        self.unpriced_spans = 0
        self.unpriced_by_model: dict[tuple[str, str], int] = {}
        self._host: Host | None = None

    @property
    def price_book(self) -> PriceBook:
        return self._book

    async def start(self, host: Host) -> None:
        self._host = host
        if self._config.enabled:
            self._book.load()  # pay the table import now, not on the first batch
            self._settings.logger.info("genai cost prices loaded", price_table_version=self.price_table_version)

    async def shutdown(self) -> None:
        return None

    async def consume(self, batch: TraceBatch) -> None:
        if self._config.enabled:
            cols = batch.genai
            if cols is not None:
                self.price(batch, cols)
        await self._next.consume(batch)

    def price(self, batch: TraceBatch, cols: GenAIColumns) -> None:
        lookup = self._book.lookup
        spans: list[Any] | None = None
        for i in range(cols.size):
            if cols.cost_source[i] == "reported":
                self.reported_spans += 1
                continue
            input_tokens = cols.input_tokens[i]
            output_tokens = cols.output_tokens[i]
            if input_tokens is None and output_tokens is None:
                continue
            response_model = cols.response_model[i]
            request_model = cols.request_model[i]
            model = response_model or request_model
            if not model:
                continue
            provider = cols.provider[i]
            price = lookup(provider, model)
            if price is None and response_model and request_model and request_model != response_model:
                price = lookup(provider, request_model)
            if price is None:
                self._unpriced(provider, model)
                continue
            when = None
            if price.schedule:
                if spans is None:
                    spans = [span for _, _, span in batch.iter_spans()]
                when = _start_time(spans[i])
            result = cost(price, input_tokens, output_tokens, cols.cached_input_tokens[i],
                          cols.reasoning_tokens[i], at=when)
            if result is None:
                continue
            cols.input_cost_usd[i] = result.input_usd
            cols.output_cost_usd[i] = result.output_usd
            cols.total_cost_usd[i] = result.total_usd
            cols.cost_source[i] = "computed"
            cols.price_version[i] = self.price_table_version
            self.computed_spans += 1

    def _unpriced(self, provider: str, model: str) -> None:
        self.unpriced_spans += 1
        key = (provider[:_MAX_LABEL], model[:_MAX_LABEL])
        if key not in self.unpriced_by_model and len(self.unpriced_by_model) >= MAX_UNPRICED_KEYS:
            key = (OTHER, OTHER)
        self.unpriced_by_model[key] = self.unpriced_by_model.get(key, 0) + 1
        # Exported once Telemetry declares it (see README); until then the counters above.
        metric = getattr(self._host.telemetry, "genai_unpriced_spans", None) if self._host else None
        if metric is not None:
            metric.labels(*key).inc()


def _start_time(span: Any) -> datetime | None:
    nanos = span.start_time_unix_nano
    return datetime.fromtimestamp(nanos / 1e9, tz=UTC) if nanos else None
