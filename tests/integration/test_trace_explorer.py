"""The trace explorer at `/`, in a real browser (Debian's chromium, headless, via Playwright)
against a real all-in-one fed by the OpenTelemetry SDK and the captured client payloads.

Screenshots of each page go to a temporary folder; with TRACEHOUSE_UPDATE_SCREENSHOTS=1 they
are written to docs/ui/ (where the README shows them).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from allinone import REPO, AllInOne
from genai_helpers import batch_of
from genai_helpers import span as make_span
from otlp_fixtures import FIXTURES, fixture_payloads, load_batch
from tracehouse.core.pdata import TraceBatch

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium")
# As the machine's probe runs it: no sandbox as root, and no background calls to Google's
# hosts, which a closed network refuses by the dozen.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PROMPT = "weather-answer"
SESSION = "conv-1"
UNPRICED_MODEL = "in-house-llm-7b"
TEMPLATE_V1 = "You are a weather assistant.\nAnswer briefly: {question}\nUse metric units."
TEMPLATE_V2 = "You are a weather assistant.\nAnswer in one sentence: {question}\nUse metric units."
AGENT_QUESTION = "Will it rain in Lyon this afternoon?"
AGENT_ANSWER = "Light rain from 3 pm, about 2 mm."
EVAL_RELEVANCE = 0.8
XSS_NAME = '<img src=x onerror="window.__xss = 1">agent'
XSS_ATTR = "<script>window.__xss = 2</script>"
XSS_MESSAGE = '<script>window.__xss = 3</script><b onmouseover="window.__xss = 4">hi</b>'


BIG_TRACE, BIG_CHILDREN, BIG_GRANDCHILDREN = 0xB16, 20, 99


def _big_trace() -> TraceBatch:
    """2,001 spans: a root, 20 children, 99 grandchildren under each."""
    t0 = time.time_ns() - 60 * 10**9
    spans = [make_span(BIG_TRACE, 1, t0, {}, name="big root", duration_ns=10**9)]
    for c in range(BIG_CHILDREN):
        child = 2 + c * (BIG_GRANDCHILDREN + 1)
        spans.append(make_span(BIG_TRACE, child, t0 + c * 10**7, {}, parent=1, name=f"step {c}", duration_ns=10**7))
        spans += [make_span(BIG_TRACE, child + 1 + g, t0 + c * 10**7 + g * 10**4, {}, parent=child,
                       name=f"step {c}.{g}", duration_ns=10**4) for g in range(BIG_GRANDCHILDREN)]
    return batch_of(spans, service="big-app")


def _send_sdk_traces(otlp_http: str) -> dict[str, str]:
    """An agent trace (an LLM call, a failing tool) and a trace whose name and attributes are
    markup, through the OTel SDK's OTLP/HTTP exporter. Returns name -> trace id."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import Status, StatusCode

    provider = TracerProvider(resource=Resource.create({"service.name": "explorer-app"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{otlp_http}/v1/traces")))
    tracer = provider.get_tracer("explorer-test")
    ids: dict[str, str] = {}
    with tracer.start_as_current_span("invoke_agent weather") as root:
        root.set_attribute("gen_ai.operation.name", "invoke_agent")
        ids["agent"] = format(root.get_span_context().trace_id, "032x")
        with tracer.start_as_current_span("chat gpt-4o") as chat:
            chat.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                                 "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 1200,
                                 "gen_ai.usage.output_tokens": 300,
                                 "traceloop.prompt.key": PROMPT, "traceloop.prompt.template": TEMPLATE_V1,
                                 "gen_ai.input.messages": json.dumps(
                                     [{"role": "user", "parts": [{"type": "text", "content": AGENT_QUESTION}]}]),
                                 "gen_ai.output.messages": json.dumps(
                                     [{"role": "assistant", "finish_reason": "stop",
                                       "parts": [{"type": "text", "content": AGENT_ANSWER}]}])})
            # An evaluator's verdict on this call, as the GenAI semantic conventions name it
            # (no SDK emits evaluation events: the SDK's add_event with the conventions' names).
            chat.add_event("gen_ai.evaluation.result", {
                "gen_ai.evaluation.name": "relevance", "gen_ai.evaluation.score.value": EVAL_RELEVANCE,
                "gen_ai.evaluation.score.label": "relevant", "gen_ai.evaluation.explanation": "answers the question"})
            time.sleep(0.05)  # the trace's slowest model call
        with tracer.start_as_current_span("execute_tool get_weather") as tool:
            tool.set_attribute("gen_ai.operation.name", "execute_tool")
            tool.set_status(Status(StatusCode.ERROR, "weather service down"))
        with tracer.start_as_current_span("chat gpt-4o-mini") as chat:
            chat.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                                 "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 80,
                                 "gen_ai.usage.output_tokens": 20,
                                 "traceloop.prompt.key": PROMPT, "traceloop.prompt.template": TEMPLATE_V2})
    for turn, (question, tokens) in enumerate([("Weather in Paris?", 40), ("And tomorrow?", 60)]):
        with tracer.start_as_current_span(f"chat turn {turn + 1}") as chat:
            chat.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                                 "gen_ai.request.model": "gpt-4.1-mini", "gen_ai.usage.input_tokens": tokens,
                                 "gen_ai.usage.output_tokens": 10, "session.id": SESSION, "user.id": "ana",
                                 "gen_ai.input.messages": json.dumps(
                                     [{"role": "user", "parts": [{"type": "text", "content": question}]}])})
            ids[f"turn{turn + 1}"] = format(chat.get_span_context().trace_id, "032x")
    with tracer.start_as_current_span("chat in-house") as chat:
        chat.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.provider.name": "acme",
                             "gen_ai.request.model": UNPRICED_MODEL, "gen_ai.usage.input_tokens": 5,
                             "gen_ai.usage.output_tokens": 5})
    with tracer.start_as_current_span(XSS_NAME) as hostile:
        hostile.set_attribute("user.input", XSS_ATTR)
        hostile.set_attribute("gen_ai.input.messages", json.dumps(
            [{"role": "user", "parts": [{"type": "text", "content": XSS_MESSAGE}]}]))
        ids["xss"] = format(hostile.get_span_context().trace_id, "032x")
    provider.shutdown()
    return ids


