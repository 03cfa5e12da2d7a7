"""Config of the `bearertokenauth` extension (keys after the Collector's bearertokenauth)."""

from __future__ import annotations

import re

from pydantic import field_validator

from tracehouse.core.component import ComponentConfig
from tracehouse.core.config import Duration


class BearerTokenAuthConfig(ComponentConfig):
    # The key file (YAML, see keys.py): hashed keys and per-tenant limits, reloaded on change.
    filename: str | None = None
    # Without `filename`: the environment variable holding the same YAML (read at start).
    env: str = "TRACEHOUSE_API_KEYS"
    # How often the key file is checked for changes.
    reload_interval: Duration = 10.0
    # `Authorization: Bearer <key>`; gRPC metadata `authorization` alike.
    header: str = "authorization"
    scheme: str = "Bearer"
    # Also take `Authorization: Basic base64(user:key)`: the password is the API key, the
    # user name is not used (Langfuse SDKs send `public_key:secret_key`, MLflow clients
    # MLFLOW_TRACKING_USERNAME/PASSWORD). See the README's "Basic authentication".
    basic: bool = True

    @field_validator("header")
    @classmethod
    def _header(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9-]+", v):
            raise ValueError("must be an HTTP header name")
        return v.lower()

    @field_validator("scheme")
    @classmethod
    def _scheme(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", v):
            raise ValueError("must be an HTTP authentication scheme (one token, e.g. Bearer)")
        if v.lower() == "basic":
            raise ValueError("'Basic' is not a key scheme: Basic credentials are read with `basic: true` "
                             "(the password is the key)")
        return v

    @field_validator("reload_interval")
    @classmethod
    def _interval(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("must be greater than zero")
        return v
