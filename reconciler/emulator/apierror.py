"""Errors the emulator answers with, in the vendor's code templates and HTTP statuses.

Every failure a client can cause is a `VendorErrorAnswer`; the application turns it into the vendor's
JSON error body `{Code, Message, RequestId, HostId, Recommend}` with `status` as the HTTP status. Messages
name the parameter or resource and never contain a secret (the V1 ``SignatureDoesNotMatch`` message
echoes the string to sign, as the vendor's does: the product must cope with it).

What the documentation gives and what the emulator invented (``INVENTED`` lists the codes):

- Documented codes: the templates ``Missing<Param>``, ``Invalid<Param>``, ``InvalidFormat<Param>``,
  ``NotFound<Resource>``, ``Repeated<Thing>``, ``Duplicate<Thing>``; ``RepeatedCommit``,
  ``InternalError`` (500), ``ServiceUnavailable`` (503), ``Throttling`` / ``Throttling.User`` (400, or
  429); ``SignatureDoesNotMatch``, ``InvalidAccessKeyId.NotFound``, ``IncompleteSignature``,
  ``SignatureNonceUsed``.
- Documented statuses: 400 for client errors in general, 500 and 503 as above. Every other status the
  emulator answers (404 for ``NotFound*`` and ``InvalidAccessKeyId.NotFound`` and unknown actions, 405,
  413) is its own choice; the product depends only on the status class (4xx, 5xx) and on 429.
- Invented codes, for conditions the documentation names no code for: see ``INVENTED``. The product
  never depends on one of them by name (only on the documented templates and families).
"""

from __future__ import annotations

# Codes the emulator answers with that the documentation the project holds does not give (the live
# service may use other codes for these conditions).
INVENTED = frozenset({
    "DependencyViolation.Signature",  # DeleteSignature of a key still bound (the reference says it fails)
    "InvalidSecurityToken.Expired", "InvalidSecurityToken.MismatchWithAccessKey", "MissingSecurityToken",
    "InvalidTimeStamp.Expired", "InvalidTimeStamp.Format",
    "InvalidSignatureMethod", "InvalidSignatureVersion", "InvalidVersion", "InvalidFormat",
    "InvalidParameter",  # a parameter given twice
    "InvalidAction.NotFound", "UnsupportedHTTPMethod", "RequestEntityTooLarge",
    "AuthenticationFail.OIDCToken.Invalid", "EntityNotExist.Role", "InvalidParameter.DurationSeconds",  # STS
})


class VendorErrorAnswer(Exception):
    """The error the vendor would answer with (the client side's error of the same answer is
    `reconciler.aliyun.errors.ApiError`)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def missing(param: str) -> VendorErrorAnswer:
    return VendorErrorAnswer(400, f"Missing{param}", f"The input parameter {param} that is mandatory is not supplied.")


def invalid(param: str, reason: str) -> VendorErrorAnswer:
    return VendorErrorAnswer(400, f"Invalid{param}", f"The specified parameter {param} is not valid: {reason}.")


def not_found(resource: str, identifier: str) -> VendorErrorAnswer:
    """`NotFound<Resource>` (HTTP 404), e.g. `NotFoundSignature`."""
    return VendorErrorAnswer(404, f"NotFound{resource}", f"The specified {resource} {identifier!r} does not exist.")
