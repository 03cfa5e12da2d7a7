"""OTLP/HTTP on more than one path (`traces_url_aliases`), e.g. Langfuse's
`/api/public/otel/v1/traces`, and Basic credentials on the receiver's authenticator."""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from tracehouse.core.auth import AuthConfig
from tracehouse.core.component import ComponentID, Kind, Settings
from tracehouse.core.testing import TestHost, TracesSink
from tracehouse.extensions.bearertokenauth.config import BearerTokenAuthConfig
from tracehouse.extensions.bearertokenauth.extension import BearerTokenAuthExtension
from tracehouse.extensions.bearertokenauth.keys import digest, new_key
from tracehouse.ingest.otlp.config import HttpConfig, OtlpReceiverConfig, ProtocolsConfig
from tracehouse.ingest.otlp.receiver import OtlpReceiver

LANGFUSE_PATH = "/api/public/otel/v1/traces"
KEY = new_key()
# What the Langfuse SDK sent (tests/fixtures/sdk/langfuse/http-protobuf.meta.json), gzip as it sends it.
BODY = gzip.compress((Path(__file__).parents[2] / "fixtures" / "sdk" / "langfuse" / "http-protobuf.pb").read_bytes())
HEADERS = {"content-type": "application/x-protobuf", "content-encoding": "gzip", "x-langfuse-sdk-name": "python",
           "x-langfuse-public-key": "pk-lf-x", "x-langfuse-ingestion-version": "4"}


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[str, TracesSink]]:
    keys = tmp_path / "keys.yaml"
    keys.write_text(json.dumps({"keys": [{"name": "shop-ingest", "tenant": "shop", "kind": "ingest",
                                          "sha256": digest(KEY)}]}))
    ext = BearerTokenAuthExtension(Settings(ComponentID("bearertokenauth"), Kind.EXTENSION),
                                   BearerTokenAuthConfig(filename=str(keys)))
    host = TestHost(extensions={ComponentID("bearertokenauth"): ext})
    await ext.start(host)
    sink = TracesSink()
    config = OtlpReceiverConfig(protocols=ProtocolsConfig(http=HttpConfig(
        endpoint="127.0.0.1:0", traces_url_aliases=[LANGFUSE_PATH], auth=AuthConfig(authenticator="bearertokenauth"))))
    receiver = OtlpReceiver(Settings(ComponentID("otlp"), Kind.RECEIVER), config, sink)
    await receiver.start(host)
    try:
        yield f"http://127.0.0.1:{receiver.http_port}", sink
    finally:
        await receiver.shutdown()
        await ext.shutdown()


async def test_langfuse_request_is_accepted_on_its_path_with_basic_credentials(
        served: tuple[str, TracesSink]) -> None:
    url, sink = served
    async with httpx.AsyncClient(timeout=10) as http:
        for path in (LANGFUSE_PATH, "/v1/traces"):
            resp = await http.post(url + path, content=BODY, headers={**HEADERS, "authorization": basic("pk-lf-x", KEY)})
            assert resp.status_code == 200, resp.text
    assert [b.tenant for b in sink.batches] == ["shop", "shop"]
    assert sink.span_count == 6


@pytest.mark.parametrize(("authorization", "message"), [
    (None, "missing API key"),
    ("Basic %%%", "not base64"),
    ("Basic " + base64.b64encode(b"no-colon").decode(), "no ':'"),
    ("Basic " + base64.b64encode(f"{KEY}:".encode()).decode(), "empty password"),
    (basic("pk-lf-x", "sk-lf-wrong"), "invalid API key"),
], ids=["none", "not base64", "no colon", "empty password", "invalid key"])  # no random key in an id
async def test_wrong_or_malformed_basic_credentials_get_401_saying_why(
        served: tuple[str, TracesSink], authorization: str | None, message: str) -> None:
    url, sink = served
    headers = {**HEADERS, "content-type": "application/json"}
    if authorization:
        headers["authorization"] = authorization
    async with httpx.AsyncClient(timeout=10) as http:
        resp = await http.post(url + LANGFUSE_PATH, content=b"{}", headers=headers)
    assert resp.status_code == 401
    assert message in resp.json()["message"]
    assert resp.headers["www-authenticate"].startswith("Bearer")
    assert not sink.batches


async def test_an_unknown_path_names_every_accepted_one(served: tuple[str, TracesSink]) -> None:
    url, _ = served
    async with httpx.AsyncClient(timeout=10) as http:
        resp = await http.post(url + "/api/public/ingestion", content=b"{}",
                               headers={"content-type": "application/json"})
    assert resp.status_code == 404
    assert f"accepted at /v1/traces, {LANGFUSE_PATH}" in resp.json()["message"]


def test_aliases_must_be_paths() -> None:
    with pytest.raises(ValidationError, match="'api/public/otel/v1/traces' must start with '/'"):
        HttpConfig(traces_url_aliases=["api/public/otel/v1/traces"])
    assert HttpConfig(traces_url_aliases=["/v1/traces", "/x"]).traces_paths == ("/v1/traces", "/x")
