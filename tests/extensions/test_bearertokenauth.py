"""The `bearertokenauth` extension: hashed keys, kinds, tenants, reloads and limits."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tracehouse.core.auth import Action, KeyKind
from tracehouse.core.component import ComponentID, Kind, Settings
from tracehouse.core.errors import PermissionDeniedError, RetryableError, UnauthenticatedError
from tracehouse.core.testing import TestHost
from tracehouse.extensions.bearertokenauth.config import BearerTokenAuthConfig
from tracehouse.extensions.bearertokenauth.extension import BearerTokenAuthExtension
from tracehouse.extensions.bearertokenauth.keys import KeyFileError, TenantLimits, digest, new_key, parse_key_file
from tracehouse.extensions.bearertokenauth.limits import TenantLimiter

SHOP, LAB = new_key(), new_key()


def write_keys(path: Path, entries: list[dict[str, str]], tenants: dict[str, dict[str, float]] | None = None) -> Path:
    path.write_text(json.dumps({"keys": entries, **({"tenants": tenants} if tenants else {})}))
    return path


def entry(name: str, tenant: str, kind: str, key: str) -> dict[str, str]:
    return {"name": name, "tenant": tenant, "kind": kind, "sha256": digest(key)}


async def started(path: Path, reload_interval: float = 10.0) -> BearerTokenAuthExtension:
    ext = BearerTokenAuthExtension(Settings(ComponentID("bearertokenauth"), Kind.EXTENSION),
                                   BearerTokenAuthConfig(filename=str(path), reload_interval=reload_interval))
    await ext.start(TestHost())
    return ext


async def test_a_key_names_its_tenant_and_kind_and_only_its_digest_is_stored(tmp_path: Path) -> None:
    path = write_keys(tmp_path / "keys.yaml", [entry("shop-ingest", "shop", "ingest", SHOP),
                                               entry("lab-read", "default", "read", LAB)])
    assert SHOP not in path.read_text() and LAB not in path.read_text()
    ext = await started(path)
    try:
        shop = ext.authenticate({"authorization": f"Bearer {SHOP}"})
        assert (shop.tenant, shop.kind, shop.key_name) == ("shop", KeyKind.INGEST, "shop-ingest")
        shop.require(Action.INGEST)
        with pytest.raises(PermissionDeniedError, match="ingest key; it cannot read"):
            shop.require(Action.READ)
        lab = ext.authenticate({"authorization": f"bearer  {LAB} "})  # scheme is case-insensitive
        assert lab.tenant == "" and lab.kind is KeyKind.READ  # `default`: data sent before keys existed
        with pytest.raises(UnauthenticatedError, match="missing API key: send the header 'authorization: Bearer"):
            ext.authenticate({})
        with pytest.raises(UnauthenticatedError, match="must be 'Bearer <key>'"):
            ext.authenticate({"authorization": f"Token {SHOP}"})
        with pytest.raises(UnauthenticatedError, match="Basic credentials are not base64"):
            ext.authenticate({"authorization": f"Basic {SHOP}"})  # a bare key is not Basic credentials
        with pytest.raises(UnauthenticatedError, match="^invalid API key$"):
            ext.authenticate({"authorization": f"Bearer {SHOP}x"})
    finally:
        await ext.shutdown()


async def test_the_key_file_is_reloaded_on_change_and_a_broken_one_keeps_the_old_keys(tmp_path: Path) -> None:
    path = write_keys(tmp_path / "keys.yaml", [entry("shop", "shop", "full", SHOP)])
    ext = await started(path, reload_interval=0.05)
    try:
        assert ext.authenticate({"authorization": f"Bearer {SHOP}"}).tenant == "shop"
        write_keys(path, [entry("lab", "lab", "full", LAB)])  # SHOP revoked, LAB added
        for _ in range(100):
            await asyncio.sleep(0.05)
            try:
                ext.authenticate({"authorization": f"Bearer {LAB}"})
                break
            except UnauthenticatedError:
                continue
        assert ext.authenticate({"authorization": f"Bearer {LAB}"}).tenant == "lab"
        with pytest.raises(UnauthenticatedError):
            ext.authenticate({"authorization": f"Bearer {SHOP}"})
        path.write_text("keys: [ {name: broken")  # a half-written file
        await asyncio.sleep(0.3)
        assert ext.authenticate({"authorization": f"Bearer {LAB}"}).tenant == "lab"
    finally:
        await ext.shutdown()


async def test_keys_from_an_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACEHOUSE_API_KEYS", json.dumps({"keys": [entry("shop", "shop", "read", SHOP)]}))
    ext = BearerTokenAuthExtension(Settings(ComponentID("bearertokenauth"), Kind.EXTENSION), BearerTokenAuthConfig())
    await ext.start(TestHost())
    assert ext.authenticate({"authorization": f"Bearer {SHOP}"}).kind is KeyKind.READ
    await ext.shutdown()
    monkeypatch.delenv("TRACEHOUSE_API_KEYS")
    with pytest.raises(RuntimeError, match="TRACEHOUSE_API_KEYS .* is not set"):
        await BearerTokenAuthExtension(Settings(ComponentID("bearertokenauth"), Kind.EXTENSION),
                                       BearerTokenAuthConfig()).start(TestHost())


@pytest.mark.parametrize(("text", "message"), [
    ("keys: {a: 1}", "expected a mapping with a `keys:` list"),
    ("keys: [{name: a, tenant: shop}]", "keys\\[0\\]: missing sha256"),
    (f"keys: [{{name: a, tenant: shop, sha256: {SHOP}}}]", "sha256 must be 64 hex digits \\(the digest, never the key"),
    (f"keys: [{{name: a, tenant: Shop!, sha256: {digest(SHOP)}}}]", "tenant 'Shop!' must be"),
    (f"keys: [{{name: a, tenant: shop, kind: admin, sha256: {digest(SHOP)}}}]", "kind must be one of"),
    (f"keys: [{{name: a, tenant: shop, sha256: {digest(SHOP)}}}, {{name: b, tenant: lab, sha256: {digest(SHOP)}}}]",
     "the same key is listed twice"),
    ("keys: []\ntenants: {shop: {spans_per_second: -1}}", "tenants.shop.spans_per_second: must be a number"),
    ("keys: []\nusers: []", "unknown top-level keys \\['users'\\]"),
], ids=["not a mapping", "no sha256", "a key, not its digest", "bad tenant", "bad kind", "a key twice", "bad limit",
        "unknown key"])  # the same ids in every process (pytest-xdist): no random key in them
def test_a_bad_key_file_says_which_entry_and_what(text: str, message: str) -> None:
    with pytest.raises(KeyFileError, match=message):
        parse_key_file(text, "keys.yaml")


def test_a_tenant_over_its_limit_waits_and_other_tenants_do_not() -> None:
    now = [100.0]
    limiter = TenantLimiter(clock=lambda: now[0])
    limiter.configure({"shop": TenantLimits(spans_per_second=100, bytes_per_second=1e6)})
    limiter.admit("shop", 150, 1000)  # one request may take more than a second's worth, once
    with pytest.raises(RetryableError, match="'shop' is over its limit of 100 spans/s") as over:
        limiter.admit("shop", 1, 10)
    assert over.value.overload and over.value.retry_after == pytest.approx(0.5)
    limiter.admit("lab", 10**9, 10**12)  # no limits configured: never refused
    now[0] += 0.6  # the debt (50 spans) is paid off at 100 spans/s
    limiter.admit("shop", 1, 10)
    with pytest.raises(RetryableError, match="bytes/s"):
        limiter.admit("shop", 0, 2_000_000) or limiter.admit("shop", 0, 1)