def _a_year_earlier(signal: str, raw: bytes) -> bytes:
    """A captured OTLP traces or logs request with every time moved 365 days back."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    year = 365 * 86_400 * 10**9
    if signal == "traces":
        spans = ExportTraceServiceRequest.FromString(raw)
        for rs in spans.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    span.start_time_unix_nano -= year
                    span.end_time_unix_nano -= year
                    for event in span.events:
                        event.time_unix_nano -= year
        return spans.SerializeToString()
    logs = ExportLogsServiceRequest.FromString(raw)
    for rl in logs.resource_logs:
        for sl in rl.scope_logs:
            for record in sl.log_records:
                record.time_unix_nano = max(0, record.time_unix_nano - year) if record.time_unix_nano else 0
                record.observed_time_unix_nano -= year
    return logs.SerializeToString()


@pytest.fixture(scope="module")
def explorer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AllInOne, dict[str, str]]]:
    aio = AllInOne(tmp_path_factory.mktemp("explorer")).start()
    try:
        ids = _send_sdk_traces(aio.otlp_http)
        with httpx.Client(timeout=30) as http:
            for path in fixture_payloads():
                body = load_batch(str(path.relative_to(FIXTURES))).to_bytes()
                response = http.post(f"{aio.otlp_http}/v1/traces", content=body,
                                     headers={"content-type": "application/x-protobuf"})
                assert response.status_code == 200, response.text
            big = _big_trace()
            response = http.post(f"{aio.otlp_http}/v1/traces", content=big.to_bytes(),
                                 headers={"content-type": "application/x-protobuf"})
            assert response.status_code == 200, response.text
        ids["big"] = BIG_TRACE.to_bytes(16, "big").hex()
        # The official OpenAI instrumentation's capture: the chat span without content, its
        # messages as a log event (tests/fixtures/genai-events/current), moved a year back so
        # that no list or total of the other tests sees it (it is opened by its id).
        events = FIXTURES.parent / "genai-events" / "current"
        with httpx.Client(timeout=30) as http:
            for signal in ("logs", "traces"):
                body = _a_year_earlier(signal, (events / f"{signal}.pb").read_bytes())
                response = http.post(f"{aio.otlp_http}/v1/{signal}", content=body,
                                     headers={"content-type": "application/x-protobuf"})
                assert response.status_code == 200, response.text
        ids["events"] = json.loads((events / "traces.meta.json").read_text())["trace_id_printed"]
        yield aio, ids
    finally:
        aio.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH (`make test-tools` installs Debian's package: deploy/scripts/test-tools.sh)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 860}, timezone_id="UTC")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"script errors in the page: {errors}"


def _screenshot(page: Any, name: str, tmp_path: Path) -> None:
    target = REPO / "docs" / "ui" if os.environ.get("TRACEHOUSE_UPDATE_SCREENSHOTS") == "1" else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target / f"{name}.png"), full_page=True)


def _api(aio: AllInOne, path: str) -> Any:
    response = httpx.get(f"{aio.query}{path}", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def _usd(value: float) -> str:
    """A cost as the page prints it: JavaScript's shortest decimal, no exponent."""
    return f"${Decimal(repr(value)):f}"


def _row_from_nav(page: Any, aio: AllInOne, section: str, row: str) -> list[str]:
    """Open the start page, follow the navigation to `section`, and read one row's cells."""
    page.goto(f"{aio.query}/")
    page.click(f'nav a[data-nav="{section}"]')
    page.wait_for_selector(row)
    return list(page.locator(f"{row} td").all_inner_texts())


def _listed(page: Any) -> list[str]:
    page.wait_for_selector("table.traces tbody tr, .empty, .error")
    return page.eval_on_selector_all("table.traces tbody tr", "rows => rows.map(r => r.dataset.traceId)")


def test_the_list_shows_traces_newest_first_with_the_stored_tokens_and_cost(
        explorer: tuple[AllInOne, dict[str, str]], page: Any, tmp_path: Path) -> None:
    aio, ids = explorer
    page.goto(f"{aio.query}/")
    api = _api(aio, "/api/v1/traces?limit=50")["traces"]
    assert _listed(page) == [t["trace_id"] for t in api], "the rows are the API's, in its order"
    row = page.locator(f'tr[data-trace-id="{ids["agent"]}"]')
    agent = next(t for t in api if t["trace_id"] == ids["agent"])
    cells = row.locator("td").all_inner_texts()
    assert cells[1] == "invoke_agent weather" and cells[2] == "explorer-app"
    assert cells[3] == "gpt-4o, gpt-4o-mini" and cells[4] == "error"
    assert cells[6:9] == ["4", "1,280", "320"]
    assert agent["total_cost_usd"] and cells[9].startswith("$")
    _screenshot(page, "traces", tmp_path)


def test_a_filter_changes_the_rows_as_the_api_says_and_the_url_holds_it(
        explorer: tuple[AllInOne, dict[str, str]], page: Any) -> None:
    aio, ids = explorer
    page.goto(f"{aio.query}/")
    everything = _listed(page)
    page.fill('input[name="model"]', "gpt-4o-mini")
    page.click('form.filters button[type="submit"]')
    page.wait_for_url("**/?*model=gpt-4o-mini*")
    filtered = _api(aio, "/api/v1/traces?model=gpt-4o-mini&limit=50")["traces"]
    page.wait_for_function("n => document.querySelectorAll('table.traces tbody tr').length === n", arg=len(filtered))
    assert _listed(page) == [t["trace_id"] for t in filtered] == [ids["agent"]]

    page.reload()  # a deep link reproduces the page
    assert _listed(page) == [ids["agent"]]
    assert page.input_value('input[name="model"]') == "gpt-4o-mini"
    page.go_back()  # and the back button returns to the unfiltered list
    page.wait_for_function("n => document.querySelectorAll('table.traces tbody tr').length === n", arg=len(everything))
    assert _listed(page) == everything


def test_upper_bounds_on_tokens_and_duration_filter_the_rows_as_the_api_says(
        explorer: tuple[AllInOne, dict[str, str]], page: Any) -> None:
    aio, ids = explorer
    page.goto(f"{aio.query}/")
    everything = _listed(page)
    page.fill('input[name="max_tokens"]', "1000")  # the agent trace used 1,600
    page.fill('input[name="max_duration_ms"]', "60000")
    page.click('form.filters button[type="submit"]')
    page.wait_for_url("**/?*max_tokens=1000*")
    bounded = _api(aio, "/api/v1/traces?max_tokens=1000&max_duration_ms=60000&limit=50")["traces"]
    page.wait_for_function("n => document.querySelectorAll('table.traces tbody tr').length === n", arg=len(bounded))
    assert _listed(page) == [t["trace_id"] for t in bounded]
    assert ids["agent"] in everything and ids["agent"] not in _listed(page) and bounded
    assert page.input_value('input[name="max_duration_ms"]') == "60000"


def test_sorting_by_cost_orders_the_rows_as_the_api_and_totals_cover_the_filtered_set(
        explorer: tuple[AllInOne, dict[str, str]], page: Any) -> None:
    aio, _ = explorer
    page.goto(f"{aio.query}/")
    _listed(page)
    page.select_option('select[name="sort"]', "cost")
    page.click('form.filters button[type="submit"]')
    page.wait_for_url("**/?*sort=cost*")
    api = _api(aio, "/api/v1/traces?sort=cost&limit=50")
    page.wait_for_function("first => document.querySelector('table.traces tbody tr')?.dataset.traceId === first",
                           arg=api["traces"][0]["trace_id"])
    assert _listed(page) == [t["trace_id"] for t in api["traces"]]
    totals = api["totals"]
    shown = page.inner_text('[data-testid="totals"]')
    assert shown.startswith(f"{totals['traces']:,} traces · {totals['input_tokens']:,} input / "
                            f"{totals['output_tokens']:,} output tokens"), shown


