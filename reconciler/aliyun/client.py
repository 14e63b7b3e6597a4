"""The async client for the CloudAPI (API Gateway) endpoint of one region.

``ApiClient.call(action, params)`` sends one RPC-style operation (``POST /``, parameters in the
query, empty body), signed by ``AcsV3Auth`` or ``RpcV1Auth``, and returns the JSON body or raises a
typed ``ApiError``.

Design notes:

- Reads (``Describe*``) are retried on throttling, 429, 500, 502, 503, 504 and any broken
  exchange (connection error, timeout, dropped connection): 502 and 504 are what proxies in front
  of an endpoint return for the same transient causes. Writes are retried only on throttling, 503
  and failures where the request certainly never left; never on 500 or a read timeout, where the
  write may have been carried out.
- A success status with a garbled body (not JSON, wrong content type, no ``RequestId``, a page that
  does not fit) is retried for a read, like a 503: a proxy cutting a body short is a passing fault, and
  a scheduled drift job must not fail on one. A write is not repeated (it may have been carried out).
- A failure that retrying cannot fix fails at once, with a hint: TLS spoken to a plain-HTTP port, a
  certificate that does not verify, a host name that does not resolve (EAI_AGAIN, "try again", is the
  exception), a URL the transport refuses (a port out of range).
- ``x-acs-retry-after`` sets the least wait before the next attempt; it is not capped by
  ``retry_max_delay`` (the server knows best) but a wait that would pass the deadline ends the call
  with ``DeadlineExceeded`` at once instead of sleeping first.
- The deadline also bounds a request in flight; a write cut off that way has an unknown outcome,
  and the error says so.
- Every attempt is logged at debug level with sensitive parameters (the URL of ``CreateSignature`` and
  ``ModifySignature`` holds the ``SignatureSecret``) and headers redacted.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import os
import random
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from reconciler.aliyun.auth import ACTION_EXTENSION, CANONICAL_QUERY_EXTENSION, AcsV3Auth, RpcV1Auth
from reconciler.aliyun.credentials import Credentials, CredentialSource
from reconciler.aliyun.errors import (
    ApiError,
    AuthenticationError,
    CredentialsError,
    DeadlineExceeded,
    ServerError,
    ThrottlingError,
    TransportError,
    WriteNotAllowed,
    error_for_response,
)
from reconciler.aliyun.redaction import REDACTED, Scrubber, drop_string_to_sign
from reconciler.aliyun.signing import canonical_query
from reconciler.aliyun.transport import failure_of, http_transport, proxy_for
from reconciler.errors import InputError

logger = logging.getLogger("reconciler.aliyun")

# Query parameters whose values are secrets and never appear in a log or an error message.
SENSITIVE_PARAMS = frozenset({"SignatureSecret", "SecurityToken", "AccessKeySecret"})
_SENSITIVE_HEADERS = frozenset({"authorization", "x-acs-security-token"})
_READ_RETRY_STATUSES = frozenset({500, 502, 503, 504})
_WRITE_RETRY_STATUSES = frozenset({503})
_ATTEMPT_EXTENSION = "aliyun_attempt"
USER_AGENT = "reconciler/0.1 (+httpx)"
# What httpx.AsyncClient sent by default besides the user agent (the signer sets its own accept).
_HEADERS = {"accept": "*/*", "accept-encoding": "gzip, deflate", "connection": "keep-alive", "user-agent": USER_AGENT}


def validate_endpoint(url: str) -> str:
    """The endpoint as ``scheme://host[:port]``.

    ``InputError`` unless it is https, or plain http to a loopback host (127.0.0.0/8, ::1,
    localhost), so that credentials and secrets never cross a network in clear.
    """
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        raise InputError(f"endpoint {url!r} is not a URL") from None
    if parsed.userinfo:
        raise InputError("endpoint must not contain a user name or password")
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InputError(
            f"endpoint {url!r} must be an https:// URL such as https://apigateway.cn-hangzhou.aliyuncs.com"
        )
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        raise InputError(f"endpoint {url!r}: port {parsed.port} is not between 1 and 65535")
    if parsed.path not in ("", "/") or parsed.query or parsed.fragment:
        raise InputError(f"endpoint {url!r} must be scheme://host[:port] without a path or query")
    if parsed.scheme == "http" and not _is_loopback(parsed.host):
        raise InputError(
            f"endpoint {url!r} uses plain http to a host that is not loopback; use https "
            "(http is allowed only for 127.0.0.0/8, ::1 and localhost)"
        )
    return f"{parsed.scheme}://{parsed.netloc.decode('ascii')}"


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ApiResponse(BaseModel):
    """A successful response, for ``ApiClient.call_model``: validated straight from the JSON bytes in one pass.

    Subclasses declare the fields they read; everything else in the body is ignored.
    """

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    request_id: str = Field(alias="RequestId")


ResponseT = TypeVar("ResponseT", bound=ApiResponse)
BodyT = TypeVar("BodyT")
_JSON_OBJECT: TypeAdapter[dict[str, Any]] = TypeAdapter(dict[str, Any])


def redact_params(params: Mapping[str, str]) -> dict[str, str]:
    return {name: REDACTED if name in SENSITIVE_PARAMS else value for name, value in params.items()}


def _describe_url(url: httpx.URL) -> str:
    """The URL with sensitive query values redacted, for logs."""
    params = redact_params(dict(url.params))
    query = "&".join(f"{name}={value}" for name, value in params.items())
    base = f"{url.scheme}://{url.netloc.decode('ascii')}{url.path}"
    return f"{base}?{query}" if query else base


def _as_text(value: str | int) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _is_write(action: str) -> bool:
    return not action.startswith("Describe")


class AdaptiveRate:
    """Paces request starts to the rate the endpoint accepts: AIMD on the vendor's throttling.

    Until the first throttling (or without ``max_rps``) requests start as soon as a slot is free. A
    throttled answer to a request sent after the last decrease sets the rate to ``DECREASE`` times the
    requests that succeeded in the last second (never more than the rate was): that estimate lands
    next to the account's limit at once, where halving from an unthrottled rate would take several
    overloaded round trips. Each success adds ``INCREASE / rate`` (about ``INCREASE`` requests a second
    per second). ``x-acs-retry-after`` holds back every start, not only the throttled call's retry.
    ``max_rps`` caps the rate from the first request, so a drift job leaves room for other tools;
    ``min_rps`` is the floor a decrease stops at (never above ``max_rps``).
    """

    DECREASE = 0.85
    INCREASE = 2.0
    DEFAULT_MIN_RPS = 1.0
    WINDOW = 1.0

    def __init__(self, max_rps: float | None = None, *, min_rps: float = DEFAULT_MIN_RPS) -> None:
        if max_rps is not None and max_rps <= 0:
            raise InputError(f"--max-rps must be more than 0, not {max_rps:g}")
        if min_rps <= 0:
            raise InputError(f"the least pacing rate must be more than 0 requests a second, not {min_rps:g}")
        self.max_rps = max_rps
        self.min_rps = min_rps if max_rps is None else min(min_rps, max_rps)
        self.rate: float | None = max_rps
        self._next_start = 0.0
        self._paused_until = 0.0
        self._last_decrease = float("-inf")
        self._successes: deque[float] = deque()

    def reserve(self, now: float) -> float:
        """Take the next start slot; the seconds to wait for it."""
        start = max(now, self._next_start, self._paused_until)
        if self.rate is not None:
            self._next_start = start + 1.0 / self.rate
        return start - now

    def succeeded(self, now: float) -> None:
        self._successes.append(now)
        while self._successes[0] < now - self.WINDOW:
            self._successes.popleft()
        if self.rate is not None:
            self.rate += self.INCREASE / self.rate
            if self.max_rps is not None:
                self.rate = min(self.rate, self.max_rps)

    def throttled(self, sent_at: float, now: float, retry_after: float | None) -> None:
        if retry_after is not None:
            self._paused_until = max(self._paused_until, now + retry_after)
        if sent_at < self._last_decrease:
            return  # sent before the last decrease: the same overload, already answered
        accepted = sum(1 for t in self._successes if t >= now - self.WINDOW)
        ceiling = accepted if self.rate is None else min(self.rate, accepted)
        self.rate = max(self.min_rps, self.DECREASE * ceiling)
        self._last_decrease = now


@dataclass(frozen=True)
class RetryTiming:
    """How long a client waits: before a retry, and between request starts once it has been throttled.

    The n-th retry waits a random time below ``base_delay * 2**(n-1)`` seconds, never more than
    ``max_delay`` (full jitter), unless the server asks for longer with ``x-acs-retry-after``. After
    throttling, requests start no slower than ``min_rps`` a second. ``from_environ`` reads the
    documented settings ``RECONCILER_RETRY_BASE_DELAY``, ``RECONCILER_RETRY_MAX_DELAY`` and
    ``RECONCILER_MIN_RPS``: the same decisions with other waits (a job that would rather fail fast, or
    a test suite that cannot afford real backoff).
    """

    base_delay: float = 0.2
    max_delay: float = 10.0
    min_rps: float = AdaptiveRate.DEFAULT_MIN_RPS

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> RetryTiming:
        """The defaults, overridden by each setting present; ``InputError`` for a value that is no such number."""
        defaults = cls()
        return cls(
            base_delay=_number_setting(environ, "RECONCILER_RETRY_BASE_DELAY", defaults.base_delay, "seconds",
                                       zero_allowed=True),
            max_delay=_number_setting(environ, "RECONCILER_RETRY_MAX_DELAY", defaults.max_delay, "seconds",
                                      zero_allowed=True),
            min_rps=_number_setting(environ, "RECONCILER_MIN_RPS", defaults.min_rps, "requests a second",
                                    zero_allowed=False),
        )


def _number_setting(environ: Mapping[str, str], name: str, default: float, unit: str, *,
                    zero_allowed: bool) -> float:
    text = environ.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if math.isfinite(value) and (value > 0 or (zero_allowed and value == 0)):
        return value
    least = "0 or more" if zero_allowed else "more than 0"
    raise InputError(f"{name} must be a number of {unit}, {least}, not {text!r}")


class ApiClient:
    """Calls one endpoint through one httpx transport (one connection pool), with signing, retries and a deadline.

    The client speaks httpx's interfaces (``httpx.Request``, ``httpx.Auth``, an ``httpx.AsyncBaseTransport``,
    ``httpx.Response`` and its errors) but does not go through ``httpx.AsyncClient``: of what that adds per
    request (merging base URL, headers and cookies, a second URL parse, the redirect and event-hook
    machinery, a cookie jar) this client uses none, and it cost about a tenth of a fetch's CPU (figures:
    "Profile notes" in benchmarks/README.md). Signing is the signer's one pass; every request is
    logged at debug level, redacted, by the client itself.

    Beyond the documented options: ``sleep`` is injectable so tests can observe backoff without
    waiting.
    """

    def __init__(
        self,
        endpoint: str,
        credentials: Credentials | CredentialSource,
        *,
        signature_version: Literal["v3", "v1"] = "v3",
        timeout: float = 10.0,
        deadline: float | None = 300.0,
        max_attempts: int = 8,
        allow_writes: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
        retry_base_delay: float = 0.2,
        retry_max_delay: float = 10.0,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rate: AdaptiveRate | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.endpoint = validate_endpoint(endpoint)
        self._deadline = deadline
        self._max_attempts = max_attempts
        self._allow_writes = allow_writes
        self._base_delay = retry_base_delay
        self._max_delay = retry_max_delay
        self._rng = rng if rng is not None else random.Random()
        self._sleep = sleep
        self._rate = rate
        self._source: CredentialSource | None = None
        self._static_secrets: tuple[str, ...] = ()
        if isinstance(credentials, CredentialSource):
            self._source = credentials
        else:
            self._static_secrets = tuple(credentials.secret_values())
        proxy = proxy_for(self.endpoint, os.environ) if transport is None else None
        if proxy is not None and httpx.URL(proxy).password:  # a proxy's password shows in its errors otherwise
            self._static_secrets += (httpx.URL(proxy).password,)
        self._auth = AcsV3Auth(credentials) if signature_version == "v3" else RpcV1Auth(credentials)
        self._transport = transport if transport is not None else http_transport(self.endpoint)
        # Waiting for a pooled connection is bounded by the call's deadline, not the timeout.
        self._timeout = httpx.Timeout(timeout, pool=None).as_dict()

    def _scrubber(self, call_secrets: list[str]) -> Scrubber:
        """Every secret this call and the run's credentials know (the latter grow as tokens refresh)."""
        known = (*self._static_secrets, *(self._source.secrets() if self._source is not None else ()))
        return Scrubber([*call_secrets, *known])

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def call(self, action: str, params: Mapping[str, str | int]) -> dict[str, Any]:
        """Send ``action`` with ``params`` and return the response body, retrying what is safe to retry.

        Raises ``WriteNotAllowed`` for a write on a read-only client (nothing is sent),
        ``DeadlineExceeded`` when the deadline runs out, else the typed error of the last attempt.
        """
        return await self._call(action, params, _json_object_body)

    async def call_model(self, action: str, params: Mapping[str, str | int], model: type[ResponseT]) -> ResponseT:
        """``call``, with the body validated into ``model`` from the JSON bytes (no intermediate dict).

        A body that does not fit the model is a ``TransportError`` naming the first misfit's path.
        """
        return await self._call(action, params, lambda response: _model_body(response, model))

    async def _call(self, action: str, params: Mapping[str, str | int], decode: Callable[[httpx.Response], BodyT]
                    ) -> BodyT:
        write = _is_write(action)
        if write and not self._allow_writes:
            raise WriteNotAllowed(action, None, "refused: this client is read-only and writes were not enabled")
        query = {name: _as_text(value) for name, value in params.items()}
        secrets = self._scrubber([query[name] for name in SENSITIVE_PARAMS if query.get(name)])
        loop = asyncio.get_running_loop()
        deadline_at = loop.time() + self._deadline if self._deadline is not None else None
        progress = _CallProgress()
        limit = asyncio.timeout_at(deadline_at)
        try:
            async with limit:
                return await self._call_with_retries(action, query, secrets, write, progress, deadline_at, decode)
        except TimeoutError:
            if not limit.expired():
                raise
            raise self._deadline_exceeded(action, progress, write, in_flight=True) from progress.last_error

    async def _call_with_retries(
        self,
        action: str,
        query: dict[str, str],
        secrets: Scrubber,
        write: bool,
        progress: _CallProgress,
        deadline_at: float | None,
        decode: Callable[[httpx.Response], BodyT],
    ) -> BodyT:
        loop = asyncio.get_running_loop()
        while True:
            progress.attempts += 1
            if self._rate is not None:
                wait = self._rate.reserve(loop.time())
                if wait > 0:
                    await asyncio.sleep(wait)
            sent_at = loop.time()
            try:
                body = await self._attempt(action, query, secrets, progress.attempts, decode)
            except ApiError as error:
                if self._rate is not None and isinstance(error, ThrottlingError):
                    self._rate.throttled(sent_at, loop.time(), error.retry_after)
                error.attempts = progress.attempts
                progress.last_error = error
                if progress.attempts >= self._max_attempts or not self._retryable(error, write):
                    raise
                delay = self._backoff(progress.attempts, error)
                if deadline_at is not None and loop.time() + delay >= deadline_at:
                    raise self._deadline_exceeded(action, progress, write, in_flight=False) from error
                logger.debug("%s attempt %d failed (%s); retrying in %.3fs", action, progress.attempts, error, delay)
                await self._sleep(delay)
            else:
                if self._rate is not None:
                    self._rate.succeeded(loop.time())
                return body

    async def _attempt(self, action: str, query: dict[str, str], secrets: Scrubber, attempt: int,
                       decode: Callable[[httpx.Response], BodyT]) -> BodyT:
        # The query goes in already in the signed encoding, so the signer signs it as it is.
        signed_query = canonical_query(query)
        request = httpx.Request(
            "POST", f"{self.endpoint}/?{signed_query}", headers=_HEADERS,
            extensions={ACTION_EXTENSION: action, CANONICAL_QUERY_EXTENSION: signed_query, _ATTEMPT_EXTENSION: attempt,
                        "timeout": self._timeout},
        )
        try:
            await self._auth.sign_with_current(request)
            self._log_request(request)
            response = await self._transport.handle_async_request(request)
            response.request = request
            await response.aread()
        except httpx.RequestError as exc:
            raise _transport_error(action, exc, secrets) from exc
        except CredentialsError as exc:  # temporary credentials that could not be refreshed
            raise AuthenticationError(action, None, secrets.scrub(str(exc))) from None
        try:
            body = _parse_response(action, response, secrets, decode)
        except ApiError as error:
            logger.debug(
                "%s attempt %d: HTTP %d RequestId %s: %s",
                action,
                attempt,
                response.status_code,
                error.request_id or "-",
                error.code or error.message,
            )
            raise
        logger.debug("%s attempt %d: HTTP %d RequestId %s", action, attempt, response.status_code, _request_id_of(body))
        return body

    def _retryable(self, error: ApiError, write: bool) -> bool:
        if isinstance(error, ThrottlingError):
            return True
        if isinstance(error, ServerError):
            statuses = _WRITE_RETRY_STATUSES if write else _READ_RETRY_STATUSES
            return error.status in statuses
        if isinstance(error, TransportError):
            if error.lasting:
                return False
            if error.connection_failed:
                return not error.maybe_sent or not write
            return not write and error.status is not None and 200 <= error.status < 300
        return False

    def _backoff(self, attempt: int, error: ApiError) -> float:
        """Full jitter under a capped exponential ceiling, but never less than the server asked for."""
        ceiling = min(self._max_delay, self._base_delay * 2 ** (attempt - 1))
        delay = self._rng.uniform(0.0, ceiling)
        if error.retry_after is not None:
            delay = max(delay, error.retry_after)
        return delay

    def _deadline_exceeded(
        self, action: str, progress: _CallProgress, write: bool, *, in_flight: bool
    ) -> DeadlineExceeded:
        parts = [f"deadline of {self._deadline:g}s exceeded after {progress.attempts} attempt(s)"]
        last = progress.last_error
        if last is not None:
            parts.append(f"last error: {f'{last.code}: ' if last.code else ''}{last.message}")
        if in_flight and write:
            parts.append("the outcome of the write is unknown")
        return DeadlineExceeded(
            action,
            None,
            "; ".join(parts),
            request_id=last.request_id if last is not None else None,
            status=last.status if last is not None else None,
        )

    def _log_request(self, request: httpx.Request) -> None:
        if not logger.isEnabledFor(logging.DEBUG):
            return
        headers = {
            name: REDACTED if name.lower() in _SENSITIVE_HEADERS else value for name, value in request.headers.items()
        }
        logger.debug(
            "%s attempt %s: %s %s headers=%s",
            request.extensions.get(ACTION_EXTENSION),
            request.extensions.get(_ATTEMPT_EXTENSION),
            request.method,
            _describe_url(request.url),
            headers,
        )


