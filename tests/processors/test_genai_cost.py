"""The genai_cost processor prices spans from the genai-prices table, never guesses, keeps reported costs.

Expected costs are computed here, independently of the processor, from per-million-token
prices written down as literals. They were read from the bundled table of genai-prices
0.2.3 (`genai_prices/data.py`; provider, model id and line given with each below).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from pydantic import ValidationError

from tracehouse.core.component import ComponentID, Kind, Settings
from tracehouse.core.genai import GenAIColumns
from tracehouse.core.pdata import TraceBatch
from tracehouse.core.testing import TestHost, TracesSink
from tracehouse.processors.genai_cost.config import GenAICostConfig
from tracehouse.processors.genai_cost.factory import factory
from tracehouse.processors.genai_cost.pricing import PriceBook, TieredRate, cost, package_version
from tracehouse.processors.genai_cost.processor import MAX_UNPRICED_KEYS, OTHER, CostProcessor

M = Decimal(1_000_000)

# USD per million tokens, from genai-prices 0.2.3 data.py.
# openai / gpt-4o-mini (matches gpt-4o-mini-2024-07-18), data.py line 14845
GPT_4O_MINI = {"input": Decimal("0.15"), "cache_read": Decimal("0.075"), "output": Decimal("0.6")}
# openai / o4-mini (matches o4-mini-2025-04-16), line 17065: no separate reasoning price
O4_MINI = {"input": Decimal("1.1"), "cache_read": Decimal("0.275"), "output": Decimal("4.4")}
# openai / gpt-5 (matches gpt-5-2025-08-07), line 14977: no separate reasoning price
GPT_5 = {"input": Decimal("1.25"), "cache_read": Decimal("0.125"), "output": Decimal("10")}
# openai / o3, line 16952: 10 / 0.5 / 40 until 2025-06-10, then 2 / 0.5 / 8
O3_BEFORE = {"input": Decimal("10"), "cache_read": Decimal("0.5"), "output": Decimal("40")}
O3_AFTER = {"input": Decimal("2"), "cache_read": Decimal("0.5"), "output": Decimal("8")}
# anthropic / claude-sonnet-4-0 (matches claude-sonnet-4-20250514), line 738
SONNET_4 = {"input": Decimal("3"), "cache_read": Decimal("0.3"), "cache_write": Decimal("3.75"),
            "output": Decimal("15")}
# google / gemini-2.5-flash, line 7307
GEMINI_25_FLASH = {"input": Decimal("0.3"), "cache_read": Decimal("0.03"), "output": Decimal("2.5")}
# google / gemini-2.5-pro, line 7437: above 200,000 input tokens every token pays the tier price
GEMINI_25_PRO = {"input": Decimal("1.25"), "cache_read": Decimal("0.125"), "output": Decimal("10")}
GEMINI_25_PRO_OVER_200K = {"input": Decimal("2.5"), "cache_read": Decimal("0.25"), "output": Decimal("15")}
# perplexity / sonar-deep-research, line 27881: reasoning tokens have their own price
SONAR_DEEP_RESEARCH = {"input": Decimal("2"), "output": Decimal("8"), "reasoning": Decimal("3")}
# deepseek / deepseek-chat, line 4958: standard UTC 00:30-16:30, off-peak otherwise
DEEPSEEK_STANDARD = {"input": Decimal("0.27"), "cache_read": Decimal("0.07"), "output": Decimal("1.1")}
DEEPSEEK_OFF_PEAK = {"input": Decimal("0.135"), "cache_read": Decimal("0.035"), "output": Decimal("0.55")}


@pytest.mark.parametrize(("provider", "model", "literal", "when"), [
    ("openai", "gpt-4o-mini", GPT_4O_MINI, None), ("openai", "o4-mini", O4_MINI, None),
    ("openai", "gpt-5", GPT_5, None), ("openai", "o3", O3_BEFORE, datetime(2025, 5, 1, tzinfo=UTC)),
    ("openai", "o3", O3_AFTER, datetime(2025, 7, 1, tzinfo=UTC)), ("anthropic", "claude-sonnet-4-0", SONNET_4, None),
    ("gcp.gemini", "gemini-2.5-flash", GEMINI_25_FLASH, None), ("gcp.gemini", "gemini-2.5-pro", GEMINI_25_PRO, None),
    ("perplexity", "sonar-deep-research", SONAR_DEEP_RESEARCH, None),
    ("deepseek", "deepseek-chat", DEEPSEEK_STANDARD, datetime(2025, 9, 1, 3, tzinfo=UTC)),
    ("deepseek", "deepseek-chat", DEEPSEEK_OFF_PEAK, datetime(2025, 9, 1, 20, tzinfo=UTC)),
])
def test_the_literal_prices_are_still_the_tables(provider: str, model: str, literal: dict[str, Decimal],
                                                 when: datetime | None) -> None:
    """If this fails, a newer genai-prices changed a price: update the literals above from its data.py."""
    price = PriceBook().lookup(provider, model)
    assert price is not None
    rates = price.rates_at(when)
    table = {k: getattr(rates, k) for k in ("input", "cache_read", "cache_write", "output", "reasoning")}
    table = {k: (v.base if isinstance(v, TieredRate) else v) for k, v in table.items() if v is not None}
    assert table == literal, f"genai-prices {package_version()} prices {model} differently"


def expected(p: dict[str, Decimal], input_tokens: int, cached: int, output_tokens: int,
             reasoning: int = 0) -> tuple[Decimal, Decimal, Decimal]:
    """Input includes cached tokens and output includes reasoning tokens (OTel convention)."""
    input_usd = (input_tokens - cached) * p["input"] / M + cached * p.get("cache_read", p["input"]) / M
    if "reasoning" in p:
        output_usd = (output_tokens - reasoning) * p["output"] / M + reasoning * p["reasoning"] / M
    else:
        output_usd = output_tokens * p["output"] / M
    return input_usd, output_usd, input_usd + output_usd


T0 = int(datetime(2025, 9, 1, 12, tzinfo=UTC).timestamp() * 1e9)


def nanos(dt: datetime) -> int:
    return int(dt.timestamp()) * 1_000_000_000


def batch_of(*rows: dict[str, Any]) -> TraceBatch:
    """One span per row; row keys are GenAIColumns fields (plus `start` in unix nanos)."""
    spans = [Span(trace_id=b"\x01" * 16, span_id=(i + 1).to_bytes(8, "big"), name="chat",
                  start_time_unix_nano=row.get("start", T0)) for i, row in enumerate(rows)]
    req = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])])
    batch = TraceBatch.from_bytes(req.SerializeToString())
    cols = GenAIColumns.empty(len(rows))
    for i, row in enumerate(rows):
        for key, value in row.items():
            if key != "start":
                getattr(cols, key)[i] = value
    batch.genai = cols
    return batch


async def started(config: GenAICostConfig | None = None) -> tuple[CostProcessor, TracesSink, TestHost]:
    sink = TracesSink()
    proc = CostProcessor(Settings(ComponentID("genai_cost"), Kind.PROCESSOR, "traces"),
                         config or GenAICostConfig(), sink)
    host = TestHost()
    await proc.start(host)
    return proc, sink, host


async def run(proc: CostProcessor, sink: TracesSink, *rows: dict[str, Any]) -> GenAIColumns:
    await proc.consume(batch_of(*rows))
    cols = sink.batches[-1].genai
    assert cols is not None
    return cols


def costs(cols: GenAIColumns, i: int = 0) -> tuple[Decimal | None, Decimal | None, Decimal | None]:
    return cols.input_cost_usd[i], cols.output_cost_usd[i], cols.total_cost_usd[i]


# --- cached and reasoning tokens, per provider -------------------------------------------------

async def test_openai_gpt_4o_mini_cached_tokens_are_priced_at_the_cache_read_rate() -> None:
    proc, sink, _ = await started()
    cols = await run(proc, sink, {"provider": "openai", "request_model": "gpt-4o-mini",
                                  "response_model": "gpt-4o-mini-2024-07-18", "input_tokens": 1200,
                                  "cached_input_tokens": 1024, "output_tokens": 300})
    assert costs(cols) == expected(GPT_4O_MINI, 1200, 1024, 300)
    # 176 uncached at 0.15, 1024 cached at 0.075, 300 out at 0.6
    assert cols.total_cost_usd[0] == Decimal("0.0000264") + Decimal("0.0000768") + Decimal("0.00018")
    assert cols.cost_source[0] == "computed"


@pytest.mark.parametrize(("model", "prices"), [("o4-mini-2025-04-16", O4_MINI), ("gpt-5-2025-08-07", GPT_5)])
async def test_openai_reasoning_tokens_are_billed_as_output(model: str, prices: dict[str, Decimal]) -> None:
    proc, sink, _ = await started()
    cols = await run(proc, sink, {"provider": "openai", "response_model": model, "input_tokens": 2000,
                                  "cached_input_tokens": 512, "output_tokens": 1500, "reasoning_tokens": 1200})
    assert costs(cols) == expected(prices, 2000, 512, 1500, reasoning=1200)
    assert cols.cost_source[0] == "computed"


async def test_a_separate_reasoning_price_is_used_where_the_table_has_one() -> None:
    proc, sink, _ = await started()
    cols = await run(proc, sink, {"provider": "perplexity", "request_model": "sonar-deep-research",
                                  "input_tokens": 1000, "output_tokens": 1000, "reasoning_tokens": 600})
    assert costs(cols) == expected(SONAR_DEEP_RESEARCH, 1000, 0, 1000, reasoning=600)
    assert cols.output_cost_usd[0] == 400 * Decimal(8) / M + 600 * Decimal(3) / M


async def test_anthropic_claude_sonnet_4_cache_reads() -> None:
    proc, sink, _ = await started()
    cols = await run(proc, sink, {"provider": "anthropic", "request_model": "claude-sonnet-4-20250514",
                                  "response_model": "claude-sonnet-4-20250514", "input_tokens": 5000,
                                  "cached_input_tokens": 4000, "output_tokens": 250})
    assert costs(cols) == expected(SONNET_4, 5000, 4000, 250)
    assert cols.input_cost_usd[0] == Decimal("0.003") + Decimal("0.0012")


def test_cache_writes_are_priced_at_the_cache_write_rate() -> None:
    book = PriceBook()
    price = book.lookup("anthropic", "claude-sonnet-4-20250514")
    assert price is not None
    result = cost(price, 5000, 100, cached_input_tokens=1000, cache_write_tokens=3000)
    assert result is not None
    assert result.input_usd == (1000 * SONNET_4["input"] + 1000 * SONNET_4["cache_read"]
                                + 3000 * SONNET_4["cache_write"]) / M


@pytest.mark.parametrize("provider", ["gcp.gemini", "gcp.vertex_ai"])
async def test_google_gemini_2_5_flash_cached_and_thinking_tokens(provider: str) -> None:
    proc, sink, _ = await started()
    cols = await run(proc, sink, {"provider": provider, "request_model": "gemini-2.5-flash", "input_tokens": 10_000,
                                  "cached_input_tokens": 6000, "output_tokens": 800, "reasoning_tokens": 300})
    assert costs(cols) == expected(GEMINI_25_FLASH, 10_000, 6000, 800, reasoning=300)


async def test_google_gemini_2_5_pro_long_prompts_pay_the_tier_price() -> None:
    proc, sink, _ = await started()
    cols = await run(proc, sink,
                     {"provider": "gcp.gemini", "request_model": "gemini-2.5-pro", "input_tokens": 150_000,
                      "cached_input_tokens": 50_000, "output_tokens": 1000},
                     {"provider": "gcp.gemini", "request_model": "gemini-2.5-pro", "input_tokens": 250_000,
                      "cached_input_tokens": 50_000, "output_tokens": 1000})
    assert costs(cols, 0) == expected(GEMINI_25_PRO, 150_000, 50_000, 1000)
    assert costs(cols, 1) == expected(GEMINI_25_PRO_OVER_200K, 250_000, 50_000, 1000)


async def test_the_price_at_the_span_time_is_used() -> None:
    proc, sink, _ = await started()
    row = {"provider": "openai", "response_model": "o3-2025-04-16", "input_tokens": 1000,
           "cached_input_tokens": 200, "output_tokens": 500}
    cols = await run(proc, sink, {**row, "start": nanos(datetime(2025, 5, 1, tzinfo=UTC))},
                     {**row, "start": nanos(datetime(2025, 7, 1, tzinfo=UTC))})
    assert costs(cols, 0) == expected(O3_BEFORE, 1000, 200, 500)
    assert costs(cols, 1) == expected(O3_AFTER, 1000, 200, 500)
    # deepseek: off-peak hours by time of day
    row = {"provider": "deepseek", "request_model": "deepseek-chat", "input_tokens": 1000, "output_tokens": 100}
    cols = await run(proc, sink, {**row, "start": nanos(datetime(2025, 9, 1, 3, tzinfo=UTC))},
                     {**row, "start": nanos(datetime(2025, 9, 1, 20, tzinfo=UTC))})
    assert costs(cols, 0) == expected(DEEPSEEK_STANDARD, 1000, 0, 100)
    assert costs(cols, 1) == expected(DEEPSEEK_OFF_PEAK, 1000, 0, 100)


# --- resolution ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("provider", "model", "table_provider", "table_model"), [
    ("openai", "gpt-4o-2024-08-06", "openai", "gpt-4o"),
    ("openai", "gpt-4o-mini-2024-07-18", "openai", "gpt-4o-mini"),
    ("anthropic", "claude-sonnet-4-20250514", "anthropic", "claude-sonnet-4-0"),
    ("", "gpt-4o-2024-08-06", "openai", "gpt-4o"),  # provider unknown: the model picks it
    ("", "claude-sonnet-4-20250514", "anthropic", "claude-sonnet-4-0"),
    ("", "gemini-2.5-pro", "google", "gemini-2.5-pro"),
    ("gcp.vertex_ai", "claude-sonnet-4@20250514", "google", "claude-4-sonnet"),
    ("aws.bedrock", "us.anthropic.claude-sonnet-4-20250514-v1:0", "aws",
     "regional.anthropic.claude-sonnet-4-20250514-v1:0"),
    ("azure.ai.openai", "gpt-4o-2024-08-06", "azure", "gpt-4o"),
    ("mistral_ai", "mistral-large-latest", "mistral", "mistral-large"),
    ("x_ai", "grok-4", "x-ai", "grok-4-0709"),
    ("openai", "GPT-4o-Mini-2024-07-18", "openai", "gpt-4o-mini"),
])
def test_dated_and_provider_specific_names_resolve(provider: str, model: str, table_provider: str,
                                                   table_model: str) -> None:
    price = PriceBook().lookup(provider, model)
    assert price is not None
    assert (price.provider, price.model) == (table_provider, table_model)


@pytest.mark.parametrize(("provider", "model"), [
    ("openai", "my-private-llm"),
    ("", "llama3"),  # no provider and no provider claims the name
    ("ibm.watsonx.ai", "ibm/granite-13b-chat-v2"),  # a provider the table does not price
    ("azure.ai.openai", "my-deployment"),
    ("openai", "dall-e-3"),  # priced per image, not per token
])
def test_unknown_models_do_not_resolve(provider: str, model: str) -> None:
    assert PriceBook().lookup(provider, model) is None


async def test_the_request_model_is_used_when_the_response_model_is_unknown() -> None:
    proc, sink, _ = await started()
    cols = await run(proc, sink, {"provider": "openai", "request_model": "gpt-4o-mini",
                                  "response_model": "gpt-4o-mini-proxy-build-7", "input_tokens": 100,
                                  "output_tokens": 10})
    assert costs(cols) == expected(GPT_4O_MINI, 100, 0, 10)


# --- unknown, reported, nothing to price ---------------------------------------------------------

async def test_an_unknown_model_leaves_the_cost_empty_and_is_counted() -> None:
    proc, sink, host = await started()
    # The shipped telemetry declares tracehouse_genai_unpriced_spans{provider,model}.
    row = {"provider": "openai", "request_model": "my-private-llm", "input_tokens": 100, "output_tokens": 20}
    cols = await run(proc, sink, row, row, {"provider": "", "request_model": "llama3", "input_tokens": 5})
    assert [costs(cols, i) for i in range(3)] == [(None, None, None)] * 3
    assert cols.cost_source == ["", "", ""]
    assert proc.unpriced_spans == 3
    assert proc.unpriced_by_model == {("openai", "my-private-llm"): 2, ("", "llama3"): 1}
    metrics = host.telemetry.render().decode()
    assert 'tracehouse_genai_unpriced_spans_total{model="my-private-llm",provider="openai"} 2.0' in metrics


async def test_the_per_model_unpriced_counter_is_bounded() -> None:
    proc, sink, _ = await started()
    rows = [{"provider": "openai", "request_model": f"nope-{i}", "input_tokens": 1}
            for i in range(MAX_UNPRICED_KEYS + 5)]
    await proc.consume(batch_of(*rows))
    assert proc.unpriced_spans == MAX_UNPRICED_KEYS + 5
    assert len(proc.unpriced_by_model) == MAX_UNPRICED_KEYS + 1
    assert proc.unpriced_by_model[(OTHER, OTHER)] == 5


async def test_a_reported_cost_is_kept_untouched() -> None:
    proc, sink, _ = await started()
    cols = await run(
        proc, sink,
        {"provider": "openai", "request_model": "gpt-4o-mini", "input_tokens": 1000, "output_tokens": 100,
         "input_cost_usd": Decimal("0.5"), "output_cost_usd": Decimal("0.25"), "total_cost_usd": Decimal("0.75"),
         "cost_source": "reported"},
        # only a total was reported (e.g. LiteLLM response cost): still kept, nothing filled in
        {"provider": "openai", "request_model": "gpt-4o-mini", "input_tokens": 1000, "output_tokens": 100,
         "total_cost_usd": Decimal("0.0123"), "cost_source": "reported"},
        # reported for a model the table does not know: kept, not counted as unpriced
        {"provider": "openai", "request_model": "my-private-llm", "input_tokens": 1,
         "total_cost_usd": Decimal("1"), "cost_source": "reported"})
    assert costs(cols, 0) == (Decimal("0.5"), Decimal("0.25"), Decimal("0.75"))
    assert costs(cols, 1) == (None, None, Decimal("0.0123"))
    assert costs(cols, 2) == (None, None, Decimal("1"))
    assert cols.cost_source == ["reported"] * 3
    assert proc.unpriced_spans == 0
    assert proc.reported_spans == 3


async def test_spans_without_tokens_or_model_get_no_cost_and_are_not_counted() -> None:
    proc, sink, _ = await started()
    cols = await run(proc, sink,
                     {"provider": "openai", "request_model": "gpt-4o-mini"},  # no tokens
                     {"provider": "openai", "input_tokens": 10, "output_tokens": 5},  # no model
                     {"provider": "openai", "request_model": "my-private-llm"},  # unknown model, no tokens
                     {})  # not a GenAI span
    assert [costs(cols, i) for i in range(4)] == [(None, None, None)] * 4
    assert cols.cost_source == [""] * 4
    assert proc.unpriced_spans == 0
    assert proc.computed_spans == 0


async def test_an_unknown_token_count_stays_unknown() -> None:
    proc, sink, _ = await started()
    cols = await run(proc, sink, {"provider": "openai", "request_model": "text-embedding-3-small",
                                  "input_tokens": 1_000_000})
    # text-embedding-3-small: input 0.02 per million tokens (data.py), no output
    assert costs(cols) == (Decimal("0.02"), None, Decimal("0.02"))


async def test_a_batch_without_genai_columns_passes_untouched() -> None:
    proc, sink, _ = await started()
    batch = batch_of({})
    batch.genai = None
    await proc.consume(batch)
    assert sink.batches == [batch]
    assert batch.genai is None


async def test_disabled_passes_everything_untouched() -> None:
    proc, sink, _ = await started(GenAICostConfig(enabled=False))
    cols = await run(proc, sink, {"provider": "openai", "request_model": "gpt-4o-mini", "input_tokens": 10})
    assert costs(cols) == (None, None, None)


# --- the cache, overrides, version ---------------------------------------------------------------

async def test_prices_are_looked_up_once_per_provider_and_model(monkeypatch: pytest.MonkeyPatch) -> None:
    from genai_prices.types import Provider

    calls: list[str] = []
    original = Provider.find_model

    def counting(self: Provider, model_ref: str, **kwargs: Any) -> Any:
        calls.append(model_ref)
        return original(self, model_ref, **kwargs)

    monkeypatch.setattr(Provider, "find_model", counting)
    proc, sink, _ = await started()
    known = {"provider": "openai", "response_model": "gpt-4o-mini-2024-07-18", "input_tokens": 10}
    unknown = {"provider": "openai", "response_model": "my-private-llm", "input_tokens": 10}
    await proc.consume(batch_of(known, unknown, known, unknown))
    await proc.consume(batch_of(known, unknown))
    assert calls == ["gpt-4o-mini-2024-07-18", "my-private-llm"]  # misses are remembered too
    assert proc.price_book.table_lookups == 2
    assert proc.computed_spans == 3
    assert proc.unpriced_spans == 3


async def test_an_override_wins_over_the_table() -> None:
    config = GenAICostConfig.model_validate({"overrides": [
        {"provider": "openai", "model": "gpt-4o-mini", "input_per_mtok": "1", "output_per_mtok": 2,
         "cached_input_per_mtok": 0.5},
        {"model": "acme-ft-7b", "input_per_mtok": 0.2, "output_per_mtok": 0.4},  # any provider
    ]})
    proc, sink, _ = await started(config)
    cols = await run(proc, sink,
                     {"provider": "openai", "request_model": "gpt-4o-mini", "input_tokens": 1000,
                      "cached_input_tokens": 400, "output_tokens": 100},
                     {"provider": "openai", "request_model": "gpt-4o", "input_tokens": 1000},
                     {"provider": "", "request_model": "ACME-ft-7b", "input_tokens": 1000, "output_tokens": 500})
    own = {"input": Decimal(1), "cache_read": Decimal("0.5"), "output": Decimal(2)}
    assert costs(cols, 0) == expected(own, 1000, 400, 100)
    assert cols.input_cost_usd[1] == 1000 * Decimal("2.5") / M  # gpt-4o: from the table
    assert costs(cols, 2) == expected({"input": Decimal("0.2"), "output": Decimal("0.4")}, 1000, 0, 500)
    assert cols.cost_source == ["computed"] * 3
    assert proc.price_table_version.startswith(f"genai-prices=={package_version()}+overrides.")


@pytest.mark.parametrize("overrides", [
    [{"model": "x", "input_per_mtok": -1, "output_per_mtok": 1}],
    [{"model": " ", "input_per_mtok": 1, "output_per_mtok": 1}],
    [{"model": "x", "input_per_mtok": 1}],
    [{"model": "x", "input_per_mtok": 1, "output_per_mtok": 1, "typo_per_mtok": 1}],
    [{"model": "x", "input_per_mtok": "nan", "output_per_mtok": 1}],
    [{"model": "x", "input_per_mtok": 1, "output_per_mtok": 1}, {"model": "X", "input_per_mtok": 2,
                                                                 "output_per_mtok": 2}],
])
def test_bad_overrides_are_refused(overrides: list[dict[str, Any]]) -> None:
    with pytest.raises(ValidationError):
        GenAICostConfig.model_validate({"overrides": overrides})


async def test_the_price_table_version_is_exposed() -> None:
    proc, _, _ = await started()
    assert proc.price_table_version == f"genai-prices=={package_version()}"
    assert package_version() >= "0.2"


async def test_the_factory_builds_the_processor() -> None:
    proc = factory.create(Settings(ComponentID("genai_cost"), Kind.PROCESSOR, "traces"), GenAICostConfig(),
                          TracesSink())
    assert isinstance(proc, CostProcessor)
    await proc.shutdown()
    await proc.shutdown()


def test_the_readme_documents_every_key() -> None:
    text = (Path(__file__).resolve().parents[2] / "processors/genai_cost/README.md").read_text()
    from tracehouse.processors.genai_cost.config import PriceOverride

    keys = [*GenAICostConfig.model_fields, *(f"overrides.{k}" for k in PriceOverride.model_fields)]
    for key in keys:
        assert f"`{key}`" in text, key


async def test_pricing_never_touches_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket
    import threading

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("genai_cost tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    proc, sink, _ = await started()
    cols = await run(proc, sink, {"provider": "openai", "request_model": "gpt-4o-mini", "input_tokens": 10},
                     {"provider": "", "request_model": "some-new-model", "input_tokens": 10})
    assert cols.cost_source == ["computed", ""]
    assert not [t for t in threading.enumerate() if t.name.startswith("genai_prices")]  # no UpdatePrices thread


# --- agreement with the package's own calculator -------------------------------------------------

@pytest.mark.parametrize(("provider", "table_provider", "model", "tokens", "when"), [
    ("openai", "openai", "gpt-4o-mini-2024-07-18", (1200, 1024, 300, 0), None),
    ("openai", "openai", "o3-2025-04-16", (5000, 1000, 3000, 2500), datetime(2025, 5, 1, tzinfo=UTC)),
    ("openai", "openai", "gpt-5-2025-08-07", (5000, 1000, 3000, 2500), None),
    ("anthropic", "anthropic", "claude-sonnet-4-20250514", (5000, 4000, 250, 0), None),
    ("gcp.gemini", "google", "gemini-2.5-pro", (250_000, 50_000, 1000, 200), None),
    ("gcp.gemini", "google", "gemini-2.5-flash", (10_000, 6000, 800, 300), None),
    ("perplexity", "perplexity", "sonar-deep-research", (1000, 0, 1000, 600), None),
    ("deepseek", "deepseek", "deepseek-chat", (1000, 500, 100, 0), datetime(2025, 9, 1, 20, tzinfo=UTC)),
    ("aws.bedrock", "aws", "us.anthropic.claude-sonnet-4-20250514-v1:0", (3000, 1000, 100, 0), None),
])
def test_costs_agree_with_genai_prices_calc_price(provider: str, table_provider: str, model: str,
                                                  tokens: tuple[int, int, int, int], when: datetime | None) -> None:
    from genai_prices import Usage, calc_price

    input_tokens, cached, output_tokens, reasoning = tokens
    theirs = calc_price(Usage(input_tokens=input_tokens, cache_read_tokens=cached, output_tokens=output_tokens,
                              output_reasoning_tokens=reasoning), model, provider_id=table_provider,
                        genai_request_timestamp=when)
    price = PriceBook().lookup(provider, model)
    assert price is not None
    ours = cost(price, input_tokens, output_tokens, cached, reasoning, at=when)
    assert ours is not None
    assert (ours.input_usd, ours.output_usd) == (theirs.input_price, theirs.output_price)


# --- speed (measured and reported, not asserted) -------------------------------------------------

async def test_throughput_with_a_warm_cache(capsys: pytest.CaptureFixture[str],
                                            record_property: Any) -> None:
    proc, _, _ = await started()
    models = [("openai", "gpt-4o-mini-2024-07-18"), ("anthropic", "claude-sonnet-4-20250514"),
              ("gcp.gemini", "gemini-2.5-flash"), ("openai", "o3-2025-04-16"), ("openai", "my-private-llm")]
    n = 50_000
    rows = [{"provider": models[i % 5][0], "response_model": models[i % 5][1], "input_tokens": 1000 + i,
             "cached_input_tokens": 200, "output_tokens": 300, "reasoning_tokens": 50} for i in range(n)]
    batch = batch_of(*rows)
    cols = batch.genai
    assert cols is not None
    proc.price(batch, cols)  # warm the cache
    best = float("inf")
    for _ in range(3):
        cols.cost_source = [""] * n
        t = time.perf_counter()
        proc.price(batch, cols)
        best = min(best, time.perf_counter() - t)
    rate = n / best
    record_property("genai_cost_spans_per_second", round(rate))
    with capsys.disabled():
        print(f"\ngenai_cost: {rate:,.0f} spans/s with a warm cache ({n} spans, 1 in 5 time-dependent, "
              f"1 in 5 unpriced)")