def test_estimated_totals_are_shown_as_about(explorer: tuple[AllInOne, dict[str, str]], page: Any) -> None:
    # Over a range of more traces than `exact_totals_max_traces` the API estimates the totals
    # and says so; the page must not show an estimate as a count. The real response, marked.
    aio, _ = explorer

    def estimated(route: Any) -> None:
        body = route.fetch().json()
        assert body["totals"]["estimated"] is False  # this small store answers exactly
        body["totals"]["estimated"] = True
        route.fulfill(json=body)

    page.route("**/api/v1/traces?*", estimated)
    page.goto(f"{aio.query}/")
    _listed(page)
    totals = _api(aio, "/api/v1/traces?limit=50")["totals"]
    shown = page.inner_text('[data-testid="totals"]')
    assert shown.startswith(f"about {totals['traces']:,} traces · about {totals['input_tokens']:,} input"), shown
    assert "estimated" in (page.get_attribute('[data-testid="totals"]', "title") or "")


def test_sorting_ascending_with_an_attribute_operator_orders_the_rows_as_the_api_and_the_url_holds_it(
        explorer: tuple[AllInOne, dict[str, str]], page: Any) -> None:
    aio, ids = explorer
    page.goto(f"{aio.query}/")
    _listed(page)
    page.select_option('select[name="sort"]', "tokens")
    page.select_option('select[name="order"]', "asc")
    page.fill('input[name="attr_key"]', "gen_ai.usage.input_tokens")
    page.select_option('select[name="attr_op"]', "gt")
    page.fill('input[name="attr_value"]', "50")
    page.click('form.filters button[type="submit"]')
    page.wait_for_url("**/?*order=asc*")
    assert "attr.gen_ai.usage.input_tokens=gt%3A50" in page.url and "sort=tokens" in page.url
    api = _api(aio, "/api/v1/traces?sort=tokens&order=asc&attr.gen_ai.usage.input_tokens=gt:50&limit=50")["traces"]
    page.wait_for_function("first => document.querySelector('table.traces tbody tr')?.dataset.traceId === first",
                           arg=api[0]["trace_id"])
    listed = _listed(page)
    assert listed == [t["trace_id"] for t in api]
    # numbers compare as numbers: 1,200 and 60 input tokens pass, 40 and 5 do not
    assert ids["agent"] in listed and ids["turn2"] in listed and ids["turn1"] not in listed
    tokens = [t["total_tokens"] if t["total_tokens"] is not None else (t["input_tokens"] or 0) + (t["output_tokens"] or 0)
              for t in api]
    assert tokens == sorted(tokens) and tokens[0] < tokens[-1], "fewest tokens first"

    page.reload()  # the URL holds the sort, the order and the filter
    assert _listed(page) == listed
    assert page.input_value('select[name="order"]') == "asc"
    assert page.input_value('input[name="attr_key"] >> nth=0') == "gen_ai.usage.input_tokens"
    assert page.input_value('select[name="attr_op"] >> nth=0') == "gt"
    assert page.input_value('input[name="attr_value"] >> nth=0') == "50"


def test_clicking_a_trace_opens_its_waterfall_in_parent_order(
        explorer: tuple[AllInOne, dict[str, str]], page: Any, tmp_path: Path) -> None:
    aio, ids = explorer
    page.goto(f"{aio.query}/")
    page.click(f'tr[data-trace-id="{ids["agent"]}"]')
    page.wait_for_selector(".span-row")
    assert f"trace={ids['agent']}" in page.url
    spans = _api(aio, f"/api/v1/traces/{ids['agent']}")["spans"]
    by_name = {s["name"]: s["span_id"] for s in spans}
    order = page.eval_on_selector_all(".span-row", "rows => rows.map(r => [r.dataset.spanId, r.ariaLevel])")
    assert order == [[by_name["invoke_agent weather"], "1"], [by_name["chat gpt-4o"], "2"],
                     [by_name["execute_tool get_weather"], "2"], [by_name["chat gpt-4o-mini"], "2"]]
    failing = page.locator(f'.span-row[data-span-id="{by_name["execute_tool get_weather"]}"]')
    assert "✖" in failing.inner_text() and failing.locator(".bar.error").count() == 1
    summary = page.inner_text('[data-testid="summary"]')
    assert "1,280 / 320" in summary and "gpt-4o, gpt-4o-mini" in summary


def test_the_span_panel_shows_the_exact_tokens_and_cost_stored(
        explorer: tuple[AllInOne, dict[str, str]], page: Any, tmp_path: Path) -> None:
    aio, ids = explorer
    spans = _api(aio, f"/api/v1/traces/{ids['agent']}")["spans"]
    chat = next(s for s in spans if s["name"] == "chat gpt-4o")
    page.goto(f"{aio.query}/?trace={ids['agent']}")
    page.click(f'.span-row[data-span-id="{chat["span_id"]}"]')
    page.wait_for_selector('aside dd[data-key="input tokens"]')
    assert f"span={chat['span_id']}" in page.url

    def shown(key: str) -> str:
        return page.inner_text(f'aside dd[data-key="{key}"]')

    assert shown("input tokens") == "1,200" and shown("output tokens") == "300"
    assert shown("tokens") == "reported" and shown("request model") == "gpt-4o"
    assert shown("cost") == _usd(chat["genai"]["total_cost_usd"])
    assert shown("cost source") == f"computed ({chat['genai']['price_version']})"
    _screenshot(page, "trace", tmp_path)


def test_every_captured_library_s_llm_spans_show_their_stored_tokens(
        explorer: tuple[AllInOne, dict[str, str]], page: Any) -> None:
    aio, _ = explorer
    for path in fixture_payloads():
        batch = load_batch(str(path.relative_to(FIXTURES)))
        trace_id = next(s.trace_id.hex() for _, _, s in batch.iter_spans())
        spans = _api(aio, f"/api/v1/traces/{trace_id}")["spans"]
        llm = [s for s in spans if s["genai"]["input_tokens"] is not None]
        if not llm:
            continue
        span = llm[0]
        page.goto(f"{aio.query}/?trace={trace_id}&span={span['span_id']}")
        page.wait_for_selector('aside dd[data-key="input tokens"]')
        assert page.inner_text('aside dd[data-key="input tokens"]') == f"{span['genai']['input_tokens']:,}", path
        if span["genai"]["total_cost_usd"] is not None:
            assert page.inner_text('aside dd[data-key="cost"]') == _usd(span["genai"]["total_cost_usd"]), path


