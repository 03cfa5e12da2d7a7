"""The `bearertokenauth` extension: who is calling, from `Authorization: Bearer <key>`.

Receivers (`protocols.grpc.auth`, `protocols.http.auth`) and the query API (`auth`) name
it as their authenticator. It holds the key file's digests and the tenants' limits,
reloads the file when it changes (a broken file keeps the keys that were loaded, and
says why), and never logs a key.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import os
from collections.abc import Mapping
from pathlib import Path

from tracehouse.core.auth import Principal
from tracehouse.core.component import Host, Settings
from tracehouse.core.errors import UnauthenticatedError
from tracehouse.extensions.bearertokenauth.config import BearerTokenAuthConfig
from tracehouse.extensions.bearertokenauth.keys import KeyFileError, KeySet, parse_key_file
from tracehouse.extensions.bearertokenauth.limits import TenantLimiter


class BearerTokenAuthExtension:
    def __init__(self, settings: Settings, config: BearerTokenAuthConfig):
        self._settings = settings
        self._config = config
        self._log = settings.logger
        self._keys = KeySet()
        self._limiter = TenantLimiter()
        self._mtime: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._scheme = config.scheme.lower()

    # -- loading ---------------------------------------------------------------------
    async def start(self, host: Host) -> None:
        self._load(initial=True)
        if self._config.filename:
            self._task = asyncio.create_task(self._watch(), name=f"reload-{self._settings.id}")

    def _read(self) -> tuple[str, str, float | None]:
        cfg = self._config
        if cfg.filename:
            path = Path(cfg.filename)
            try:
                return path.read_text(), str(path), path.stat().st_mtime
            except OSError as exc:
                raise KeyFileError(f"cannot read the key file {cfg.filename}: {exc.strerror}") from None
        text = os.environ.get(cfg.env)
        if text is None:
            raise KeyFileError(f"environment variable {cfg.env} (the keys) is not set")
        return text, f"${cfg.env}", None

    def _load(self, *, initial: bool) -> None:
        try:
            text, source, mtime = self._read()
            keys = parse_key_file(text, source)
        except KeyFileError as exc:
            if initial:
                raise RuntimeError(str(exc)) from None
            self._log.error("key file not reloaded; the keys loaded before stay in use", error=str(exc))
            return
        self._keys, self._mtime = keys, mtime
        self._limiter.configure(keys.limits)
        self._log.info("API keys loaded", source=source, keys=len(keys.keys), tenants=sorted(keys.tenants),
                       limited_tenants=sorted(keys.limits))

    async def _watch(self) -> None:
        assert self._config.filename
        path = Path(self._config.filename)
        while True:
            await asyncio.sleep(self._config.reload_interval)
            try:
                mtime = path.stat().st_mtime
            except OSError:
                mtime = None
            if mtime != self._mtime:
                self._load(initial=False)
                self._mtime = mtime

    # -- ServerAuthenticator ---------------------------------------------------------
    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        value = headers.get(self._config.header)
        if not value:
            raise UnauthenticatedError(f"missing API key: send the header '{self._config.header}: "
                                       f"{self._config.scheme} <key>'{self._or_basic}")
        found = self._keys.lookup(self.credential(value))
        if found is None:
            raise UnauthenticatedError("invalid API key")
        return Principal(found.tenant, found.kind, found.name)

    @property
    def _or_basic(self) -> str:
        return " (or 'Basic base64(<any user>:<key>)')" if self._config.basic else ""

    def credential(self, value: str) -> str:
        """The API key a header value presents: `<scheme> <key>`, or with `basic`, the
        password of `Basic base64(user:password)` (the user name is not used: the key alone
        names the tenant). UnauthenticatedError, saying what is wrong, for anything else."""
        scheme, _, rest = value.strip().partition(" ")
        rest = rest.strip()
        if scheme.lower() == self._scheme and rest:
            return rest
        if self._config.basic and scheme.lower() == "basic":
            return basic_password(rest)
        raise UnauthenticatedError(
            f"the {self._config.header} header must be '{self._config.scheme} <key>'{self._or_basic}")

    def admit(self, tenant: str, spans: int, nbytes: int) -> None:
        """Take a request's spans and bytes from the tenant's limits; RetryableError (429)
        when the tenant is over them."""
        self._limiter.admit(tenant, spans, nbytes)

    async def shutdown(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def basic_password(credentials: str) -> str:
    """The password of HTTP Basic credentials (RFC 7617: base64 of `user:password`, UTF-8).

    Only the password is returned: it is where clients put their secret (Langfuse's secret
    key, MLflow's MLFLOW_TRACKING_PASSWORD). Malformed credentials raise
    UnauthenticatedError naming the problem, never echoing what was sent."""
    if not credentials:
        raise UnauthenticatedError("Basic credentials are empty: send 'Basic base64(<user>:<key>)'")
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise UnauthenticatedError("Basic credentials are not base64 of UTF-8 '<user>:<key>'") from None
    user, colon, password = decoded.partition(":")
    if not colon:
        raise UnauthenticatedError("Basic credentials have no ':': send base64(<user>:<key>) with the API key "
                                   "as the password")
    if not password:
        raise UnauthenticatedError("Basic credentials have an empty password: the API key goes in the password "
                                   "(Langfuse: the secret key; MLflow: MLFLOW_TRACKING_PASSWORD)")
    return password