@dataclass
class _CallProgress:
    """What a call has done so far, kept outside the retry loop so a deadline can report it."""

    attempts: int = 0
    last_error: ApiError | None = None


def _retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("x-acs-retry-after")
    if value is None:
        return None
    try:
        milliseconds = float(value)
    except ValueError:
        return None
    return max(milliseconds, 0.0) / 1000.0


def _is_json_content_type(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def _transport_error(action: str, exc: httpx.RequestError, secrets: Scrubber) -> TransportError:
    """A broken exchange as a TransportError, named after what actually failed.

    Only a failed connect certainly never sent the request, which is what makes retrying a write safe.
    A broken exchange is worth retrying for a read; an undecodable body (DecodingError) is not.
    """
    failure = failure_of(exc)
    never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    reason = secrets.scrub(failure.detail) or "no detail"
    return TransportError(
        action,
        f"{failure.name}: {reason}" + (f"; {failure.hint}" if failure.hint else ""),
        connection_failed=not isinstance(exc, httpx.DecodingError),
        maybe_sent=not never_sent,
        lasting=failure.hint is not None,
    )


def _request_id_of(body: object) -> object:
    """A decoded body's RequestId, for the debug log (both decoders have checked that it is there)."""
    if isinstance(body, ApiResponse):
        return body.request_id
    return body.get("RequestId") if isinstance(body, dict) else None


def _json_object(response: httpx.Response) -> dict[str, Any]:
    return _JSON_OBJECT.validate_json(_json_content(response))


def _json_object_body(response: httpx.Response) -> dict[str, Any]:
    body = _json_object(response)
    if not isinstance(body.get("RequestId"), str):
        raise _MalformedBody("a body that has no RequestId")
    return body


def _model_body(response: httpx.Response, model: type[ResponseT]) -> ResponseT:
    return model.model_validate_json(_json_content(response))


class _MalformedBody(Exception):
    """A successful status with a body that is not the vendor's JSON; the text says what is wrong."""


def _json_content(response: httpx.Response) -> bytes:
    content_type = response.headers.get("content-type", "")
    if not _is_json_content_type(content_type):
        raise _MalformedBody(f"content type {content_type or 'missing'!r} instead of JSON")
    return response.content


def _misfit(error: ValidationError) -> str:
    """The first thing wrong with a body, in words, without the offending value (it may be a secret)."""
    first = error.errors(include_url=False, include_input=False)[0]
    location = first["loc"]
    if first["type"] == "json_invalid":
        return "a body that is not valid JSON"
    if not location:
        return "a JSON body that is not an object"
    if location == ("RequestId",) and first["type"] == "missing":
        return "a body that has no RequestId"
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in location).lstrip(".")
    return f"a malformed body: {path}: {first['msg']}"


