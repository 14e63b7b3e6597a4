"""Typed failures of calls to the API Gateway endpoint.

Every error carries the operation (``action``), the vendor ``code`` (or ``None`` when the server
never answered with one), the ``message``, the ``request_id`` and the HTTP ``status`` (``None`` when
no response arrived), and ``str(exc)`` is one line such as
``DescribeApiSignatures failed: Throttling.User: Request was denied due to user flow control.
(RequestId 1234)``.

Design notes:

- ``ApiError`` is the base of every failure of a call, including ``TransportError``,
  ``DeadlineExceeded`` and ``WriteNotAllowed``, so callers can catch one type.
- A code that fits no class (``Repeated<Thing>``, ``Duplicate<Thing>``, quota errors, ...) is a
  plain ``ApiError``.
- Any 5xx status is a ``ServerError`` and a 429 a ``ThrottlingError`` even when the body is not the
  vendor's JSON (a load balancer's HTML page), because what to do next depends on the status.
- ``CredentialsError`` is an ``InputError``: the user's environment or profile file is wrong.
- Every code the product acts on is in the vendor's documentation: the code templates and families
  (``Throttling*``, ``RepeatedCommit``, ``NotFound*``, ``Missing*`` / ``Invalid*``, the authentication
  codes) and the status class (5xx, 429). ``InvalidTimeStamp*`` and ``InvalidSecurityToken*`` are the
  vendor's codes for those conditions but are not on the API Gateway error pages; they only name the
  class of an error that is not retried either way, so no behaviour hangs on them.
"""

from __future__ import annotations

import re

from reconciler.errors import InputError, ReconcilerError

# Code families (the part before the first ".") that mean the request was not authenticated.
_AUTHENTICATION_FAMILIES = frozenset(
    {
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "SignatureNonceUsed",
        "InvalidAccessKeyId",
        "InvalidTimeStamp",
        "InvalidSecurityToken",
    }
)
_PARAMETER_PREFIXES = ("Missing", "Invalid")
_WHITESPACE = re.compile(r"\s+")


class CredentialsError(InputError):
    """No usable credentials were found; the message says what to set."""


class ApiError(ReconcilerError):
    """A call to the endpoint failed."""

    def __init__(
        self,
        action: str,
        code: str | None,
        message: str,
        *,
        request_id: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.action = action
        self.code = code
        # Server messages may span lines; the CLI prints exactly one.
        self.message = _WHITESPACE.sub(" ", message).strip()
        self.request_id = request_id
        self.status = status
        # Seconds the server asked the caller to wait (x-acs-retry-after), if it did.
        self.retry_after = retry_after
        # Requests the call made in all; the client raises it when it gives up after retries.
        self.attempts = 1
        super().__init__(str(self))

    def __str__(self) -> str:
        cause = f"{self.code}: {self.message}" if self.code else self.message
        notes = [f"RequestId {self.request_id}"] if self.request_id else []
        if self.attempts > 1:
            notes.append(f"after {self.attempts} attempts")
        suffix = f" ({', '.join(notes)})" if notes else ""
        return f"{self.action} failed: {cause}{suffix}"


class ThrottlingError(ApiError):
    """``Throttling``, ``Throttling.*`` or HTTP 429: the request was refused, not carried out."""


class AuthenticationError(ApiError):
    """The signature, access key, token or timestamp was not accepted."""


class ServerError(ApiError):
    """The server failed (5xx: ``InternalError``, ``ServiceUnavailable``, ...)."""


class NotFoundError(ApiError):
    """``NotFound<Resource>``: the object named in the request does not exist."""


class InvalidParameterError(ApiError):
    """``Missing<Param>``, ``Invalid<Param>``, ``InvalidFormat<Param>``: the request itself is wrong."""


class RepeatedCommitError(ApiError):
    """``RepeatedCommit``: the same write is already being processed; resubmitting is wrong."""


class TransportError(ApiError):
    """No usable answer: connection failure, timeout, or a body that is not the vendor's JSON.

    ``connection_failed`` is true when the exchange itself broke (as opposed to a bad body);
    ``maybe_sent`` is false only when the request certainly never left (connect failure, pool wait),
    which is what makes retrying a write safe; ``lasting`` is true when retrying cannot help (TLS to
    a plain-HTTP port, a certificate that does not verify, a host name that does not resolve).
    """

    def __init__(
        self,
        action: str,
        message: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
        connection_failed: bool = False,
        maybe_sent: bool = True,
        lasting: bool = False,
    ) -> None:
        self.connection_failed = connection_failed
        self.lasting = lasting
        self.maybe_sent = maybe_sent
        super().__init__(action, None, message, request_id=request_id, status=status)


class DeadlineExceeded(ApiError):
    """The overall deadline for a call, retries included, ran out."""


class WriteNotAllowed(ApiError):
    """A write operation was refused before sending because the client is read-only."""


def error_for_response(action: str, status: int, code: str, message: str, request_id: str | None) -> ApiError:
    """The typed error for a response whose body names a vendor error ``code``."""
    family = code.split(".", 1)[0]
    error_class: type[ApiError]
    if family == "Throttling" or status == 429:
        error_class = ThrottlingError
    elif family in _AUTHENTICATION_FAMILIES:
        error_class = AuthenticationError
    elif code == "RepeatedCommit":
        error_class = RepeatedCommitError
    elif code.startswith("NotFound"):
        error_class = NotFoundError
    elif code.startswith(_PARAMETER_PREFIXES):
        error_class = InvalidParameterError
    elif status >= 500:
        error_class = ServerError
    else:
        error_class = ApiError
    return error_class(action, code, message, request_id=request_id, status=status)
