"""API keys: minted once, stored only as SHA-256 digests, looked up by digest.

The key file (YAML) is all the server knows:

    keys:
      - name: shop-ingest        # for logs; never the secret
        tenant: shop             # `default`: the tenant of data sent before keys existed
        kind: ingest             # ingest | read | full
        sha256: 5e884898da28...  # hex digest of the key, from `tracehouse keys create`
    tenants:                     # optional per-tenant limits; absent: unlimited
      shop: {spans_per_second: 20000, bytes_per_second: 20000000}

A presented key is hashed and looked up by its digest: the digest is a one-way function
of a 256-bit random secret, so neither the lookup's timing nor a leaked file reveals a key.
The match is confirmed with `hmac.compare_digest`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

import yaml

from tracehouse.core.auth import KeyKind
from tracehouse.core.pdata import DEFAULT_TENANT

KEY_PREFIX = "thk_"
# The key file's name for the default tenant (stored as the empty string).
DEFAULT_TENANT_NAME = "default"
TENANT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")


class KeyFileError(ValueError):
    """The key file cannot be used; the message names the entry and the problem."""


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True, slots=True)
class ApiKey:
    name: str
    tenant: str
    kind: KeyKind
    sha256: str


@dataclass(frozen=True, slots=True)
class TenantLimits:
    spans_per_second: float | None = None
    bytes_per_second: float | None = None


@dataclass(frozen=True, slots=True)
class KeySet:
    keys: dict[str, ApiKey] = field(default_factory=dict)  # by digest
    limits: dict[str, TenantLimits] = field(default_factory=dict)

    def lookup(self, key: str) -> ApiKey | None:
        presented = digest(key)
        found = self.keys.get(presented)
        if found is None or not hmac.compare_digest(found.sha256, presented):
            return None
        return found

    @property
    def tenants(self) -> set[str]:
        return {k.tenant for k in self.keys.values()}


def parse_key_file(text: str, source: str) -> KeySet:
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise KeyFileError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("keys", []), list):
        raise KeyFileError(f"{source}: expected a mapping with a `keys:` list")
    unknown = set(doc) - {"keys", "tenants"}
    if unknown:
        raise KeyFileError(f"{source}: unknown top-level keys {sorted(unknown)}; expected `keys` and `tenants`")
    keys: dict[str, ApiKey] = {}
    names: set[str] = set()
    for i, entry in enumerate(doc.get("keys") or []):
        key = _key(entry, f"{source}: keys[{i}]")
        if key.sha256 in keys:
            raise KeyFileError(f"{source}: keys[{i}] ({key.name}): the same key is listed twice")
        if key.name in names:
            raise KeyFileError(f"{source}: keys[{i}]: the name {key.name!r} is used twice")
        keys[key.sha256] = key
        names.add(key.name)
    limits = {tenant: _limits(value, f"{source}: tenants.{tenant}")
              for tenant, value in (doc.get("tenants") or {}).items()}
    return KeySet(keys, limits)


def _key(entry: Any, where: str) -> ApiKey:
    if not isinstance(entry, dict):
        raise KeyFileError(f"{where}: expected a mapping with name, tenant, kind and sha256")
    missing = [k for k in ("name", "tenant", "sha256") if not entry.get(k)]
    if missing:
        raise KeyFileError(f"{where}: missing {', '.join(missing)}")
    extra = set(entry) - {"name", "tenant", "kind", "sha256"}
    if extra:
        raise KeyFileError(f"{where}: unknown fields {sorted(extra)}")
    tenant = str(entry["tenant"])
    if not TENANT_RE.match(tenant):
        raise KeyFileError(f"{where}: tenant {tenant!r} must be 1-63 lower-case letters, digits, '-' or '_'")
    if tenant == DEFAULT_TENANT_NAME:
        tenant = DEFAULT_TENANT  # the data sent before keys were configured
    sha = str(entry["sha256"]).lower()
    if not _DIGEST_RE.match(sha):
        raise KeyFileError(f"{where}: sha256 must be 64 hex digits (the digest, never the key itself)")
    try:
        kind = KeyKind(str(entry.get("kind", "full")))
    except ValueError:
        raise KeyFileError(f"{where}: kind must be one of {[k.value for k in KeyKind]}") from None
    return ApiKey(str(entry["name"]), tenant, kind, sha)


def _limits(value: Any, where: str) -> TenantLimits:
    if not isinstance(value, dict) or set(value) - {"spans_per_second", "bytes_per_second"}:
        raise KeyFileError(f"{where}: expected spans_per_second and/or bytes_per_second")
    out = {}
    for name, v in value.items():
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0:
            raise KeyFileError(f"{where}.{name}: must be a number greater than zero")
        out[name] = float(v)
    return TenantLimits(**out)
