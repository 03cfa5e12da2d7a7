"""Who may call the query API: the same API keys as the receivers, one tenant's data.

With an authenticator (`query_api.auth`), every API route needs `Authorization: Bearer
<key>`: `read` and `full` keys read their tenant's data, `full` keys may also change it
(delete a trace); `ingest` keys may not read. Scores are data a client sends: `ingest` and
`full` keys write and delete them (`POST`/`DELETE /api/v1/scores`), as on the MLflow endpoint. Without one, every caller is the default
tenant's, as the all-in-one on a laptop is. Health probes never need a key; `/metrics`
does when `metrics_auth` is on. The UI's page and scripts carry no data and stay open:
the page asks for a key when the API answers 401.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request, Security
from fastapi.security import HTTPBearer

from tracehouse.core.auth import ANONYMOUS, Action, Principal, ServerAuthenticator
from tracehouse.core.errors import PermissionDeniedError, UnauthenticatedError

# Declared for the OpenAPI document (the "Authorize" button); the check itself is ours.
_BEARER = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`.")

Dependency = Callable[..., Awaitable[Principal]]


class AccessError(Exception):
    """401 or 403; the app's and the Jaeger routes' error handlers answer it in their shape."""

    def __init__(self, code: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.headers = headers


class Access:
    def __init__(self, authenticator: ServerAuthenticator | None):
        self.authenticator = authenticator
        self.read = self._requires(Action.READ)
        self.write = self._requires(Action.WRITE)
        self.ingest = self._requires(Action.INGEST)

    def principal(self, request: Request, action: Action) -> Principal:
        if self.authenticator is None:
            return ANONYMOUS
        try:
            principal = self.authenticator.authenticate(request.headers)
            principal.require(action)
        except UnauthenticatedError as exc:
            raise AccessError(401, str(exc), {"www-authenticate": 'Bearer realm="tracehouse"'}) from None
        except PermissionDeniedError as exc:
            raise AccessError(403, str(exc)) from None
        return principal

    def _requires(self, action: Action) -> Dependency:
        async def dependency(request: Request, _credentials: object = Security(_BEARER)) -> Principal:
            return self.principal(request, action)

        return dependency


OPEN = Access(None)
