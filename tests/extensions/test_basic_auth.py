"""`Authorization: Basic` on the `bearertokenauth` extension: the password is the API key.

Langfuse SDKs send `Basic base64(public_key:secret_key)` and MLflow clients
`Basic base64(MLFLOW_TRACKING_USERNAME:MLFLOW_TRACKING_PASSWORD)`; the user name is not used.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from tracehouse.core.auth import KeyKind
from tracehouse.core.component import ComponentID, Kind, Settings
from tracehouse.core.errors import UnauthenticatedError
from tracehouse.core.testing import TestHost
from tracehouse.extensions.bearertokenauth.config import BearerTokenAuthConfig
from tracehouse.extensions.bearertokenauth.extension import BearerTokenAuthExtension, basic_password
from tracehouse.extensions.bearertokenauth.keys import digest, new_key

SHOP = new_key()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
async def ext(tmp_path: Path) -> AsyncIterator[BearerTokenAuthExtension]:
    path = tmp_path / "keys.yaml"
    path.write_text(json.dumps({"keys": [{"name": "shop-ingest", "tenant": "shop", "kind": "ingest",
                                          "sha256": digest(SHOP)}]}))
    extension = BearerTokenAuthExtension(Settings(ComponentID("bearertokenauth"), Kind.EXTENSION),
                                         BearerTokenAuthConfig(filename=str(path)))
    await extension.start(TestHost())
    yield extension
    await extension.shutdown()


@pytest.mark.parametrize("user", ["pk-lf-1234", "shop", "bravo", "", "ünïcode"])
async def test_the_password_is_the_key_and_the_user_name_is_not_used(ext: BearerTokenAuthExtension,
                                                                      user: str) -> None:
    principal = ext.authenticate({"authorization": basic(user, SHOP)})
    assert (principal.tenant, principal.kind, principal.key_name) == ("shop", KeyKind.INGEST, "shop-ingest")


async def test_the_scheme_is_case_insensitive_and_bearer_still_works(ext: BearerTokenAuthExtension) -> None:
    assert ext.authenticate({"authorization": "  basic " + basic("u", SHOP).split()[1] + " "}).tenant == "shop"
    assert ext.authenticate({"authorization": f"Bearer {SHOP}"}).tenant == "shop"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.mark.parametrize(("value", "message"), [
    ("Basic", "Basic credentials are empty"),
    ("Basic    ", "Basic credentials are empty"),
    ("Basic not*base64", "not base64"),
    ("Basic " + _b64(b"abc")[:-1], "not base64"),  # bad padding
    ("Basic " + _b64(b"\xff\xfe:\xff"), "not base64 of UTF-8"),
    ("Basic " + _b64(SHOP.encode()), "no ':'"),
    ("Basic " + _b64(f"{SHOP}:".encode()), "empty password: the API key goes in the password"),
], ids=["empty", "blank", "not base64", "bad padding", "not UTF-8", "no colon", "empty password"])  # no random key in an id
async def test_malformed_basic_credentials_are_refused_saying_why(ext: BearerTokenAuthExtension, value: str,
                                                                  message: str) -> None:
    with pytest.raises(UnauthenticatedError, match=message) as info:
        ext.authenticate({"authorization": value})
    assert SHOP not in str(info.value)  # what was sent is never echoed


async def test_an_unknown_key_as_the_password_is_refused(ext: BearerTokenAuthExtension) -> None:
    with pytest.raises(UnauthenticatedError, match="^invalid API key$"):
        ext.authenticate({"authorization": basic("shop", SHOP + "x")})
    with pytest.raises(UnauthenticatedError, match="^invalid API key$"):
        ext.authenticate({"authorization": basic(SHOP, "pk-lf-secret")})  # the key in the user name: not read


async def test_the_refusals_name_both_forms(ext: BearerTokenAuthExtension) -> None:
    with pytest.raises(UnauthenticatedError, match=r"'authorization: Bearer <key>' \(or 'Basic base64"):
        ext.authenticate({})
    with pytest.raises(UnauthenticatedError, match=r"must be 'Bearer <key>' \(or 'Basic base64"):
        ext.authenticate({"authorization": f"Token {SHOP}"})


async def test_basic_can_be_turned_off(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(json.dumps({"keys": [{"name": "k", "tenant": "shop", "kind": "full", "sha256": digest(SHOP)}]}))
    ext = BearerTokenAuthExtension(Settings(ComponentID("bearertokenauth"), Kind.EXTENSION),
                                   BearerTokenAuthConfig(filename=str(path), basic=False))
    await ext.start(TestHost())
    try:
        with pytest.raises(UnauthenticatedError) as info:
            ext.authenticate({"authorization": basic("u", SHOP)})
        assert str(info.value) == "the authorization header must be 'Bearer <key>'"
        assert ext.authenticate({"authorization": f"Bearer {SHOP}"}).tenant == "shop"
    finally:
        await ext.shutdown()


def test_basic_password_parses_rfc7617_credentials() -> None:
    assert basic_password(_b64(b"Aladdin:open sesame")) == "open sesame"
    assert basic_password(_b64("pk-lf-x:sk-lf-ÿ".encode())) == "sk-lf-ÿ"
    assert basic_password(_b64(b":key:with:colons")) == "key:with:colons"  # the first ':' splits


@pytest.mark.parametrize("scheme", ["Basic", "basic", "two words", ""])
def test_a_key_scheme_that_cannot_work_is_a_config_error(scheme: str) -> None:
    with pytest.raises(ValidationError, match="scheme"):
        BearerTokenAuthConfig(scheme=scheme)
