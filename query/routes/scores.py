"""`POST /api/v1/scores` (one score or a list), `GET /api/v1/scores?trace_id=` and
`DELETE /api/v1/scores/{score_id}`: judgements on traces and spans, written into the one
scores table (sinks/clickhouse/scores.py) that MLflow assessments and evaluation events fill too.

Writing needs a key that may send data (`ingest` or `full`), as the MLflow endpoint's
assessment routes do: an evaluation job holds such a key; `read` keys get 403. A score may
arrive before the spans it judges (no existence check): it shows once they do.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse

from tracehouse.core.auth import Principal
from tracehouse.query.access import OPEN, Access
from tracehouse.query.errors import ERROR_RESPONSES, ApiError
from tracehouse.query.models import ErrorResponse, ScoreDeletedResponse, ScoresResponse, ScoresWrittenResponse
from tracehouse.query.params import parse_trace_id
from tracehouse.query.rows import score_from_row
from tracehouse.query.scores import (
    FIELDS,
    MAX_BODY_BYTES,
    MAX_SCORES_PER_REQUEST,
    SCORE_ID_RE,
    NewScore,
    parse_scores_body,
)
from tracehouse.query.store import MAX_SCORES, TraceStore

_SPAN_ID_LENGTH = 16

_BODY_SCHEMA = {
    "description": f"A score, or a list of at most {MAX_SCORES_PER_REQUEST}. Fields: " + ", ".join(
        f"`{f}`" for f in FIELDS) + ". Required: `trace_id` (32 hex), `name`, `value` (a number, true/false, or "
    "a category string: the data type follows, and a `data_type` given must agree). Optional: `span_id` (16 hex; "
    "none = the whole trace), `comment`, `source` (`human`, `llm_judge` or `code`), `author`, `timestamp` (RFC "
    "3339 or unix seconds; default now), `kind` (`feedback`, `expectation`), `metadata` (string values), `run_id`, "
    "and `score_id`, the idempotency id (default: derived from the score's content).",
    "required": True,
    "content": {"application/json": {"schema": {"oneOf": [{"type": "object"}, {"type": "array",
                                                                                "items": {"type": "object"}}]}}},
}


def scores_router(store: TraceStore, access: Access = OPEN) -> APIRouter:
    router = APIRouter(tags=["scores"])

    @router.post("/api/v1/scores", status_code=201, response_model=ScoresWrittenResponse,
                 openapi_extra={"requestBody": _BODY_SCHEMA},
                 responses={**ERROR_RESPONSES,
                            403: {"model": ErrorResponse, "description": "A `read` key: it may not write."},
                            409: {"model": ErrorResponse,
                                  "description": "A `score_id` that is already another trace's score."},
                            413: {"model": ErrorResponse, "description": f"A body over {MAX_BODY_BYTES} bytes."}})
    async def post_scores(request: Request, principal: Annotated[Principal, Depends(access.ingest)]) -> JSONResponse:
        """Store scores: a judgement (numeric, boolean or categorical) on a trace or one of its
        spans. Idempotent: a score sent again with the same `score_id` (the caller's, or the
        one derived from its content when none is given) replaces the stored one, so it is
        shown and counted once; sent again without a `timestamp`, it keeps its first time."""
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
            raise ApiError(413, f"body: larger than {MAX_BODY_BYTES} bytes", "body")
        scores = parse_scores_body(await _read_body(request))
        await _keep_identity(store, scores, principal.tenant)
        await store.write_scores([s.row for s in scores], tenant=principal.tenant)
        return JSONResponse(ScoresWrittenResponse(score_ids=[s.row["ScoreId"] for s in scores]).model_dump(),
                            status_code=201)

    @router.get("/api/v1/scores", response_model=ScoresResponse, responses=ERROR_RESPONSES)
    async def get_scores(
        principal: Annotated[Principal, Depends(access.read)],
        trace_id: Annotated[str, Query(description="The trace: 32 hex characters.")],
        span_id: Annotated[str | None, Query(description="Only the scores of this span (16 hex).")] = None,
        name: Annotated[str | None, Query(description="Only scores of this name.")] = None,
    ) -> ScoresResponse:
        """The live scores of a trace (on it and its spans), oldest first."""
        tid = parse_trace_id(trace_id)
        sid = (span_id or "").lower()
        if sid and (len(sid) != _SPAN_ID_LENGTH or any(c not in "0123456789abcdef" for c in sid)):
            raise ApiError(400, f"span_id: expected 16 hex characters, got {span_id!r}", "span_id")
        rows = await store.trace_scores(tid, MAX_SCORES, span_id=sid, name=name or "", tenant=principal.tenant)
        return ScoresResponse(trace_id=tid, scores=[score_from_row(r) for r in rows])

    @router.delete("/api/v1/scores/{score_id}", response_model=ScoreDeletedResponse,
                   responses={**ERROR_RESPONSES,
                              403: {"model": ErrorResponse, "description": "A `read` key: it may not write."},
                              404: {"model": ErrorResponse, "description": "No live score has this id."}})
    async def delete_score(
        principal: Annotated[Principal, Depends(access.ingest)],
        score_id: Annotated[str, Path(description="The score's id (`score_id`).")],
    ) -> ScoreDeletedResponse:
        """Delete a score: it leaves the trace, the search filters and the rollups at once."""
        if not SCORE_ID_RE.match(score_id):
            raise ApiError(404, f"score {score_id!r} not found")
        if not await store.delete_score(score_id, tenant=principal.tenant):
            raise ApiError(404, f"score {score_id!r} not found")
        return ScoreDeletedResponse(score_id=score_id)

    return router


async def _read_body(request: Request) -> bytes:
    """The body, refused (413) as soon as it passes the limit."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ApiError(413, f"body: larger than {MAX_BODY_BYTES} bytes", "body")
        chunks.append(chunk)
    return b"".join(chunks)


async def _keep_identity(store: TraceStore, scores: list[NewScore], tenant: str) -> None:
    """A re-sent score stays the score it was: 409 when its id belongs to another trace's
    score; without a `timestamp` of its own, it keeps the stored one's time."""
    stored = {r["ScoreId"]: r for r in await store.scores_by_id([s.row["ScoreId"] for s in scores], tenant=tenant)}
    for i, score in enumerate(scores):
        old = stored.get(score.row["ScoreId"])
        if old is None:
            continue
        if old["TraceId"] != score.row["TraceId"]:
            field = f"scores[{i}].score_id" if len(scores) > 1 else "score_id"
            raise ApiError(409, f"{field}: {score.row['ScoreId']!r} is already a score of trace {old['TraceId']}",
                           field)
        if not score.timed:
            score.row["Timestamp"] = old["Timestamp"]
