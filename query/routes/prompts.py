"""`GET /api/v1/prompts` (the prompt registry, one item per name) and
`GET /api/v1/prompts/{name}` (every version of one prompt, with its usage)."""

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from tracehouse.core.auth import Principal
from tracehouse.query.access import OPEN, Access
from tracehouse.query.errors import ERROR_RESPONSES, ApiError
from tracehouse.query.models import ErrorResponse, PromptDetailResponse, PromptListResponse
from tracehouse.query.params import MINUTE, NS, parse_time_ns
from tracehouse.query.rows import format_ns, prompt_summary_from_row, prompt_versions
from tracehouse.query.store import MAX_DATETIME_S, TraceStore

MAX_PROMPT_LIMIT = 1000


def prompts_router(store: TraceStore, access: Access = OPEN) -> APIRouter:
    router = APIRouter(tags=["prompts"])

    @router.get("/api/v1/prompts", response_model=PromptListResponse, responses=ERROR_RESPONSES)
    async def list_prompts(
        principal: Annotated[Principal, Depends(access.read)],
        q: Annotated[str | None, Query(description="Only names containing this (case-insensitive).")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PROMPT_LIMIT, description="Prompts per page.")] = 100,
        offset: Annotated[int, Query(ge=0, le=2**63 - 1, description="Prompts to skip (by name order).")] = 0,
    ) -> PromptListResponse:
        """The prompt registry, one item per name: versions, latest version, first/last use and
        all-time usage. Reads the registry table and the usage rollup (never the spans table)."""
        rows = await store.prompt_list(q or "", limit, offset, tenant=principal.tenant)
        if rows:
            total = int(rows[0]["total_names"])
        elif offset:  # past the last page: count without it
            first = await store.prompt_list(q or "", 1, 0, tenant=principal.tenant)
            total = int(first[0]["total_names"]) if first else 0
        else:
            total = 0
        return PromptListResponse(prompts=[prompt_summary_from_row(r) for r in rows], total=total,
                                  limit=limit, offset=offset)

    @router.get("/api/v1/prompts/{name:path}", response_model=PromptDetailResponse,
                responses={**ERROR_RESPONSES, 404: {"model": ErrorResponse,
                                                    "description": "No registry entry and no use of this prompt."}})
    async def get_prompt(
        principal: Annotated[Principal, Depends(access.read)],
        name: Annotated[str, Path(description="The prompt name, URL-encoded (dots, dashes and slashes allowed).")],
        start: Annotated[str | None, Query(
            description="Count usage from this time (RFC 3339 or unix seconds, rounded down to the minute). "
                        "Default: all time.")] = None,
        end: Annotated[str | None, Query(
            description="Count usage before this time (rounded up to the minute). Default: all time.")] = None,
    ) -> PromptDetailResponse:
        """Every version of a prompt: template, registration, first/last use and usage (cost,
        tokens, latency) per version; versions seen in use but never registered are included
        with a null template."""
        start_ns = parse_time_ns(start, "start") if start else None
        end_ns = parse_time_ns(end, "end") if end else None
        if start_ns is not None and end_ns is not None and start_ns >= end_ns:
            raise ApiError(400, "start: must be before end", "start")
        start_s = 0 if start_ns is None else start_ns // NS // MINUTE * MINUTE
        end_s = MAX_DATETIME_S if end_ns is None else min(MAX_DATETIME_S, -(-end_ns // (MINUTE * NS)) * MINUTE)
        registry, usage = await asyncio.gather(store.prompt_registry(name, tenant=principal.tenant),
                                               store.prompt_usage(name, start_s, end_s, tenant=principal.tenant))
        if not registry and not usage:
            raise ApiError(404, f"prompt {name!r} not found")
        versions = prompt_versions(registry, usage)
        return PromptDetailResponse(
            name=name, latest_version=versions[-1].version, versions=versions,
            start=None if start_ns is None else format_ns(start_s * NS),
            end=None if end_ns is None else format_ns(end_s * NS))

    return router
