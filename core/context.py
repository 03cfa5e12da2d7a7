"""Per-request context that crosses component boundaries without widening every signature."""

from __future__ import annotations

import time
from contextvars import ContextVar

# Monotonic time by which the client stops waiting (gRPC deadline, HTTP request timeout).
# Exporters stop retrying before it, so the client hears back and can retry itself.
request_deadline: ContextVar[float | None] = ContextVar("request_deadline", default=None)


def remaining(default: float) -> float:
    deadline = request_deadline.get()
    if deadline is None:
        return default
    return max(0.0, min(default, deadline - time.monotonic()))