def test_the_chat_view_shows_every_message_of_each_captured_library(
        explorer: tuple[AllInOne, dict[str, str]], page: Any, tmp_path: Path) -> None:
    aio, _ = explorer
    shown_roles: set[str] = set()
    for path in fixture_payloads():
        batch = load_batch(str(path.relative_to(FIXTURES)))
        for trace_id in dict.fromkeys(s.trace_id.hex() for _, _, s in batch.iter_spans()):
            for span in _api(aio, f"/api/v1/traces/{trace_id}")["spans"]:
                for title, messages in (("Input messages", span["input_messages"]),
                                        ("Output messages", span["output_messages"])):
                    if not messages:
                        continue
                    page.goto(f"{aio.query}/?trace={trace_id}&span={span['span_id']}")
                    chat = page.locator(f'[data-chat="{title}"] .msg')
                    chat.first.wait_for()
                    assert chat.evaluate_all("ms => ms.map(m => m.dataset.role)") == [m["role"] for m in messages]
                    for i, message in enumerate(messages):
                        if message["content"] and len(message["content"]) <= 1200:
                            assert chat.nth(i).locator(".content").inner_text() == message["content"], path
                        for call in message["tool_calls"]:
                            assert call["name"] in chat.nth(i).inner_text()
                    shown_roles |= {m["role"] for m in messages}
    assert {"system", "user", "assistant", "tool"} <= shown_roles
    _screenshot(page, "chat", tmp_path)


def test_the_span_panel_shows_messages_and_the_genai_events_that_arrived_as_logs(
        explorer: tuple[AllInOne, dict[str, str]], page: Any) -> None:
    aio, ids = explorer
    chat = next(s for s in _api(aio, f"/api/v1/traces/{ids['events']}")["spans"] if s["name"] == "chat gpt-4o-mini")
    page.goto(f"{aio.query}/?trace={ids['events']}&span={chat['span_id']}")
    messages = page.locator('[data-chat="Input messages"] .msg')
    messages.first.wait_for()
    assert messages.evaluate_all("ms => ms.map(m => m.dataset.role)") == ["system", "user"]
    assert page.locator('[data-chat="Output messages"] .msg .content').inner_text() == "A deterministic answer."
    assert page.locator("aside h3.log-event").all_text_contents() == [
        "GenAI event (log): gen_ai.client.inference.operation.details"]
    assert "What is the capital of France?" in page.inner_text('aside dd[data-key="gen_ai.input.messages"]')


def test_the_prompts_page_lists_versions_with_usage_and_diffs_two_versions(
        explorer: tuple[AllInOne, dict[str, str]], page: Any, tmp_path: Path) -> None:
    aio, _ = explorer
    cells = _row_from_nav(page, aio, "prompts", f'tr[data-prompt="{PROMPT}"]')
    listed = {p["name"]: p for p in _api(aio, "/api/v1/prompts")["prompts"]}
    assert cells[:3] == [PROMPT, "2", "2"] and cells[4] == f"{listed[PROMPT]['usage']['requests']:,}"
    page.click(f'tr[data-prompt="{PROMPT}"]')
    page.wait_for_selector('[data-testid="diff"]')
    assert f"prompt={PROMPT}" in page.url
    detail = _api(aio, f"/api/v1/prompts/{PROMPT}")
    assert page.eval_on_selector_all("tr[data-version]", "rs => rs.map(r => r.dataset.version)") == \
        [v["version"] for v in detail["versions"]] == ["1", "2"]
    assert page.inner_text('pre.template[data-version="1"]') == TEMPLATE_V1
    diff = page.eval_on_selector_all('[data-testid="diff"] .line', "ls => ls.map(l => [l.dataset.kind, l.textContent])")
    assert [d for d in diff if d[0] != "same"] == [["removed", "− Answer briefly: {question}"],
                                                    ["added", "+ Answer in one sentence: {question}"]]
    _screenshot(page, "prompts", tmp_path)
    page.click("text=Traces that used this prompt")
    page.wait_for_url(f"**/?*prompt={PROMPT}*")
    assert _listed(page) == [t["trace_id"] for t in _api(aio, f"/api/v1/traces?prompt={PROMPT}&limit=50")["traces"]]


def test_the_sessions_page_groups_turns_with_their_tokens_and_cost(
        explorer: tuple[AllInOne, dict[str, str]], page: Any, tmp_path: Path) -> None:
    aio, ids = explorer
    cells = _row_from_nav(page, aio, "sessions", f'tr[data-session="{SESSION}"]')
    assert cells[1:3] == ["ana", "2"] and cells[5:7] == ["100", "20"]
    page.click(f'tr[data-session="{SESSION}"]')
    page.wait_for_url(f"**/?*session={SESSION}*")
    turns = _api(aio, f"/api/v1/traces?session={SESSION}&limit=50")
    assert sorted(_listed(page)) == sorted([ids["turn1"], ids["turn2"]]) == \
        sorted(t["trace_id"] for t in turns["traces"])
    assert page.inner_text('[data-testid="totals"]').startswith("2 turns · 100 input / 20 output tokens")
    _screenshot(page, "sessions", tmp_path)


def test_the_overview_shows_usage_by_model_from_the_rollups_and_lists_unpriced_models(
        explorer: tuple[AllInOne, dict[str, str]], page: Any, tmp_path: Path) -> None:
    aio, _ = explorer
    page.goto(f"{aio.query}/")
    page.click('nav a[data-nav="overview"]')
    page.wait_for_selector('[data-testid="overview-totals"]')
    end = time.time()
    api = _api(aio, f"/api/v1/metrics/genai?group_by=model&start={end - 86400:.3f}&end={end:.3f}")
    totals = page.inner_text('[data-testid="overview-totals"]')
    assert f"{api['totals']['requests']:,}" in totals
    assert f"{api['totals']['input_tokens']:,} / {api['totals']['output_tokens']:,}" in totals
    groups = page.eval_on_selector_all("table.overview tbody tr", "rs => rs.map(r => r.dataset.group)")
    assert sorted(groups) == sorted(s["group"]["model"] for s in api["series"])
    assert {"gpt-4o", "gpt-4o-mini", "gpt-4.1-mini", UNPRICED_MODEL} <= set(groups)
    assert page.locator(f'[data-testid="unpriced"] li[data-model="{UNPRICED_MODEL}"]').count() == 1
    assert page.locator('[data-testid="unpriced"] li[data-model="gpt-4o"]').count() == 0
    page.select_option('select[name="metric"]', "cost")
    page.wait_for_url("**/?*metric=cost*")
    page.wait_for_selector('svg.chart[aria-label="cost over time"] polyline', state="attached")
    assert page.locator("svg.chart polyline").count() == min(8, len(api["series"]))
    _screenshot(page, "overview", tmp_path)


