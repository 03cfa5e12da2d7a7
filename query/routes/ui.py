"""The trace explorer's static files: `/` is its page, `/ui/*` its script and styles.

The files ship inside the package (query/ui/), so the UI works offline and needs no Node
toolchain. The content security policy allows scripts from this origin only: even markup
that slipped into the page could not run script.
"""

from importlib import resources

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8"}
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
_ASSETS = ("app.js", "style.css")


def _asset(name: str) -> Response:
    body = resources.files("tracehouse.query.ui").joinpath(name).read_bytes()
    suffix = name[name.rindex("."):]
    return Response(body, media_type=_TYPES[suffix], headers={
        "content-security-policy": _CSP, "x-content-type-options": "nosniff", "cache-control": "no-cache"})


def ui_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def explorer() -> Response:
        return _asset("index.html")

    @router.get("/ui/{name}")
    async def asset(name: str) -> Response:
        if name not in _ASSETS:
            raise HTTPException(404, f"no UI file {name!r}")
        return _asset(name)

    return router
