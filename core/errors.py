"""Typed pipeline errors; receivers map them to protocol status codes.

Mirrors the Collector's consumererror: an error is retryable unless marked permanent,
and receivers never retry themselves: they pass the verdict on to the client.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base of every error a consumer may raise."""


class RetryableError(PipelineError):
    """Transient failure: the sender should retry, after `retry_after` seconds if set.

    `overload` marks refusals caused by back-pressure (memory limit, full queue), which
    the receivers answer with HTTP 429 / gRPC RESOURCE_EXHAUSTED + RetryInfo instead of
    503 / UNAVAILABLE.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, overload: bool = False):
        super().__init__(message)
        self.retry_after = retry_after
        self.overload = overload


class PermanentError(PipelineError):
    """The data can never be accepted; retrying the same payload is pointless."""


class BadRequestError(PermanentError):
    """The payload itself is malformed (HTTP 400 / gRPC INVALID_ARGUMENT)."""


class PayloadTooLargeError(PermanentError):
    """The payload is over a configured size limit (HTTP 413 / gRPC RESOURCE_EXHAUSTED)."""


class ConfigError(Exception):
    """A configuration problem, with the key path it concerns (`exporters::clickhouse::endpoint`)."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.reason = message


class UnauthenticatedError(PermanentError):
    """No credentials, or credentials no key matches (HTTP 401 / gRPC UNAUTHENTICATED)."""


class PermissionDeniedError(PermanentError):
    """A valid key whose kind does not allow this action (HTTP 403 / gRPC PERMISSION_DENIED)."""