def test_a_2000_span_trace_opens_folded_and_folds_by_mouse_and_keyboard(
        explorer: tuple[AllInOne, dict[str, str]], page: Any) -> None:
    aio, ids = explorer
    page.goto(f"{aio.query}/?trace={ids['big']}")
    page.wait_for_selector(".span-row")
    visible = "() => [...document.querySelectorAll('.span-row')].filter(r => !r.hidden).length"
    assert page.locator(".span-row").count() == 1 + BIG_CHILDREN * (1 + BIG_GRANDCHILDREN)
    assert page.evaluate(visible) == 1 + BIG_CHILDREN, "the top two levels, the rest folded"
    first_child = page.locator('.span-row[aria-level="2"]').first
    first_child.locator(".fold").click()
    assert page.evaluate(visible) == 1 + BIG_CHILDREN + BIG_GRANDCHILDREN
    assert first_child.get_attribute("aria-expanded") == "true"
    first_child.focus()
    page.keyboard.press("ArrowLeft")  # fold it again from the keyboard
    assert page.evaluate(visible) == 1 + BIG_CHILDREN
    page.keyboard.press("ArrowDown")  # the next visible row: the second child, not a hidden grandchild
    assert page.evaluate("document.activeElement.textContent").endswith("step 1")
    page.keyboard.press("ArrowRight")
    assert page.evaluate(visible) == 1 + BIG_CHILDREN + BIG_GRANDCHILDREN
    page.keyboard.press("Enter")
    page.wait_for_selector("aside h2")
    assert page.inner_text("aside h2") == "step 1"


def test_a_new_user_finds_the_costliest_trace_its_slowest_call_the_messages_and_the_prompt_version(
        explorer: tuple[AllInOne, dict[str, str]], page: Any) -> None:
    """The issue's "done when", click by click from the start page, with no URL typed."""
    aio, ids = explorer
    costliest = _api(aio, "/api/v1/traces?sort=cost&limit=1")["traces"][0]["trace_id"]
    detail = _api(aio, f"/api/v1/traces/{costliest}")["spans"]
    calls = [s for s in detail if s["genai"]["request_model"]]
    slowest = max(calls, key=lambda s: s["duration_ns"])
    assert costliest == ids["agent"] and slowest["name"] == "chat gpt-4o"

    page.goto(f"{aio.query}/")
    _listed(page)
    page.select_option('select[name="sort"]', "cost")
    page.click('form.filters button[type="submit"]')
    page.wait_for_url("**/?*sort=cost*")
    page.wait_for_function("id => document.querySelector('table.traces tbody tr')?.dataset.traceId === id",
                           arg=costliest)
    page.click("table.traces tbody tr >> nth=0")
    page.click('[data-testid="slowest-call"] a')
    page.wait_for_url(f"**span={slowest['span_id']}*")
    panel = page.locator("aside.panel")
    assert panel.locator("h2").inner_text() == "chat gpt-4o"
    assert panel.locator('[data-chat="Input messages"] [data-role="user"]').inner_text().endswith(AGENT_QUESTION)
    assert panel.locator('[data-chat="Output messages"] [data-role="assistant"]').inner_text().endswith(AGENT_ANSWER)
    version = slowest["genai"]["prompt_version"]
    assert version and slowest["genai"]["prompt_name"] == PROMPT
    panel.locator('dd[data-key="prompt"] a').click()
    page.wait_for_url(f"**view=prompts*prompt={PROMPT}*")
    current = page.locator("table.versions tbody tr[aria-current]")
    assert current.get_attribute("data-version") == version
    assert page.locator(f'pre.template[data-version="{version}"]').inner_text() == TEMPLATE_V1


def test_an_absolute_time_range_selects_the_traces_inside_it(
        explorer: tuple[AllInOne, dict[str, str]], page: Any) -> None:
    aio, _ = explorer
    page.goto(f"{aio.query}/")
    _listed(page)
    page.fill('input[name="from"]', "2026-11-22T16:00:00")  # the captured payloads' hour (UTC)
    page.fill('input[name="to"]', "2026-11-22T17:00:00")
    page.click('form.filters button[type="submit"]')
    page.wait_for_url("**/?*start=*")
    assert "since=" not in page.url
    api = _api(aio, "/api/v1/traces?start=2026-11-22T16:00:00Z&end=2026-11-22T17:00:00Z&limit=50")
    assert api["traces"]
    page.wait_for_function("n => document.querySelectorAll('table.traces tbody tr').length === n",
                           arg=len(api["traces"]))
    assert _listed(page) == [t["trace_id"] for t in api["traces"]]
    assert page.input_value('input[name="from"]').startswith("2026-11-22T16:00"), "the form shows the range"


def test_markup_in_span_names_and_attributes_is_shown_as_text_and_never_runs(
        explorer: tuple[AllInOne, dict[str, str]], page: Any) -> None:
    aio, ids = explorer
    page.goto(f"{aio.query}/")
    row = page.locator(f'tr[data-trace-id="{ids["xss"]}"]')
    assert row.locator("td.name").inner_text() == XSS_NAME
    row.click()
    page.wait_for_selector(".span-row")
    page.click(".span-row")
    page.wait_for_selector('aside dd[data-key="user.input"]')
    assert page.inner_text('aside dd[data-key="user.input"]') == XSS_ATTR
    assert page.inner_text('[data-chat="Input messages"] .msg .content') == XSS_MESSAGE
    page.hover('[data-chat="Input messages"] .msg')
    time.sleep(0.3)  # an onerror handler would have fired by now
    assert page.evaluate("window.__xss") is None
    assert page.locator("main img, main script").count() == 0


DEP_TRACE = 0xDE9
XSS_SERVICE = '<img src=x onerror="window.__xss = 5">ledger'


def _send_cross_service_trace(otlp_http: str) -> None:
    """A gateway span calling two spans of another service (whose name is markup), three days
    back: outside the other tests' default ranges, inside the dependencies page's last 7d."""
    t0 = time.time_ns() - 3 * 86_400 * 10**9
    gateway = batch_of([make_span(DEP_TRACE, 1, t0, {}, name="POST /pay", duration_ns=10**8)], service="dep-gateway")
    calls = batch_of([make_span(DEP_TRACE, 2 + i, t0 + (1 + i) * 10**6, {}, parent=1, name="debit")
                      for i in range(2)], service=XSS_SERVICE)
    for batch in (gateway, calls):
        response = httpx.post(f"{otlp_http}/v1/traces", content=batch.to_bytes(),
                              headers={"content-type": "application/x-protobuf"}, timeout=10)
        assert response.status_code == 200, response.text


def test_the_dependencies_page_lists_the_api_s_edges_as_text(
        explorer: tuple[AllInOne, dict[str, str]], page: Any) -> None:
    aio, _ = explorer
    _send_cross_service_trace(aio.otlp_http)
    lookback = 7 * 86_400_000
    deadline = time.time() + 20
    while True:  # the exporter flushes in the background
        edges = _api(aio, f"/api/dependencies?lookback={lookback}")["data"]
        if any(e["parent"] == "dep-gateway" for e in edges) or time.time() > deadline:
            break
        time.sleep(0.2)
    assert {"parent": "dep-gateway", "child": XSS_SERVICE, "callCount": 2} in edges
    page.goto(f"{aio.query}/")
    page.click('nav a[data-nav="dependencies"]')
    page.select_option('select[name="since"]', "7d")
    page.click('form.filters button[type="submit"]')
    page.wait_for_url("**/?view=dependencies&since=7d*")
    page.wait_for_selector("table.dependencies tbody tr")
    rows = page.eval_on_selector_all("table.dependencies tbody tr", "rows => rows.map(r => r.dataset.edge)")
    assert rows == [f"{e['parent']} -> {e['child']}" for e in edges], "the rows are the API's, in its order"
    row = page.locator("table.dependencies tbody tr").nth(rows.index(f"dep-gateway -> {XSS_SERVICE}"))
    assert row.locator("td").all_inner_texts() == ["dep-gateway", "→", XSS_SERVICE, "2"]
    assert page.evaluate("window.__xss") is None and page.locator("main img, main script").count() == 0
    # a service's name opens the traces it took part in
    row.locator("td:first-child a").click()
    page.wait_for_url("**/?service=dep-gateway&since=7d")


