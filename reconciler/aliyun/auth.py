"""httpx authentication flows that sign RPC-style CloudAPI requests (V3 and RPC V1).

The action name travels on the request as ``request.extensions["aliyun_action"]`` (see
``ACTION_EXTENSION``): the client sets it, and each auth puts it where its algorithm wants it (the
``x-acs-action`` header for V3, the ``Action`` parameter for V1). The operation's own parameters are
already in the request's query. Signing happens in ``auth_flow``, which httpx runs on every send, so
every attempt of a retried call carries a new nonce and a new date.

The query is written with the same RFC 3986 encoding that is signed (space as ``%20``, never ``+``)
so that what the server decodes is exactly what was signed.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncGenerator, Callable, Generator
from datetime import UTC, datetime

import httpx

from reconciler.aliyun.credentials import Credentials, CredentialSource, static_source
from reconciler.aliyun.signing import (
    V1_SIGNATURE_METHOD,
    V1_SIGNATURE_VERSION,
    canonical_query,
    v1_signature,
    v3_authorization,
    v3_canonical_request_for_query,
    v3_signature,
    v3_signed_header_names,
)
from reconciler.vendor_rules import format_timestamp

API_VERSION = "2016-07-14"
ACTION_EXTENSION = "aliyun_action"
# The query string exactly as the caller wrote it in the signed encoding; V3 then signs it as it is.
CANONICAL_QUERY_EXTENSION = "aliyun_canonical_query"


def new_nonce() -> str:
    """A random single-use nonce, 32 hex digits like the vendor SDK's."""
    return uuid.uuid4().hex


def utc_now() -> datetime:
    return datetime.now(UTC)


def with_query(request: httpx.Request, params: dict[str, str]) -> None:
    """Replace the request's query with ``params`` in the signed encoding."""
    request.url = request.url.copy_with(query=canonical_query(params).encode("ascii"))


def _action_of(request: httpx.Request) -> str:
    action = request.extensions.get(ACTION_EXTENSION)
    if not isinstance(action, str) or not action:
        raise ValueError(f"request has no {ACTION_EXTENSION!r} extension naming the action to sign")
    return action


class _SigningAuth(httpx.Auth):
    """What both algorithms share: credentials, API version, and injectable nonce and clock.

    The credentials are asked for on every send (``CredentialSource.current`` answers from its cache
    until they near expiry), so temporary credentials are refreshed in the middle of a long run.
    """

    requires_request_body = True

    def __init__(
        self,
        credentials: Credentials | CredentialSource,
        *,
        version: str = API_VERSION,
        nonce: Callable[[], str] = new_nonce,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.source = credentials if isinstance(credentials, CredentialSource) else static_source(credentials)
        self._version = version
        self._nonce = nonce
        self._clock = clock

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self.sign(request, self.source.peek())
        yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        await request.aread()
        await self.sign_with_current(request)
        yield request

    async def sign_with_current(self, request: httpx.Request) -> None:
        """Sign a request whose body has been read with the current credentials: the one pass of the
        async auth flow, without the flow's async generator (which costs more than the signing)."""
        self.sign(request, await self.source.current())

    def sign(self, request: httpx.Request, credentials: Credentials) -> None:
        raise NotImplementedError


def _secret(credentials: Credentials) -> str:
    return credentials.access_key_secret.get_secret_value()


def _security_token(credentials: Credentials) -> str | None:
    token = credentials.security_token
    return token.get_secret_value() if token is not None else None


class AcsV3Auth(_SigningAuth):
    """``ACS3-HMAC-SHA256``: signs host, accept, user-agent and every ``x-acs-*`` header it sets.

    With STS credentials it sends and signs ``x-acs-accesskey-id`` beside ``x-acs-security-token``,
    as the vendor's SDK does.
    """

    def sign(self, request: httpx.Request, credentials: Credentials) -> None:
        headers = request.headers
        headers["x-acs-action"] = _action_of(request)
        headers["x-acs-version"] = self._version
        headers["x-acs-date"] = format_timestamp(self._clock())
        headers["x-acs-signature-nonce"] = self._nonce()
        payload_sha256 = hashlib.sha256(request.content).hexdigest()
        headers["x-acs-content-sha256"] = payload_sha256
        token = _security_token(credentials)
        if token is not None:
            headers["x-acs-accesskey-id"] = credentials.access_key_id
            headers["x-acs-security-token"] = token
        else:
            headers.pop("x-acs-accesskey-id", None)
            headers.pop("x-acs-security-token", None)
        headers["accept"] = "application/json"

        query = request.extensions.get(CANONICAL_QUERY_EXTENSION)
        if not isinstance(query, str) or request.url.query != query.encode("ascii"):
            # Not written by a caller that already encoded it as signed: parse and re-encode (dearer).
            params = dict(request.url.params)
            query = canonical_query(params)
            if request.url.query != query.encode("ascii"):
                with_query(request, params)
        names = v3_signed_header_names(headers)
        canonical = v3_canonical_request_for_query(request.method, request.url.path, query, headers, names,
                                                   payload_sha256)
        signature = v3_signature(_secret(credentials), canonical)
        headers["Authorization"] = v3_authorization(credentials.access_key_id, names, signature)


class RpcV1Auth(_SigningAuth):
    """RPC V1 ``HMAC-SHA1``: the common parameters and the ``Signature`` go into the query."""

    def sign(self, request: httpx.Request, credentials: Credentials) -> None:
        params = dict(request.url.params)
        params.pop("SecurityToken", None)
        params.update(
            Action=_action_of(request),
            Format="JSON",
            Version=self._version,
            AccessKeyId=credentials.access_key_id,
            SignatureMethod=V1_SIGNATURE_METHOD,
            SignatureVersion=V1_SIGNATURE_VERSION,
            SignatureNonce=self._nonce(),
            Timestamp=format_timestamp(self._clock()),
        )
        token = _security_token(credentials)
        if token is not None:
            params["SecurityToken"] = token
        params["Signature"] = v1_signature(_secret(credentials), request.method, params)
        with_query(request, params)
        request.headers["accept"] = "application/json"
