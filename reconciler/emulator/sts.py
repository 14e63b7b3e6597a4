"""Stand-ins for where temporary credentials come from, beside the API Gateway emulator: STS
(``AssumeRole``, ``AssumeRoleWithOIDC``, API version 2015-04-01), the ECS instance metadata service
(IMDSv2 token, then the RAM role's credentials) and a credentials URI.

Every key they hand out goes into a key ring (a ``dict`` of `verify.AccessKey`) shared with the
gateway emulator's `RequestVerifier`, so the gateway accepts the token from then on and refuses it,
``InvalidSecurityToken.Expired``, once it has expired. ``lifetime`` sets how long an issued key lives
(default: the ``DurationSeconds`` asked for, else 3600 s, as STS does); tests give short lifetimes and an
injected clock, to see refreshes without waiting.

Documented behaviour followed: ``AssumeRole`` is an RPC V1-signed call of a known access key (an STS key
included, which is what a ChainableRamRoleArn profile sends); ``AssumeRoleWithOIDC`` is not signed and
carries ``RoleArn``, ``OIDCProviderArn`` and ``OIDCToken``; answers are ``{RequestId, Credentials:
{AccessKeyId, AccessKeySecret, SecurityToken, Expiration}, AssumedRoleUser: {...}}``. The metadata
service answers ``PUT /latest/api/token`` (header ``X-aliyun-ecs-metadata-token-ttl-seconds``),
``GET /latest/meta-data/ram/security-credentials/`` (the role name) and ``.../<role>`` (credentials with
``Code: Success``). Where the emulator chose, it says so: error codes for a refused OIDC token
(``AuthenticationFail.OIDCToken.Invalid``) and an unknown role (``EntityNotExist.Role``) follow the
vendor's code style but their exact text is not in the documentation the project holds; a metadata
request without the IMDSv2 token when ``imds_v2_only`` is 401, the status the vendor documents for
IMDSv1 refused.
"""

from __future__ import annotations

import json
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from reconciler.emulator.apierror import VendorErrorAnswer, missing
from reconciler.emulator.app import AsgiScope, Receive, Send
from reconciler.emulator.verify import AccessKey, RequestVerifier
from reconciler.vendor_rules import format_timestamp

STS_VERSION = "2015-04-01"
DEFAULT_LIFETIME = 3600.0
_ROLE_ARN = re.compile(r"acs:ram::\d+:role/[A-Za-z0-9._-]{1,64}")


def _now_text(moment: float) -> str:
    return format_timestamp(datetime.fromtimestamp(moment, UTC))


@dataclass
class Issuer:
    """Mints temporary keys into the shared key ring; ``issued`` lists them in order (for tests)."""

    key_ring: dict[str, AccessKey]
    clock: Callable[[], float] = time.time
    lifetime: float | None = None
    issued: list[AccessKey] = field(default_factory=list)

    def issue(self, duration: float | None = None) -> AccessKey:
        lifetime = self.lifetime if self.lifetime is not None else (duration or DEFAULT_LIFETIME)
        key = AccessKey(f"STS.{secrets.token_hex(12)}", secrets.token_urlsafe(24),
                        secrets.token_urlsafe(48), expires_at=self.clock() + lifetime)
        self.key_ring[key.id] = key
        self.issued.append(key)
        return key

    def credentials_body(self, key: AccessKey) -> dict[str, str]:
        assert key.expires_at is not None and key.security_token is not None
        return {"AccessKeyId": key.id, "AccessKeySecret": key.secret, "SecurityToken": key.security_token,
                "Expiration": _now_text(key.expires_at)}


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _answer(send: Send, status: int, body: bytes, content_type: str = "application/json") -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class StsApp:
    """STS over ASGI: ``AssumeRole`` (signed by a known key) and ``AssumeRoleWithOIDC``."""

    def __init__(self, issuer: Issuer, *, oidc_tokens: Mapping[str, str] | None = None,
                 roles: Iterable[str] | None = None) -> None:
        self.issuer = issuer
        self.verifier = RequestVerifier(issuer.key_ring, issuer.clock)
        self.oidc_tokens = dict(oidc_tokens or {})  # OIDC provider ARN -> the token it accepts
        self.roles = set(roles) if roles is not None else None  # None: any well-formed role ARN
        self.calls: list[str] = []

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = await _read_body(receive)
        request_id = str(uuid.uuid4()).upper()
        try:
            payload, status = self._handle(scope, body), 200
        except VendorErrorAnswer as error:
            payload = {"Code": error.code, "Message": error.message, "HostId": "sts.aliyuncs.com",
                       "Recommend": f"https://api.aliyun.com/troubleshoot?q={error.code}"}
            status = error.status
        payload["RequestId"] = request_id
        await _answer(send, status, json.dumps(payload).encode())

    def _handle(self, scope: AsgiScope, body: bytes) -> dict[str, Any]:
        pairs = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if body and headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            pairs += parse_qsl(body.decode("latin-1"), keep_blank_values=True)
        params = dict(pairs)
        action = params.get("Action")
        self.calls.append(action or "")
        if params.get("Version") != STS_VERSION:
            raise VendorErrorAnswer(400, "InvalidVersion",
                                    f"Specified parameter Version is not valid; use {STS_VERSION}.")
        duration = _duration(params)
        role_arn = params.get("RoleArn") or ""
        if action == "AssumeRole":
            self.verifier.verify(scope["method"].upper(), scope["path"], headers, params, body)
            self._check_role(role_arn)
            return self._assumed(role_arn, params, duration)
        if action == "AssumeRoleWithOIDC":
            for name in ("RoleArn", "OIDCProviderArn", "OIDCToken"):
                if not params.get(name):
                    raise missing(name)
            self._check_role(role_arn)
            expected = self.oidc_tokens.get(params["OIDCProviderArn"])
            if expected is None or not secrets.compare_digest(expected, params["OIDCToken"].strip()):
                raise VendorErrorAnswer(400, "AuthenticationFail.OIDCToken.Invalid", "The OIDC token is not valid.")
            return self._assumed(role_arn, params, duration)
        raise VendorErrorAnswer(404, "InvalidAction.NotFound", "Specified api is not found.")

    def _check_role(self, role_arn: str) -> None:
        if not role_arn:
            raise missing("RoleArn")
        if not _ROLE_ARN.fullmatch(role_arn) or (self.roles is not None and role_arn not in self.roles):
            raise VendorErrorAnswer(404, "EntityNotExist.Role", "The role does not exist.")

    def _assumed(self, role_arn: str, params: Mapping[str, str], duration: float | None) -> dict[str, Any]:
        key = self.issuer.issue(duration)
        session = params.get("RoleSessionName") or "session"
        return {"Credentials": self.issuer.credentials_body(key),
                "AssumedRoleUser": {"Arn": f"{role_arn}/{session}", "AssumedRoleId": f"3{key.id[4:14]}:{session}"}}


