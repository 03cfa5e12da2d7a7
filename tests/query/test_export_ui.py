"""The trace explorer's download links, in a real browser (Debian's chromium, headless, via
Playwright): the trace list's JSONL and Parquet links carry its filters, range and sort (not its
page), the trace page's link its trace as OTLP/JSON; each downloads what the API serves, also
when the API wants a key (the page then fetches the file with it)."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyarrow.parquet as pq
import pytest

from test_query_api import FakeHost, T0, TRACE_A, build_batch, hand_built_specs, make_store, seed
from tracehouse.core.auth import KeyKind, Principal
from tracehouse.core.errors import UnauthenticatedError
from tracehouse.net.asgi_server import AsgiServer
from tracehouse.query.access import OPEN, Access
from tracehouse.query.app import create_app

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
START, END = str(T0 // 10**9 - 3600), str(T0 // 10**9 + 3600)  # the hand-built traces' hour, unix seconds
KEY = "ui-key"


class OneKey:
    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        if headers.get("authorization") != f"Bearer {KEY}":
            raise UnauthenticatedError("unknown key")
        return Principal("", KeyKind.READ, KEY)

    def admit(self, tenant: str, spans: int, nbytes: int) -> None:
        pass


@pytest.fixture(scope="module")
def seeded(chdb_endpoint: str) -> str:
    database = f"ui_{uuid.uuid4().hex[:12]}"
    asyncio.run(seed(chdb_endpoint, database, [build_batch(hand_built_specs(time.time_ns()))]))
    return database


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH (`make test-tools` installs Debian's package: deploy/scripts/test-tools.sh)")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


async def serve(chdb_endpoint: str, database: str, access: Access) -> tuple[AsgiServer, Any]:
    store = make_store(chdb_endpoint, database)
    server = AsgiServer(create_app(store, FakeHost(), access=access), "127.0.0.1:0", name="query_api")
    await server.start()
    return server, store


async def download(page: Any, testid: str) -> tuple[str, bytes]:
    """Click a download link; the file's suggested name and its bytes."""
    async with page.expect_download() as info:
        await page.click(f'[data-testid="{testid}"]')
    file = await info.value
    path = await file.path()
    with open(path, "rb") as f:
        return file.suggested_filename, f.read()


@pytest.mark.parametrize("keyed", [False, True], ids=["no keys", "with a key"])
async def test_download_links_carry_the_list_s_filters_and_the_trace(chdb_endpoint: str, seeded: str, browser: Any,
                                                                     keyed: bool) -> None:
    server, store = await serve(chdb_endpoint, seeded, Access(OneKey()) if keyed else OPEN)  # type: ignore[arg-type]
    base = f"http://127.0.0.1:{server.port}"
    context = await browser.new_context(accept_downloads=True)
    errors: list[str] = []
    try:
        page = await context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        if keyed:  # as the page's key form leaves it: the key for this tab only
            await page.goto(f"{base}/ui/app.js")
            await page.evaluate(f"sessionStorage.setItem('tracehouse.apiKey', '{KEY}')")
        await page.goto(f"{base}/?start={START}&end={END}&service=llm-gateway&attr=tenant%3Dacme&sort=cost&limit=1")
        await page.wait_for_selector("table.traces tbody tr")
        listed = await page.eval_on_selector_all("table.traces tbody tr", "rows => rows.map(r => r.dataset.traceId)")
        assert listed == [TRACE_A]

        for fmt in ("jsonl", "parquet"):
            href = await page.get_attribute(f'[data-testid="export-{fmt}"]', "href")
            url = urlsplit(href)
            assert url.path == "/api/v1/traces/export"
            assert parse_qs(url.query) == {"start": [START], "end": [END], "service": ["llm-gateway"],
                                           "attr": ["tenant=acme"], "sort": ["cost"], "format": [fmt]}, \
                "the filters, range and sort; not the page's limit"
            name, body = await download(page, f"export-{fmt}")
            assert name == f"traces-20260110T110000Z-20260110T130000Z.{fmt}"
            spans = ([json.loads(line) for line in body.splitlines()] if fmt == "jsonl"
                     else pq.read_table(io.BytesIO(body)).select(["trace_id", "span_id"]).to_pylist())
            assert {s["trace_id"] for s in spans} == {TRACE_A} and len(spans) == 4

        await page.click(f'tr[data-trace-id="{TRACE_A}"]')
        await page.wait_for_selector('[data-testid="summary"]')
        assert await page.get_attribute('[data-testid="export-otlp"]', "href") == \
            f"/api/v1/traces/{TRACE_A}?format=otlp"
        name, body = await download(page, "export-otlp")
        assert name == f"trace-{TRACE_A}.otlp.json"
        otlp = json.loads(body)
        assert sorted(s["spanId"] for rs in otlp["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]) == \
            [f"a00000000000000{i}" for i in range(1, 5)]
    finally:
        await context.close()
        await server.stop()
        await store.close()
    assert not errors, f"script errors in the page: {errors}"