def test_an_api_error_is_shown_to_the_user(explorer: tuple[AllInOne, dict[str, str]], page: Any) -> None:
    aio, _ = explorer
    page.goto(f"{aio.query}/?min_tokens=lots")
    assert "min_tokens" in page.locator('[role="alert"]').inner_text()
    page.goto(f"{aio.query}/?trace={'0' * 31}f")
    assert page.locator('[role="alert"]').inner_text().startswith("404")


def test_an_empty_range_says_how_to_send_traces(explorer: tuple[AllInOne, dict[str, str]], page: Any) -> None:
    aio, _ = explorer
    page.goto(f"{aio.query}/?start=1000000000&end=1000000060")
    text = page.locator(".empty").inner_text()
    assert "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=" in text and "/v1/traces" in text


@pytest.mark.parametrize(("scheme", "dark"), [("light", False), ("dark", True)])
def test_the_theme_follows_the_system_setting(explorer: tuple[AllInOne, dict[str, str]], browser: Any,
                                              scheme: str, dark: bool) -> None:
    aio, ids = explorer
    context = browser.new_context(viewport={"width": 1280, "height": 860}, color_scheme=scheme)
    try:
        page = context.new_page()
        page.goto(f"{aio.query}/?trace={ids['agent']}")
        page.wait_for_selector(".span-row")
        # Relative luminance of the page's background and text, from their computed colours.
        luminance = page.evaluate("""() => {
            const rgb = (c) => c.match(/\\d+/g).slice(0, 3).map(Number);
            const lum = ([r, g, b]) => (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
            const body = getComputedStyle(document.body);
            return [lum(rgb(body.backgroundColor)), lum(rgb(body.color))];
        }""")
    finally:
        context.close()
    background, text = luminance
    assert (background < 0.2 and text > 0.8) if dark else (background > 0.9 and text < 0.2), luminance


# ------------------------------------------------------------------------------ experiments and runs (MLflow)

MLFLOW_TRACE = 0x3A7F  # the OTel trace id (as an int) of the trace the MLflow run produced
RUN_NAME = "<i>sweep</i> 1"  # markup, to be shown as text
LOSS = [(0, 0.92), (1, 0.71), (2, 0.55), (3, 0.47), (4, 0.43)]
ACCURACY = [(0, 0.5), (2, 0.75)]


@pytest.fixture(scope="module")
def mlflow_run(explorer: tuple[AllInOne, dict[str, str]]) -> dict[str, str]:
    """An experiment with a parent run (params, tags, two metric histories) and a nested
    run, logged through the all-in-one's MLflow endpoint as MLflow clients call it; a trace
    the parent run produced (its MLflow trace info, its spans over OTLP) and two scores on it."""
    aio, _ = explorer
    base = f"{aio.mlflow}/api/2.0/mlflow"
    trace_hex = MLFLOW_TRACE.to_bytes(16, "big").hex()
    with httpx.Client(timeout=30) as http:
        def post(path: str, body: dict[str, Any], root: str = base) -> dict[str, Any]:
            response = http.post(f"{root}/{path}", json=body)
            assert response.status_code == 200, response.text
            result: dict[str, Any] = response.json()
            return result

        experiment = post("experiments/create", {"name": "weather-eval", "tags": [{"key": "team", "value": "search"}]})
        eid = experiment["experiment_id"]
        now_ms = int(time.time() * 1000)
        parent = post("runs/create", {"experiment_id": eid, "run_name": RUN_NAME, "start_time": now_ms - 60_000})
        parent_id = parent["run"]["info"]["run_id"]
        child = post("runs/create", {"experiment_id": eid, "run_name": "trial-a", "start_time": now_ms - 50_000,
                                     "tags": [{"key": "mlflow.parentRunId", "value": parent_id}]})
        child_id = child["run"]["info"]["run_id"]
        post("runs/log-batch", {"run_id": parent_id,
                                "params": [{"key": "lr", "value": "0.01"}, {"key": "model", "value": "gpt-4o-mini"}],
                                "tags": [{"key": "stage", "value": "dev"}],
                                "metrics": [{"key": "loss", "value": v, "step": s, "timestamp": now_ms - 40_000 + s}
                                            for s, v in reversed(LOSS)]
                                + [{"key": "accuracy", "value": v, "step": s, "timestamp": now_ms - 40_000 + s}
                                   for s, v in ACCURACY]})
        post("runs/log-batch", {"run_id": child_id, "metrics": [{"key": "loss", "value": 0.6, "step": 0,
                                                                 "timestamp": now_ms}], "params": [], "tags": []})
        post("runs/update", {"run_id": parent_id, "status": "FINISHED", "end_time": now_ms - 30_000})
        post("traces", {"trace": {"trace_info": {
            "trace_id": f"tr-{trace_hex}", "trace_location": {"mlflow_experiment": {"experiment_id": eid}},
            "request_time": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now_ms / 1000 - 20)),
            "execution_duration": "0.5s", "state": "OK", "trace_metadata": {"mlflow.sourceRun": parent_id},
            "tags": {"mlflow.traceName": "weather answer"}}}}, root=f"{aio.mlflow}/api/3.0/mlflow")
        t0 = time.time_ns() - 20 * 10**9
        spans = batch_of([make_span(MLFLOW_TRACE, 1, t0, {}, name="weather answer", duration_ns=5 * 10**8),
                          make_span(MLFLOW_TRACE, 2, t0 + 10**7, {}, parent=1, name="retrieve", duration_ns=10**8)],
                         service="mlflow-app")
        response = http.post(f"{aio.otlp_http}/v1/traces", content=spans.to_bytes(),
                             headers={"content-type": "application/x-protobuf"})
        assert response.status_code == 200, response.text
        for name, value, span_id in (("relevance", 0.9, ""), ("grounded", True, (2).to_bytes(8, "big").hex())):
            post(f"traces/tr-{trace_hex}/assessments", {"assessment": {
                "assessment_name": name, "trace_id": f"tr-{trace_hex}", "span_id": span_id, "feedback": {"value": value},
                "source": {"source_type": "LLM_JUDGE", "source_id": "judge-1"}, "rationale": f"why {name}"}},
                root=f"{aio.mlflow}/api/3.0/mlflow")
    deadline = time.time() + 30  # the spans pass the batch processor before they are stored
    while not httpx.get(f"{aio.query}/api/v1/traces/{trace_hex}", timeout=10).is_success:
        assert time.time() < deadline, "the MLflow trace's spans were not stored"
        time.sleep(0.2)
    return {"experiment": eid, "parent": parent_id, "child": child_id, "trace": trace_hex}


