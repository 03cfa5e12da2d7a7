"""Pipeline error -> what the OTLP receivers answer: one table for HTTP and gRPC.

Per the OTLP spec's split: retryable refusals are 503 / UNAVAILABLE (429 /
RESOURCE_EXHAUSTED under back-pressure) with Retry-After / RetryInfo; permanent ones are
400 / INVALID_ARGUMENT (413 / RESOURCE_EXHAUSTED for an oversized payload) with no retry
hint. Anything else is a bug, not the client's fault: a retryable answer loses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.rpc import code_pb2

from tracehouse.core.errors import (
    BadRequestError,
    PayloadTooLargeError,
    PermanentError,
    PermissionDeniedError,
    RetryableError,
    UnauthenticatedError,
)


@dataclass(frozen=True, slots=True)
class Refusal:
    """How a refused request is answered."""

    http_status: int
    grpc_code: int  # a google.rpc.Code
    reason: str  # the `reason` label of the refused-spans metric
    # Seconds the client is told to wait (Retry-After, RetryInfo); None: no retry hint.
    retry_after: float | None = None
    message: str = ""


# By error class, looked up along the error's class hierarchy (the most specific row
# wins). A row's message is what goes before the error's text; its retry_after is the
# default a RetryableError's own retry_after overrides.
REFUSALS: dict[type[BaseException], Refusal] = {
    RetryableError: Refusal(503, code_pb2.UNAVAILABLE, "unavailable", retry_after=1.0),
    PayloadTooLargeError: Refusal(413, code_pb2.RESOURCE_EXHAUSTED, "too_large"),
    BadRequestError: Refusal(400, code_pb2.INVALID_ARGUMENT, "bad_request"),
    UnauthenticatedError: Refusal(401, code_pb2.UNAUTHENTICATED, "unauthenticated"),
    PermissionDeniedError: Refusal(403, code_pb2.PERMISSION_DENIED, "permission_denied"),
    PermanentError: Refusal(400, code_pb2.INVALID_ARGUMENT, "permanent"),
    BaseException: Refusal(503, code_pb2.UNAVAILABLE, "internal", retry_after=5.0, message="internal error: "),
}
# A RetryableError marked `overload` (memory limit, full queue). OTLP clients retry
# RESOURCE_EXHAUSTED only when RetryInfo is present, so it always carries one.
OVERLOAD = Refusal(429, code_pb2.RESOURCE_EXHAUSTED, "overload", retry_after=1.0)


def refusal_for(exc: BaseException) -> Refusal:
    """The answer to a request the pipeline refused with `exc`."""
    if isinstance(exc, RetryableError) and exc.overload:
        row = OVERLOAD
    else:
        row = next(REFUSALS[cls] for cls in type(exc).__mro__ if cls in REFUSALS)
    retry_after = row.retry_after
    if retry_after is not None and isinstance(exc, RetryableError) and exc.retry_after:
        retry_after = exc.retry_after
    return Refusal(row.http_status, row.grpc_code, row.reason, retry_after, f"{row.message}{exc}")
