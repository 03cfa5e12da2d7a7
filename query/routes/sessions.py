"""`GET /api/v1/sessions`: conversations grouped by session id, from the per-trace rollup.
One session's turns are the traces of `GET /api/v1/traces?session=<id>`."""

import time
from typing import Annotated

from fastapi import APIRouter, Query

from tracehouse.query.config import QueryApiConfig
from tracehouse.query.errors import ERROR_RESPONSES, ApiError
from tracehouse.query.models import SessionListResponse, SessionSummary
from tracehouse.query.params import NS, parse_time_ns
from tracehouse.query.rows import format_ns
from tracehouse.query.store import TraceStore

MAX_SESSIONS = 1000


def sessions_router(store: TraceStore, settings: QueryApiConfig) -> APIRouter:
    lookback_ns = int(settings.default_lookback * NS)
    router = APIRouter(tags=["sessions"])

    @router.get("/api/v1/sessions", response_model=SessionListResponse, responses=ERROR_RESPONSES)
    async def list_sessions(
        start: Annotated[str | None, Query(
            description="Sessions with a turn starting at or after this: RFC 3339 or unix seconds. "
                        "Default: `end` minus the configured lookback (1h).")] = None,
        end: Annotated[str | None, Query(description="... and before this (exclusive). Default: now.")] = None,
        user: Annotated[str | None, Query(description="Only this user's sessions.")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_SESSIONS, description="Sessions to return.")] = 100,
    ) -> SessionListResponse:
        """Conversations: per session id, its turns (traces) in the range, their tokens, cost
        and errors, and its user. Reads the per-trace rollup, never the spans table."""
        end_ns = parse_time_ns(end, "end") if end else time.time_ns()
        start_ns = parse_time_ns(start, "start") if start else max(0, end_ns - lookback_ns)
        if start_ns >= end_ns:
            raise ApiError(400, "start: must be before end", "start")
        rows = await store.sessions(start_ns, end_ns, user or "", limit)
        sessions = [SessionSummary(
            session_id=r["session_id"], user_id=r["user_id"], turns=int(r["turns"]),
            first_time=format_ns(int(r["first_ns"])), last_time=format_ns(int(r["last_ns"])),
            input_tokens=int(r["input_tokens"]), output_tokens=int(r["output_tokens"]),
            cost_usd=float(r["cost_usd"]), error_spans=int(r["error_spans"])) for r in rows]
        return SessionListResponse(sessions=sessions, total=int(rows[0]["total_sessions"]) if rows else 0,
                                   start=format_ns(start_ns), end=format_ns(end_ns))

    return router