def test_the_experiments_page_lists_experiments_and_an_experiment_nests_its_runs(
        explorer: tuple[AllInOne, dict[str, str]], mlflow_run: dict[str, str], page: Any, tmp_path: Path) -> None:
    aio, _ = explorer
    eid = mlflow_run["experiment"]
    cells = _row_from_nav(page, aio, "experiments", f'tr[data-experiment-id="{eid}"]')
    listed = {e["experiment_id"]: e for e in _api(aio, "/api/v1/experiments")["experiments"]}
    assert cells[:4] == ["weather-eval", eid, "2", "1"] and (listed[eid]["run_count"], listed[eid]["trace_count"]) == (2, 1)
    assert page.eval_on_selector_all("tr[data-experiment-id]", "rs => rs.map(r => r.dataset.experimentId)") == \
        list(listed), "the API's order"
    page.click(f'tr[data-experiment-id="{eid}"]')
    page.wait_for_selector("table.runs tbody tr")
    assert f"experiment={eid}" in page.url
    rows = page.eval_on_selector_all("table.runs tbody tr", "rs => rs.map(r => [r.dataset.runId, r.ariaLevel])")
    assert rows == [[mlflow_run["parent"], "1"], [mlflow_run["child"], "2"]], "the child nested under its parent"
    parent = page.locator(f'table.runs tr[data-run-id="{mlflow_run["parent"]}"]')
    assert parent.locator("td").first.inner_text() == RUN_NAME, "markup shown as text"
    assert parent.locator('td[data-metric="loss"]').inner_text() == "0.43"
    assert parent.locator('td[data-param="lr"]').inner_text() == "0.01"
    assert "FINISHED" in parent.inner_text()
    assert page.eval_on_selector_all("table.mlflow-traces tbody tr", "rs => rs.map(r => r.dataset.traceId)") == \
        [mlflow_run["trace"]]
    assert page.locator("main i").count() == 0
    _screenshot(page, "experiment", tmp_path)


def test_a_run_page_draws_one_point_per_logged_step_and_lists_params_tags_children_and_traces(
        explorer: tuple[AllInOne, dict[str, str]], mlflow_run: dict[str, str], page: Any, tmp_path: Path) -> None:
    aio, _ = explorer
    page.goto(f"{aio.query}/?view=experiments&run={mlflow_run['parent']}")
    page.wait_for_selector('svg.metric-chart[data-metric="loss"] polyline', state="attached")
    run = _api(aio, f"/api/v1/runs/{mlflow_run['parent']}")["run"]
    assert page.inner_text("h1") == RUN_NAME
    for key, logged in (("loss", LOSS), ("accuracy", ACCURACY)):
        points = page.get_attribute(f'svg.metric-chart[data-metric="{key}"] polyline', "points")
        assert points is not None and len(points.split()) == len(logged) == len(run["metrics"][key])
        xs = [float(p.split(",")[0]) for p in points.split()]
        assert xs == sorted(xs), "by step"
    ys = [float(p.split(",")[1]) for p in page.get_attribute('svg.metric-chart[data-metric="loss"] polyline',
                                                             "points").split()]
    assert ys == sorted(ys), "the loss falls step by step: the line goes down (SVG's y grows downwards)"
    assert page.inner_text('[data-testid="params"] tr[data-key="lr"] td:nth-child(2)') == "0.01"
    assert page.inner_text('[data-testid="tags"] tr[data-key="stage"] td:nth-child(2)') == "dev"
    assert page.eval_on_selector_all("table.runs tbody tr", "rs => rs.map(r => r.dataset.runId)") == \
        [c["run_id"] for c in run["children"]] == [mlflow_run["child"]]
    assert page.eval_on_selector_all("table.mlflow-traces tbody tr", "rs => rs.map(r => r.dataset.traceId)") == \
        [t["trace_id"] for t in run["traces"]] == [mlflow_run["trace"]]
    _screenshot(page, "run", tmp_path)
    page.click(f'table.runs tr[data-run-id="{mlflow_run["child"]}"]')  # the child's page links back to its parent
    page.wait_for_selector('[data-testid="parent-run"] a')
    assert page.inner_text("h1") == "trial-a"
    page.click('[data-testid="parent-run"] a')
    page.wait_for_url(f"**run={mlflow_run['parent']}*")


def test_a_run_s_trace_opens_the_trace_page_with_its_scores(
        explorer: tuple[AllInOne, dict[str, str]], mlflow_run: dict[str, str], page: Any) -> None:
    aio, _ = explorer
    page.goto(f"{aio.query}/?view=experiments&run={mlflow_run['parent']}")
    page.click(f'table.mlflow-traces tr[data-trace-id="{mlflow_run["trace"]}"]')
    page.wait_for_selector(".span-row")
    assert f"trace={mlflow_run['trace']}" in page.url
    scores = _api(aio, f"/api/v1/traces/{mlflow_run['trace']}")["scores"]
    shown = page.eval_on_selector_all('[data-testid="trace-scores"] tbody tr', "rs => rs.map(r => r.dataset.scoreId)")
    assert shown == [s["score_id"] for s in scores] and len(shown) == 2
    by_name = {s["name"]: s for s in scores}
    row = page.locator(f'[data-testid="trace-scores"] tr[data-score-id="{by_name["relevance"]["score_id"]}"]')
    assert row.locator("td").all_inner_texts()[:6] == ["relevance", "0.9", "feedback", "llm_judge", "judge-1",
                                                       "why relevance"]
    # The span-level score is also in that span's panel.
    page.click('[data-testid="trace-scores"] a')
    page.wait_for_selector("aside table.scores")
    assert page.inner_text("aside h2") == "retrieve"
    assert page.locator("aside table.scores td").all_inner_texts()[:2] == ["grounded", "true"]
    assert "experiment" in page.inner_text('[data-testid="mlflow"]')
    page.click('[data-testid="mlflow"] a >> nth=1')  # back to the run that produced the trace
    page.wait_for_url(f"**run={mlflow_run['parent']}*")
    page.wait_for_selector("svg.metric-chart")


# ------------------------------------------------------------------------------ scores


def _scores(aio: AllInOne, trace_id: str, **params: str) -> list[dict[str, Any]]:
    query = "&".join(f"{k}={v}" for k, v in {"trace_id": trace_id, **params}.items())
    scores: list[dict[str, Any]] = _api(aio, f"/api/v1/scores?{query}")["scores"]
    return scores


def _shown_scores(page: Any, where: str) -> list[list[str]]:
    return page.eval_on_selector_all(f"{where} table.scores tbody tr",
                                     "rs => rs.map(r => [...r.cells].slice(0, 6).map(c => c.textContent))")


