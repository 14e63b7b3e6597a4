"""The httpx auth flows sign exactly as the vendor's SDK does."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from itertools import count

import httpx
import pytest
from pydantic import SecretStr

from reconciler.aliyun.auth import ACTION_EXTENSION, CANONICAL_QUERY_EXTENSION, AcsV3Auth, RpcV1Auth
from reconciler.aliyun.credentials import Credentials
from reconciler.aliyun.signing import (
    parse_v3_authorization,
    v1_signature,
    v3_canonical_request,
    v3_signature,
)

SDK_USER_AGENT = "AlibabaCloud (Linux; x86_64) Python/3.11.7 Core/0.4.3 TeaDSL/2"
SDK_AUTHORIZATION = (
    "ACS3-HMAC-SHA256 Credential=testid,SignedHeaders=accept;host;user-agent;x-acs-action;"
    "x-acs-content-sha256;x-acs-credentials-provider;x-acs-date;x-acs-signature-nonce;x-acs-version,"
    "Signature=a8d7e75982473eb0e7ef6542e1bc9fcc329af04aa122024ddbeadac7c43b0fc4"
)
PINNED_DATE = datetime(2026, 11, 23, 16, 10, 36, tzinfo=UTC)
PLAIN = Credentials(access_key_id="testid", access_key_secret=SecretStr("testsecret"))
STS = Credentials(
    access_key_id="STS.id", access_key_secret=SecretStr("stssecret"), security_token=SecretStr("tok en+/=")
)


def request(action: str = "DescribeSignatures", url: str = "http://127.0.0.1:8080/", **headers: str) -> httpx.Request:
    return httpx.Request("POST", url, headers=headers, extensions={ACTION_EXTENSION: action})


def sign(auth: httpx.Auth, unsigned: httpx.Request) -> httpx.Request:
    return next(auth.sync_auth_flow(unsigned))


def test_v3_reproduces_the_sdk_captured_request_when_nonce_and_date_are_pinned() -> None:
    auth = AcsV3Auth(PLAIN, nonce=lambda: "10b9c0d353cc4763a2e8757cbc890341", clock=lambda: PINNED_DATE)
    unsigned = request(
        url="http://127.0.0.1:8080/?PageNumber=1&PageSize=10&SignatureName=mysig",
        **{"user-agent": SDK_USER_AGENT, "x-acs-credentials-provider": "static_ak"},
    )
    signed = sign(auth, unsigned)
    assert signed.headers["x-acs-date"] == "2026-11-23T16:10:36Z"
    assert signed.headers["accept"] == "application/json"
    assert signed.headers["authorization"] == SDK_AUTHORIZATION


def test_v3_sts_token_is_sent_and_signed_and_the_query_uses_percent_20() -> None:
    signed = sign(AcsV3Auth(STS), request(url="http://127.0.0.1/?SignatureName=a%20b+c"))
    assert signed.headers["x-acs-security-token"] == "tok en+/="
    assert signed.url.query == b"SignatureName=a%20b%20c"
    access_key_id, names, signature = parse_v3_authorization(signed.headers["authorization"])
    assert access_key_id == "STS.id"
    assert "x-acs-security-token" in names
    # As the vendor's SDK: with a token, the access key id travels as a signed header too.
    assert signed.headers["x-acs-accesskey-id"] == "STS.id" and "x-acs-accesskey-id" in names
    assert "x-acs-accesskey-id" not in sign(AcsV3Auth(PLAIN), request()).headers
    assert signed.headers["x-acs-content-sha256"] == hashlib.sha256(b"").hexdigest()
    canonical = v3_canonical_request(
        "POST", "/", {"SignatureName": "a b c"}, signed.headers, names, hashlib.sha256(b"").hexdigest()
    )
    assert v3_signature("stssecret", canonical) == signature


@pytest.mark.parametrize("written", [
    "PageNumber=1&PageSize=10&SignatureName=mysig",  # as the client writes it: signed as it is
    "SignatureName=mysig&PageSize=10&PageNumber=1",  # a stale claim: the URL is parsed and re-encoded
])
def test_v3_signs_the_query_the_url_carries_whatever_the_caller_claims(written: str) -> None:
    auth = AcsV3Auth(PLAIN, nonce=lambda: "10b9c0d353cc4763a2e8757cbc890341", clock=lambda: PINNED_DATE)
    unsigned = httpx.Request(
        "POST", "http://127.0.0.1:8080/?PageNumber=1&PageSize=10&SignatureName=mysig",
        headers={"user-agent": SDK_USER_AGENT, "x-acs-credentials-provider": "static_ak"},
        extensions={ACTION_EXTENSION: "DescribeSignatures", CANONICAL_QUERY_EXTENSION: written},
    )
    assert sign(auth, unsigned).headers["authorization"] == SDK_AUTHORIZATION


def test_v3_signs_each_send_with_a_new_nonce_and_date() -> None:
    seconds = count()
    auth = AcsV3Auth(PLAIN, clock=lambda: datetime(2026, 1, 1, 0, 0, next(seconds), tzinfo=UTC))
    first = sign(auth, request())
    second = sign(auth, request())
    assert first.headers["x-acs-signature-nonce"] != second.headers["x-acs-signature-nonce"]
    assert (first.headers["x-acs-date"], second.headers["x-acs-date"]) == (
        "2026-01-01T00:00:00Z",
        "2026-01-01T00:00:01Z",
    )
    assert first.headers["authorization"] != second.headers["authorization"]


def test_v1_puts_common_parameters_and_a_valid_signature_in_the_query() -> None:
    auth = RpcV1Auth(STS, nonce=lambda: "nonce-1", clock=lambda: PINNED_DATE)
    signed = sign(auth, request("DescribeApiSignatures", "http://127.0.0.1/?GroupId=g1&StageName=RELEASE"))
    params = dict(signed.url.params)
    signature = params.pop("Signature")
    assert params == {
        "AccessKeyId": "STS.id",
        "Action": "DescribeApiSignatures",
        "Format": "JSON",
        "GroupId": "g1",
        "SecurityToken": "tok en+/=",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": "nonce-1",
        "SignatureVersion": "1.0",
        "StageName": "RELEASE",
        "Timestamp": "2026-11-23T16:10:36Z",
        "Version": "2016-07-14",
    }
    assert signature == v1_signature("stssecret", "POST", params)
    assert b"+" not in signed.url.query.replace(b"%2B", b"")
    assert "authorization" not in signed.headers


@pytest.mark.parametrize("auth", [AcsV3Auth(PLAIN), RpcV1Auth(PLAIN)])
def test_a_request_without_an_action_is_not_signed(auth: httpx.Auth) -> None:
    with pytest.raises(ValueError, match="aliyun_action"):
        sign(auth, httpx.Request("POST", "http://127.0.0.1/"))
