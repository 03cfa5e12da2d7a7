"""`GET /api/v1/sessions`: conversations grouped by session id, from the per-trace rollup.
One session's turns are the traces of `GET /api/v1/traces?session=<id>`."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from tracehouse.core.auth import Principal
from tracehouse.query.access import OPEN, Access
from tracehouse.query.config import QueryApiConfig
from tracehouse.query.errors import ERROR_RESPONSES
from tracehouse.query.models import SessionListResponse
from tracehouse.query.params import NS, parse_range
from tracehouse.query.rows import format_ns, session_from_row
from tracehouse.query.store import TraceStore

MAX_SESSIONS = 1000


def sessions_router(store: TraceStore, settings: QueryApiConfig, access: Access = OPEN) -> APIRouter:
    lookback_ns = int(settings.default_lookback * NS)
    router = APIRouter(tags=["sessions"])

    @router.get("/api/v1/sessions", response_model=SessionListResponse, responses=ERROR_RESPONSES)
    async def list_sessions(
        principal: Annotated[Principal, Depends(access.read)],
        start: Annotated[str | None, Query(
            description="Sessions with a turn starting at or after this: RFC 3339 or unix seconds. "
                        "Default: `end` minus the configured lookback (1h).")] = None,
        end: Annotated[str | None, Query(description="... and before this (exclusive). Default: now.")] = None,
        user: Annotated[str | None, Query(description="Only this user's sessions.")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_SESSIONS, description="Sessions to return.")] = 100,
    ) -> SessionListResponse:
        """Conversations: per session id, its turns (traces) in the range, their tokens, cost
        and errors, and its user. Reads the per-trace rollup, never the spans table."""
        start_ns, end_ns = parse_range(start, end, lookback_ns)
        rows = await store.sessions(start_ns, end_ns, user or "", limit, tenant=principal.tenant)
        return SessionListResponse(sessions=[session_from_row(r) for r in rows], total=int(rows[0]["total_sessions"]) if rows else 0,
                                   start=format_ns(start_ns), end=format_ns(end_ns))

    return router