def _decoded(response: httpx.Response, decode: Callable[[httpx.Response], BodyT]) -> tuple[BodyT | None, str]:
    """``decode(response)`` and '', or None and what is wrong with the body."""
    try:
        return decode(response), ""
    except ValidationError as misfit:
        return None, _misfit(misfit)
    except _MalformedBody as malformed:
        return None, str(malformed)


def _parse_response(action: str, response: httpx.Response, secrets: Scrubber,
                    decode: Callable[[httpx.Response], BodyT]) -> BodyT:
    """The decoded body of a successful response, else the typed error the response stands for."""
    status = response.status_code
    header_request_id = response.headers.get("x-acs-request-id")
    if 200 <= status < 300:
        decoded, problem = _decoded(response, decode)
        if decoded is None:
            raise TransportError(action, f"HTTP {status} with {problem}", status=status, request_id=header_request_id)
        return decoded

    body, problem = _decoded(response, _json_object)
    retry_after = _retry_after_seconds(response)
    code = body.get("Code") if body is not None else None
    if isinstance(code, str) and code:
        message = body.get("Message") if body is not None else None
        request_id = body.get("RequestId") if body is not None else None
        error = error_for_response(
            action,
            status,
            code,
            secrets.scrub(drop_string_to_sign(message)) if isinstance(message, str) else "(no message)",
            request_id if isinstance(request_id, str) else header_request_id,
        )
        error.retry_after = retry_after
        raise error
    detail = f"HTTP {status} with {problem or 'no error Code in the body'}"
    if status == 429:
        raise ThrottlingError(
            action, None, detail, status=status, request_id=header_request_id, retry_after=retry_after
        )
    if status >= 500:
        raise ServerError(action, None, detail, status=status, request_id=header_request_id, retry_after=retry_after)
    raise TransportError(action, detail, status=status, request_id=header_request_id)