def test_a_score_added_on_the_trace_and_span_pages_is_stored_shown_and_filters_the_list(
        explorer: tuple[AllInOne, dict[str, str]], page: Any, tmp_path: Path) -> None:
    aio, ids = explorer
    trace_id = ids["agent"]
    page.goto(f"{aio.query}/?trace={trace_id}")
    page.wait_for_selector('[data-testid="trace-scores"] table.scores')
    # The evaluation event the SDK put on the model call is a score of that span.
    [evaluated] = _scores(aio, trace_id, name="relevance")
    assert _shown_scores(page, '[data-testid="trace-scores"]')[0] == [
        "relevance", "0.8 (relevant)", "feedback", "", "", "answers the question"]
    assert evaluated["value"] == EVAL_RELEVANCE and evaluated["span_id"]

    form = page.locator('[data-testid="trace-score-form"]')
    form.locator('input[name="name"]').fill("helpfulness")
    form.locator('select[name="data_type"]').select_option("numeric")
    form.locator('input[name="value"]').fill("high")  # not a number: the API says what is wrong
    form.locator('button[type="submit"]').click()
    alert = page.locator('[data-testid="trace-scores"] [role="alert"]')
    alert.wait_for()
    assert "400: value: a numeric score's value must be a number" in alert.inner_text()
    form.locator('input[name="value"]').fill("0.75")
    form.locator('input[name="comment"]').fill("clear answer")
    form.locator('input[name="author"]').fill("ana")
    form.locator('button[type="submit"]').click()
    page.wait_for_selector('[data-testid="trace-scores"] td.name >> text=helpfulness')
    [stored] = _scores(aio, trace_id, name="helpfulness")
    assert (stored["value"], stored["source"], stored["author"], stored["comment"], stored["span_id"]) == (
        0.75, "human", "ana", "clear answer", "")
    row = page.locator(f'[data-testid="trace-scores"] tr[data-score-id="{stored["score_id"]}"] td').all_inner_texts()
    assert row[:7] == ["helpfulness", "0.75", "feedback", "human", "ana", "clear answer", "whole trace"]

    # A span's panel has its own form: the score is that span's.
    mini = next(s for s in _api(aio, f"/api/v1/traces/{trace_id}")["spans"] if s["name"] == "chat gpt-4o-mini")
    page.click(f'.span-row[data-span-id="{mini["span_id"]}"]')
    span_form = page.locator('aside [data-testid="span-score-form"]')
    span_form.wait_for()
    span_form.locator('input[name="name"]').fill("verdict")
    span_form.locator('select[name="data_type"]').select_option("categorical")
    span_form.locator('input[name="value"]').fill("pass")
    span_form.locator('select[name="source"]').select_option("llm_judge")
    span_form.locator('button[type="submit"]').click()
    page.wait_for_selector("aside table.scores td.name >> text=verdict")
    assert f"span={mini['span_id']}" in page.url, "the page stays on the span"
    [verdict] = _scores(aio, trace_id, name="verdict")
    assert (verdict["value"], verdict["span_id"], verdict["source"]) == ("pass", mini["span_id"], "llm_judge")
    assert _shown_scores(page, "aside") == [["verdict", "pass", "feedback", "llm_judge", "", ""]]
    _screenshot(page, "trace-scores", tmp_path)

    # The list: a score filter in the form, kept in the URL; the scores as columns.
    page.goto(f"{aio.query}/")
    _listed(page)
    page.fill('input[data-testid="score-filter"]', "helpfulness>=0.5")
    page.click('form.filters button[type="submit"]')
    page.wait_for_url("**/?*score=helpfulness%3E%3D0.5*")
    filtered = _api(aio, "/api/v1/traces?score=helpfulness%3E%3D0.5&limit=50")["traces"]
    page.wait_for_function("n => document.querySelectorAll('table.traces tbody tr').length === n", arg=len(filtered))
    assert _listed(page) == [t["trace_id"] for t in filtered] == [trace_id]
    cells = page.eval_on_selector_all(f'tr[data-trace-id="{trace_id}"] td.score',
                                      "cs => Object.fromEntries(cs.map(c => [c.dataset.score, c.textContent]))")
    assert cells == {"helpfulness": "0.75", "relevance": "0.8", "verdict": "pass"}
    page.fill('input[data-testid="score-filter"] >> nth=1', "verdict=fail")  # a second filter: both must hold
    page.click('form.filters button[type="submit"]')
    page.wait_for_url("**/?*score=verdict%3Dfail*")
    page.wait_for_selector(".empty")
    assert _listed(page) == [] == _api(aio, "/api/v1/traces?score=helpfulness%3E%3D0.5&score=verdict%3Dfail")["traces"]
    page.go_back()
    page.wait_for_function("n => document.querySelectorAll('table.traces tbody tr').length === n", arg=1)
    assert page.input_value('input[data-testid="score-filter"] >> nth=0') == "helpfulness>=0.5"
    _screenshot(page, "traces-scored", tmp_path)


def test_the_prompt_page_shows_each_version_s_scores_from_evaluations_and_the_api(
        explorer: tuple[AllInOne, dict[str, str]], page: Any) -> None:
    aio, ids = explorer
    trace_id = ids["agent"]
    mini = next(s for s in _api(aio, f"/api/v1/traces/{trace_id}")["spans"] if s["name"] == "chat gpt-4o-mini")
    response = httpx.post(f"{aio.query}/api/v1/scores", json={
        "trace_id": trace_id, "span_id": mini["span_id"], "name": "conciseness", "value": 4, "source": "code",
        "score_id": "conciseness-mini"}, timeout=10)
    assert response.status_code == 201, response.text
    page.goto(f"{aio.query}/?view=prompts&prompt={PROMPT}")
    page.wait_for_selector('[data-testid="prompt-scores"] tbody tr')
    rows = page.eval_on_selector_all('[data-testid="prompt-scores"] tbody tr',
                                     "rs => rs.map(r => [r.dataset.scoreVersion, r.dataset.scoreName, "
                                     "...[...r.cells].slice(2).map(c => c.textContent)])")
    end = int(time.time()) + 1
    api = _api(aio, f"/api/v1/metrics/genai?scores=true&prompt={PROMPT}&group_by=prompt_version&step=1d"
                    f"&start={end - 365 * 86400}&end={end}")["scores"]["series"]
    expected = {(s["group"]["prompt_version"], s["name"]): s["totals"] for s in api}
    assert {(r[0], r[1]) for r in rows} == set(expected)
    # The evaluation event judged the v1 call, the API's score the v2 call.
    assert ("1", "relevance") in expected and ("2", "conciseness") in expected
    assert ("2", "relevance") not in expected and ("1", "conciseness") not in expected
    by_key = {(r[0], r[1]): r[2:] for r in rows}
    assert by_key[("1", "relevance")] == ["1", "0.8", "0.8 – 0.8", "relevant 1"]
    assert by_key[("2", "conciseness")][:2] == [str(expected[("2", "conciseness")]["scores"]), "4"]