def _duration(params: Mapping[str, str]) -> float | None:
    raw = params.get("DurationSeconds")
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise VendorErrorAnswer(400, "InvalidParameter.DurationSeconds", "DurationSeconds is not an integer.") from None
    if value < 900 or value > 43200:
        raise VendorErrorAnswer(400, "InvalidParameter.DurationSeconds", "DurationSeconds must be 900 to 43200.")
    return float(value)


class InstanceMetadataApp:
    """The ECS metadata service's RAM-role endpoints (``100.100.100.200`` on a real instance)."""

    def __init__(self, issuer: Issuer, role_name: str, *, imds_v2_only: bool = False) -> None:
        self.issuer = issuer
        self.role_name = role_name
        self.imds_v2_only = imds_v2_only
        self.tokens: set[str] = set()
        self.requests: list[tuple[str, str, bool]] = []  # (method, path, carried an IMDSv2 token)

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await _read_body(receive)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        method, path = scope["method"].upper(), scope["path"]
        token = headers.get("x-aliyun-ecs-metadata-token")
        self.requests.append((method, path, token in self.tokens))
        base = "/latest/meta-data/ram/security-credentials/"
        if method == "PUT" and path == "/latest/api/token":
            if "x-aliyun-ecs-metadata-token-ttl-seconds" not in headers:
                await _answer(send, 400, b"missing ttl", "text/plain")
                return
            new = secrets.token_urlsafe(32)
            self.tokens.add(new)
            await _answer(send, 200, new.encode(), "text/plain")
            return
        if self.imds_v2_only and token not in self.tokens:
            await _answer(send, 401, b"", "text/plain")
            return
        if method == "GET" and path == base:
            await _answer(send, 200, self.role_name.encode(), "text/plain")
        elif method == "GET" and path == base + self.role_name:
            key = self.issuer.issue()
            body = {"Code": "Success", "LastUpdated": _now_text(self.issuer.clock()),
                    **self.issuer.credentials_body(key)}
            await _answer(send, 200, json.dumps(body).encode())
        else:
            await _answer(send, 404, b"Not Found", "text/plain")


class CredentialsUriApp:
    """A credentials URI (``ALIBABA_CLOUD_CREDENTIALS_URI``): GET answers ``{Code: Success, AccessKeyId, ...}``."""

    def __init__(self, issuer: Issuer) -> None:
        self.issuer = issuer

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await _read_body(receive)
        key = self.issuer.issue()
        await _answer(send, 200, json.dumps({"Code": "Success", **self.issuer.credentials_body(key)}).encode())
