"""Authentication of incoming requests, as the vendor's endpoint does it: V3 and RPC V1 signatures.

The signatures themselves are computed by `reconciler.aliyun.signing` (the same code the client
signs with). This module decides which algorithm a request uses and checks everything around the
signature; each failure is an `VendorErrorAnswer` with the vendor's code:

- V3 (an ``Authorization: ACS3-HMAC-SHA256 ...`` header): verified with the header list the client
  says it signed, which must include ``host``, ``x-acs-action``, ``x-acs-version``, ``x-acs-date``,
  ``x-acs-signature-nonce``, ``x-acs-content-sha256`` (and ``x-acs-security-token`` when sent);
  otherwise ``IncompleteSignature``. A ``host``, ``content-type`` or ``x-acs-*`` header that is present
  but not in that list is ``IncompleteSignature`` too (the vendor's V3 rule: every such header present
  is signed). The payload hash is computed from the body received, so a body that does not match
  ``x-acs-content-sha256`` fails as ``SignatureDoesNotMatch``.
- RPC V1 (no such header): the query (and a form body) carry ``AccessKeyId``, ``Signature``,
  ``SignatureMethod=HMAC-SHA1``, ``SignatureVersion=1.0``, ``SignatureNonce`` and ``Timestamp``;
  a missing one is ``Missing<Param>``.
- An unknown access key id is ``InvalidAccessKeyId.NotFound`` (404); a wrong secret
  ``SignatureDoesNotMatch`` (in V1 its message ends, as the vendor's does, with
  ``server string to sign is:`` and the server's string to sign); a date more than 15 minutes from
  the server's clock, either way, ``InvalidTimeStamp.Expired`` (a malformed one
  ``InvalidTimeStamp.Format``); a nonce seen before with the same access key ``SignatureNonceUsed``.
- Security tokens: an access key given a token (STS) requires it on every request
  (``x-acs-security-token`` header or ``SecurityToken`` parameter), else ``MissingSecurityToken``;
  a different token, or a token sent with a key that has none, is
  ``InvalidSecurityToken.MismatchWithAccessKey``; a temporary key past its expiry is
  ``InvalidSecurityToken.Expired``.

A nonce is only recorded once the signature has been verified, so a failed request does not burn
it, and is forgotten when the request's own timestamp leaves the 15-minute window: from then on a
replay fails the timestamp check instead. Memory is thus bounded by the requests of ~30 minutes.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from reconciler.aliyun.signing import (
    V1_SIGNATURE_METHOD,
    V1_SIGNATURE_VERSION,
    V3_ALGORITHM,
    parse_v3_authorization,
    v1_signature,
    v1_string_to_sign,
    v3_canonical_request,
    v3_signature,
)
from reconciler.emulator.apierror import VendorErrorAnswer, missing
from reconciler.vendor_rules import TIMESTAMP_FORMAT

TIME_WINDOW_SECONDS = 15 * 60
V3_REQUIRED_SIGNED_HEADERS = (
    "host", "x-acs-action", "x-acs-content-sha256", "x-acs-date", "x-acs-signature-nonce", "x-acs-version",
)
V1_REQUIRED_PARAMS = ("AccessKeyId", "Signature", "SignatureMethod", "SignatureNonce", "Timestamp")


@dataclass(frozen=True)
class AccessKey:
    id: str
    secret: str = field(repr=False)
    security_token: str | None = field(default=None, repr=False)
    expires_at: float | None = None  # epoch seconds; temporary (STS) keys stop working then


@dataclass(frozen=True)
class Caller:
    """Who sent a verified request, and how."""

    access_key_id: str
    algorithm: str  # "V3" or "V1"


class NonceCache:
    """Nonces seen per access key, each kept until its request's timestamp leaves the window."""

    def __init__(self) -> None:
        self._seen: set[tuple[str, str]] = set()
        self._expiries: list[tuple[float, tuple[str, str]]] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._seen)

    def use(self, access_key_id: str, nonce: str, request_time: float, now: float) -> bool:
        """Record the nonce; False if it was already recorded (a replay)."""
        entry = (access_key_id, nonce)
        with self._lock:
            while self._expiries and self._expiries[0][0] < now:
                self._seen.discard(heapq.heappop(self._expiries)[1])
            if entry in self._seen:
                return False
            self._seen.add(entry)
            heapq.heappush(self._expiries, (request_time + TIME_WINDOW_SECONDS, entry))
            return True


