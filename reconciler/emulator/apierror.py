"""Errors the emulator answers with, in the vendor's code templates and HTTP statuses.

Every failure a client can cause is an `ApiError`; the application turns it into the vendor's JSON
error body `{Code, Message, RequestId, HostId}` with `status` as the HTTP status. Messages name the
parameter or resource and never contain a secret.
"""

from __future__ import annotations


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def missing(param: str) -> ApiError:
    return ApiError(400, f"Missing{param}", f"The input parameter {param} that is mandatory is not supplied.")


def invalid(param: str, reason: str) -> ApiError:
    return ApiError(400, f"Invalid{param}", f"The specified parameter {param} is not valid: {reason}.")


def not_found(resource: str, identifier: str) -> ApiError:
    """`NotFound<Resource>` (HTTP 404), e.g. `NotFoundSignature`."""
    return ApiError(404, f"NotFound{resource}", f"The specified {resource} {identifier!r} does not exist.")
