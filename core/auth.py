"""Authentication and tenants: what a receiver or the query API learns from a request.

Modelled on the Collector's server authenticators (`extensionauth.Server`): a component
names an authenticator extension in its config (`auth: {authenticator: bearertokenauth}`)
and asks it, per request, who is calling. The answer is a `Principal`: the tenant every
span of the request belongs to, and the kind of key (what it may do).

Without an authenticator everything belongs to `DEFAULT_TENANT`: the all-in-one on a
laptop keeps working with no keys.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from pydantic import field_validator

from tracehouse.core.component import ComponentConfig, ComponentID, Host
from tracehouse.core.errors import PermissionDeniedError
from tracehouse.core.pdata import DEFAULT_TENANT

# The resource attribute carrying the tenant on Kafka records (beside the record header).
TENANT_ATTRIBUTE = "tracehouse.tenant"
TENANT_HEADER = "tracehouse-tenant"


class KeyKind(enum.StrEnum):
    """What a key may do. `ingest`: send telemetry (spans, MLflow tracking data, scores).
    `read`: read through the query API and UI (dashboards). `full`: both, and delete traces."""

    INGEST = "ingest"
    READ = "read"
    FULL = "full"


class Action(enum.StrEnum):
    INGEST = "ingest"
    READ = "read"
    WRITE = "write"


_ALLOWED = {
    KeyKind.INGEST: {Action.INGEST},
    KeyKind.READ: {Action.READ},
    KeyKind.FULL: {Action.INGEST, Action.READ, Action.WRITE},
}


@dataclass(frozen=True, slots=True)
class Principal:
    tenant: str
    kind: KeyKind
    key_name: str  # the key's name from the key file, for logs; never the secret

    def require(self, action: Action) -> None:
        if action not in _ALLOWED[self.kind]:
            raise PermissionDeniedError(
                f"key {self.key_name!r} is a {self.kind.value} key; it cannot {action.value}")


ANONYMOUS = Principal(DEFAULT_TENANT, KeyKind.FULL, "(no authentication)")


@runtime_checkable
class ServerAuthenticator(Protocol):
    """An extension that authenticates requests from their headers (HTTP headers or gRPC
    metadata, names lower-case). Raises UnauthenticatedError with a message for the client."""

    def authenticate(self, headers: Mapping[str, str]) -> Principal: ...

    def admit(self, tenant: str, spans: int, nbytes: int) -> None:
        """Count a request against the tenant's limits; RetryableError (overload) when over."""


class AuthConfig(ComponentConfig):
    """`auth:` under a listener: the authenticator extension's id."""

    authenticator: str

    @field_validator("authenticator")
    @classmethod
    def _id(cls, v: str) -> str:
        ComponentID.parse(v)
        return v


def resolve_authenticator(host: Host, config: AuthConfig | None) -> ServerAuthenticator | None:
    """The authenticator `config` names, from the running service's extensions."""
    if config is None:
        return None
    cid = ComponentID.parse(config.authenticator)
    found = host.extension(cid)
    if found is None:
        raise RuntimeError(f"authenticator {config.authenticator!r} is not a running extension: "
                           f"add it under `extensions:` and list it in `service.extensions`")
    if not isinstance(found, ServerAuthenticator):
        raise RuntimeError(f"extension {config.authenticator!r} is not an authenticator")
    return found


__all__ = ["ANONYMOUS", "DEFAULT_TENANT", "TENANT_ATTRIBUTE", "TENANT_HEADER", "Action", "AuthConfig", "KeyKind",
           "Principal", "ServerAuthenticator", "resolve_authenticator"]
