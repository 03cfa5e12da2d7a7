"""MLflow's REST error shape: `{"error_code": ..., "message": ...}` with its HTTP status.

MLflow clients branch on `error_code` (RESOURCE_DOES_NOT_EXIST makes `set_experiment`
create the experiment; ENDPOINT_NOT_FOUND makes optional features degrade), so the codes
are MLflow's own.
"""

from __future__ import annotations

STATUS = {
    "INVALID_PARAMETER_VALUE": 400,
    "BAD_REQUEST": 400,
    "MALFORMED_REQUEST": 400,
    "RESOURCE_ALREADY_EXISTS": 400,
    "INVALID_STATE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "RESOURCE_DOES_NOT_EXIST": 404,
    "ENDPOINT_NOT_FOUND": 404,
    "REQUEST_LIMIT_EXCEEDED": 429,
    "RESOURCE_EXHAUSTED": 413,
    "TEMPORARILY_UNAVAILABLE": 503,
    "INTERNAL_ERROR": 500,
}


class MlflowError(Exception):
    def __init__(self, code: str, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after

    @property
    def status(self) -> int:
        return STATUS.get(self.code, 500)

    def body(self) -> dict[str, str]:
        return {"error_code": self.code, "message": self.message}


def not_found(what: str) -> MlflowError:
    return MlflowError("RESOURCE_DOES_NOT_EXIST", what)


def invalid(message: str) -> MlflowError:
    return MlflowError("INVALID_PARAMETER_VALUE", message)
