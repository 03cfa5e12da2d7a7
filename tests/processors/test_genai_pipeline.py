"""normalize -> cost on every real fixture; costs checked against prices written down here.

Prices (USD per million tokens) are OpenAI's published list prices, written independently
of the price table the processor uses:
  gpt-4o-mini(-2024-07-18): input 0.15, cached input 0.075, output 0.60
  gpt-4o:                   input 2.50, cached input 1.25,  output 10.00
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from genai_helpers import enrich as enrich_batch
from otlp_fixtures import load_batch

from tracehouse.core.pdata import TraceBatch
from tracehouse.core.testing import TestHost

PER_MTOK = {"gpt-4o-mini": (Decimal("0.15"), Decimal("0.075"), Decimal("0.60")),
            "gpt-4o": (Decimal("2.50"), Decimal("1.25"), Decimal("10.00"))}
M = Decimal(1_000_000)
RUNS: list[TestHost] = []  # the host of each pipeline run, to read its metrics


def expected(model: str, inp: int, cached: int, out: int) -> tuple[Decimal, Decimal, Decimal]:
    price_in, price_cached, price_out = PER_MTOK[model]
    input_usd = ((inp - cached) * price_in + cached * price_cached) / M
    output_usd = out * price_out / M
    return input_usd, output_usd, input_usd + output_usd


async def run_pipeline(batch: TraceBatch) -> TraceBatch:
    """genai_normalize -> genai_tokens -> genai_cost, as the all-in-one config wires them."""
    host = TestHost()
    RUNS.append(host)
    return await enrich_batch(batch, host)


async def enrich(relative: str) -> TraceBatch:
    return await run_pipeline(load_batch(relative))


@pytest.mark.parametrize(("relative", "cached"), [
    ("otel-genai-openai-v2/http-protobuf.pb", 0),  # no cached count recorded: all input at the full rate
    ("otel-genai-openai-v2/grpc.pb", 0),
    ("openinference/http-protobuf.pb", 8),
    ("mlflow/http-protobuf.pb", 8),
    ("otel-js-vercel-ai-style/http-json.otlp.json", 0),
])
async def test_fixture_costs_match_independently_computed_prices(relative: str, cached: int) -> None:
    batch = await enrich(relative)
    cols = batch.genai
    assert cols is not None
    priced = 0
    for i in range(cols.size):
        model = "gpt-4o-mini" if cols.request_model[i] == "gpt-4o-mini" else cols.request_model[i]
        if cols.input_tokens[i] is None:
            # The failed call (and wrapper spans) have no usage: no cost, not "unpriced".
            assert (cols.total_cost_usd[i], cols.cost_source[i], cols.price_version[i]) == (None, "", "")
            continue
        got = (cols.input_cost_usd[i], cols.output_cost_usd[i], cols.total_cost_usd[i])
        assert got == expected(model, 42, cached, 17), (relative, i, cols.response_model[i])
        assert cols.cost_source[i] == "computed"
        assert cols.price_version[i].startswith("genai-prices==")
        assert cols.tokens_estimated[i] is False, "reported usage is never re-estimated"
        priced += 1
    assert priced >= 1


async def test_missing_usage_is_estimated_then_priced() -> None:
    import json

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

    from tracehouse.core.pdata import key_values

    attrs = {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
        "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text",
                                                                          "content": "Is it raining in Paris?"}]}]),
        "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [{"type": "text",
                                                                               "content": "Yes, take an umbrella."}]}]),
    }
    span = Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="chat gpt-4o", attributes=key_values(attrs))
    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[span])])])
    cols = (await run_pipeline(TraceBatch.from_request(request))).genai
    assert cols is not None and cols.tokens_estimated == [True]
    inp, out = cols.input_tokens[0], cols.output_tokens[0]
    assert inp is not None and out is not None and inp > 0 and out > 0
    assert cols.total_tokens[0] == inp + out
    assert (cols.input_cost_usd[0], cols.output_cost_usd[0], cols.total_cost_usd[0]) == expected("gpt-4o", inp, 0,
                                                                                                   out)
    assert cols.cost_source[0] == "computed"
    metrics = RUNS[-1].telemetry.render().decode()
    assert 'tracehouse_genai_estimated_spans_total{direction="input"} 1.0' in metrics
    assert f'tracehouse_genai_estimated_tokens_total{{direction="output"}} {float(out)}' in metrics