def _must_be_signed(name: str) -> bool:
    """Headers the V3 signature must cover when present: host, content-type and every x-acs-* header."""
    return name in ("host", "content-type") or name.startswith("x-acs-")


def _parse_time(value: str) -> float:
    try:
        parsed = datetime.strptime(value, TIMESTAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise VendorErrorAnswer(400, "InvalidTimeStamp.Format",
                       f"Specified time stamp or date value {value!r} is not well formatted.") from None
    return parsed.timestamp()


class RequestVerifier:
    """Checks requests against the known access keys.

    A ``dict`` given as ``access_keys`` is shared, not copied: the STS sibling (`sts.py`) adds the
    temporary keys it issues to it, and they are accepted from then on, until they expire.
    """

    def __init__(self, access_keys: Mapping[str, AccessKey], clock: Callable[[], float]) -> None:
        self._keys = access_keys if isinstance(access_keys, dict) else dict(access_keys)
        self._clock = clock
        self.nonces = NonceCache()

    def verify(
        self, method: str, path: str, headers: Mapping[str, str], params: Mapping[str, str], body: bytes
    ) -> Caller:
        """Authenticate one request; `headers` have lowercase names, `params` are query + form body."""
        authorization = headers.get("authorization")
        if authorization is not None:
            return self._verify_v3(method, path, headers, params, body, authorization)
        return self._verify_v1(method, params)

    def _access_key(self, access_key_id: str) -> AccessKey:
        key = self._keys.get(access_key_id)
        if key is None:
            raise VendorErrorAnswer(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        return key

    def _check_security_token(self, key: AccessKey, token: str | None) -> None:
        if key.expires_at is not None and self._clock() >= key.expires_at:
            raise VendorErrorAnswer(400, "InvalidSecurityToken.Expired", "Specified SecurityToken is expired.")
        if key.security_token is not None and token is None:
            raise VendorErrorAnswer(400, "MissingSecurityToken",
                                    "The security token of these STS credentials is missing.")
        if token is not None and (
            key.security_token is None or not hmac.compare_digest(token.encode(), key.security_token.encode())
        ):
            raise VendorErrorAnswer(400, "InvalidSecurityToken.MismatchWithAccessKey",
                           "The security token does not match the access key.")

    def _check_time_and_nonce(self, key: AccessKey, timestamp: str, nonce: str) -> None:
        request_time = _parse_time(timestamp)
        now = self._clock()
        if abs(now - request_time) > TIME_WINDOW_SECONDS:
            raise VendorErrorAnswer(400, "InvalidTimeStamp.Expired",
                           f"Specified time stamp or date value {timestamp!r} is expired "
                           "(more than 15 minutes from the server's time).")
        if not self.nonces.use(key.id, nonce, request_time, now):
            raise VendorErrorAnswer(400, "SignatureNonceUsed", "Specified signature nonce was used already.")

    def _verify_v3(
        self, method: str, path: str, headers: Mapping[str, str], params: Mapping[str, str], body: bytes,
        authorization: str,
    ) -> Caller:
        access_key_id, signed_names, signature = _parse_v3(authorization)
        token = headers.get("x-acs-security-token")
        _check_v3_signed_headers({name.lower() for name in signed_names}, headers, token)
        key = self._access_key(access_key_id)
        self._check_security_token(key, token if token is not None else params.get("SecurityToken"))
        canonical = v3_canonical_request(
            method, path, params, headers, signed_names, hashlib.sha256(body).hexdigest()
        )
        if not hmac.compare_digest(v3_signature(key.secret, canonical), signature):
            digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
            raise VendorErrorAnswer(400, "SignatureDoesNotMatch",
                           "Specified signature is not matched with our calculation. "
                           f"Server hashed canonical request: {digest}")
        self._check_time_and_nonce(key, headers["x-acs-date"], headers["x-acs-signature-nonce"])
        return Caller(access_key_id, "V3")

    def _verify_v1(self, method: str, params: Mapping[str, str]) -> Caller:
        for name in V1_REQUIRED_PARAMS:
            if not params.get(name):
                raise missing(name)
        if params["SignatureMethod"] != V1_SIGNATURE_METHOD:
            raise VendorErrorAnswer(400, "InvalidSignatureMethod",
                           f"Signature method {params['SignatureMethod']!r} is not supported; "
                           f"use {V1_SIGNATURE_METHOD}.")
        version = params.get("SignatureVersion")
        if version != V1_SIGNATURE_VERSION:
            raise VendorErrorAnswer(400, "InvalidSignatureVersion",
                           f"Signature version {version!r} is not supported; use {V1_SIGNATURE_VERSION}.")
        key = self._access_key(params["AccessKeyId"])
        self._check_security_token(key, params.get("SecurityToken"))
        expected = v1_signature(key.secret, method, params)
        if not hmac.compare_digest(expected.encode(), params["Signature"].encode()):
            # The vendor's own answer, echoing its string to sign with every parameter (a SecurityToken,
            # a SignatureSecret) percent-encoded twice: clients must cope with it, and never show it.
            raise VendorErrorAnswer(400, "SignatureDoesNotMatch",
                           "Specified signature is not matched with our calculation. server string to sign is:"
                           + v1_string_to_sign(method, params))
        self._check_time_and_nonce(key, params["Timestamp"], params["SignatureNonce"])
        return Caller(key.id, "V1")


def _parse_v3(authorization: str) -> tuple[str, list[str], str]:
    """(access key id, signed header names, signature) of a V3 Authorization header."""
    algorithm = authorization.strip().partition(" ")[0]
    if algorithm != V3_ALGORITHM:
        raise VendorErrorAnswer(400, "InvalidSignatureMethod",
                                f"Signature algorithm {algorithm!r} is not supported; use {V3_ALGORITHM}.")
    try:
        return parse_v3_authorization(authorization)
    except ValueError as exc:
        raise VendorErrorAnswer(400, "IncompleteSignature",
                                f"The Authorization header is malformed: {exc}.") from None


def _check_v3_signed_headers(signed: set[str], headers: Mapping[str, str], token: str | None) -> None:
    """The headers a V3 signature must sign are signed, and every header it signs is in the request."""
    required = (*V3_REQUIRED_SIGNED_HEADERS, *(("x-acs-security-token",) if token is not None else ()))
    unsigned = [name for name in required if name not in signed]
    if unsigned:
        raise VendorErrorAnswer(400, "IncompleteSignature",
                                f"The request signature does not sign the header(s) {', '.join(unsigned)}.")
    uncovered = sorted(name for name in headers if _must_be_signed(name) and name not in signed)
    if uncovered:
        # The vendor's V3 rule: every common header present but Authorization is signed. The code the
        # live service answers with is not documented; IncompleteSignature is the documented code for
        # a signature that does not cover what it must.
        raise VendorErrorAnswer(400, "IncompleteSignature",
                                f"The request signature does not sign the header(s) {', '.join(uncovered)}, "
                                "which are present in the request.")
    absent = sorted(name for name in signed if name not in headers)
    if absent:
        raise VendorErrorAnswer(400, "IncompleteSignature",
                                f"The signed header(s) {', '.join(absent)} are not in the request.")
