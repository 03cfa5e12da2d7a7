"""The one table both OTLP receivers answer refusals from."""

from __future__ import annotations

import pytest
from google.rpc import code_pb2

from tracehouse.core.errors import BadRequestError, PayloadTooLargeError, PermanentError, RetryableError
from tracehouse.ingest.otlp.errors import Refusal, refusal_for


@pytest.mark.parametrize(("exc", "expected"), [
    (RetryableError("down"), Refusal(503, code_pb2.UNAVAILABLE, "unavailable", 1.0, "down")),
    (RetryableError("down", retry_after=2.5), Refusal(503, code_pb2.UNAVAILABLE, "unavailable", 2.5, "down")),
    (RetryableError("full", overload=True), Refusal(429, code_pb2.RESOURCE_EXHAUSTED, "overload", 1.0, "full")),
    (RetryableError("full", overload=True, retry_after=7.0),
     Refusal(429, code_pb2.RESOURCE_EXHAUSTED, "overload", 7.0, "full")),
    (PayloadTooLargeError("big"), Refusal(413, code_pb2.RESOURCE_EXHAUSTED, "too_large", None, "big")),
    (BadRequestError("bad"), Refusal(400, code_pb2.INVALID_ARGUMENT, "bad_request", None, "bad")),
    (PermanentError("never"), Refusal(400, code_pb2.INVALID_ARGUMENT, "permanent", None, "never")),
    (ValueError("bug"), Refusal(503, code_pb2.UNAVAILABLE, "internal", 5.0, "internal error: bug")),
])
def test_each_pipeline_error_has_one_answer_for_http_and_grpc(exc: Exception, expected: Refusal) -> None:
    assert refusal_for(exc) == expected
