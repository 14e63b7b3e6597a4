"""Signature checks of the emulator, in both algorithms, with the vendor's error codes."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from reconciler.aliyun.signing import (
    v1_signature,
    v3_authorization,
    v3_canonical_request,
    v3_signature,
)
from reconciler.emulator.verify import AccessKey, NonceCache
from tests.support.emulator import ACCESS_KEY, EMPTY_SHA256, Algorithm, Caller, make_app, make_state, send

ALGORITHMS: list[Algorithm] = ["V3", "V1"]
HOST = "apigateway.cn-hangzhou.aliyuncs.com"


def utc(offset_minutes: float = 0) -> datetime:
    return datetime.now(UTC) + timedelta(minutes=offset_minutes)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_correctly_signed_request_is_served(algorithm: Algorithm) -> None:
    body = Caller(make_app(make_state()), algorithm=algorithm).ok("DescribeSignatures")
    assert body["TotalCount"] == 0


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_wrong_secret_is_signature_does_not_match(algorithm: Algorithm) -> None:
    caller = Caller(make_app(make_state()), algorithm=algorithm, secret="wrongsecret")
    assert caller.error("DescribeSignatures") == (400, "SignatureDoesNotMatch")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_unknown_access_key_is_not_found(algorithm: Algorithm) -> None:
    caller = Caller(make_app(make_state()), algorithm=algorithm, access_key_id="someoneelse")
    assert caller.error("DescribeSignatures") == (404, "InvalidAccessKeyId.NotFound")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_reused_nonce_is_refused_the_second_time(algorithm: Algorithm) -> None:
    caller = Caller(make_app(make_state()), algorithm=algorithm, nonce=lambda: "fixed-nonce-1")
    caller.ok("DescribeSignatures")
    assert caller.error("DescribeSignatures") == (400, "SignatureNonceUsed")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_failed_request_does_not_burn_its_nonce(algorithm: Algorithm) -> None:
    app = make_app(make_state())
    Caller(app, algorithm=algorithm, secret="wrongsecret", nonce=lambda: "n-1").error("DescribeSignatures")
    Caller(app, algorithm=algorithm, nonce=lambda: "n-1").ok("DescribeSignatures")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("offset", [-16, 16])
def test_date_more_than_15_minutes_off_is_expired(algorithm: Algorithm, offset: int) -> None:
    caller = Caller(make_app(make_state()), algorithm=algorithm, clock=lambda: utc(offset))
    assert caller.error("DescribeSignatures") == (400, "InvalidTimeStamp.Expired")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_date_14_minutes_off_is_accepted(algorithm: Algorithm) -> None:
    Caller(make_app(make_state()), algorithm=algorithm, clock=lambda: utc(-14)).ok("DescribeSignatures")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_security_token_is_required_and_checked_when_the_emulator_has_one(algorithm: Algorithm) -> None:
    app = make_app(make_state(), keys=(AccessKey("stsid", "stssecret", "token-123"),))
    ok = Caller(app, algorithm=algorithm, access_key_id="stsid", secret="stssecret", security_token="token-123")
    ok.ok("DescribeSignatures")
    without = Caller(app, algorithm=algorithm, access_key_id="stsid", secret="stssecret")
    assert without.error("DescribeSignatures") == (400, "MissingSecurityToken")
    wrong = Caller(app, algorithm=algorithm, access_key_id="stsid", secret="stssecret", security_token="other")
    assert wrong.error("DescribeSignatures") == (400, "InvalidSecurityToken.MismatchWithAccessKey")
    static = Caller(make_app(make_state()), algorithm=algorithm, security_token="token-123")
    assert static.error("DescribeSignatures") == (400, "InvalidSecurityToken.MismatchWithAccessKey")


# --- hand-built requests, for the pieces the project's signer never leaves out ---


def v3_request(
    *, drop_header: str | None = None, sign_only: list[str] | None = None, body: bytes = b"",
    content_sha256: str = EMPTY_SHA256, authorization: str | None = None,
) -> httpx.Response:
    headers = {
        "host": HOST,
        "x-acs-action": "DescribeSignatures",
        "x-acs-version": "2016-07-14",
        "x-acs-date": utc().strftime("%Y-%m-%dT%H:%M:%SZ"),
        "x-acs-signature-nonce": hashlib.md5(str(utc()).encode()).hexdigest(),
        "x-acs-content-sha256": content_sha256,
    }
    names = sign_only or sorted(headers)
    canonical = v3_canonical_request("POST", "/", {}, headers, names, content_sha256)
    signature = v3_signature(ACCESS_KEY.secret, canonical)
    if drop_header is not None:
        del headers[drop_header]
    headers["authorization"] = authorization or v3_authorization(ACCESS_KEY.id, names, signature)
    return send(make_app(make_state()), "POST", "/", headers=headers, content=body)


def test_v3_header_missing_from_the_request_is_incomplete_signature() -> None:
    response = v3_request(drop_header="x-acs-date")
    assert response.json()["Code"] == "IncompleteSignature"
    assert "x-acs-date" in response.json()["Message"]


@pytest.mark.parametrize("unsigned", ["host", "x-acs-action", "x-acs-signature-nonce", "x-acs-date"])
def test_v3_basics_must_be_signed(unsigned: str) -> None:
    names = [n for n in ["host", "x-acs-action", "x-acs-content-sha256", "x-acs-date", "x-acs-signature-nonce",
                         "x-acs-version"] if n != unsigned]
    response = v3_request(sign_only=names)
    assert (response.status_code, response.json()["Code"]) == (400, "IncompleteSignature")
    assert unsigned in response.json()["Message"]


def test_v3_body_not_matching_its_declared_hash_fails() -> None:
    response = v3_request(body=b"SignatureName=x")
    assert response.json()["Code"] == "SignatureDoesNotMatch"


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        ("ACS3-HMAC-SHA256 Credential=testid", "IncompleteSignature"),
        ("ACS3-HMAC-SM3 Credential=testid,SignedHeaders=host,Signature=00", "InvalidSignatureMethod"),
    ],
)
def test_v3_malformed_authorization(authorization: str, code: str) -> None:
    assert v3_request(authorization=authorization).json()["Code"] == code


def v1_params(**overrides: str | None) -> dict[str, str]:
    params = {
        "Action": "DescribeSignatures", "Version": "2016-07-14", "Format": "JSON", "AccessKeyId": ACCESS_KEY.id,
        "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0", "SignatureNonce": str(utc().timestamp()),
        "Timestamp": utc().strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    params.update({k: v for k, v in overrides.items() if v is not None})
    for name in [k for k, v in overrides.items() if v is None]:
        del params[name]
    params["Signature"] = v1_signature(ACCESS_KEY.secret, "POST", params)
    return params


@pytest.mark.parametrize("param", ["AccessKeyId", "SignatureNonce", "Timestamp", "SignatureMethod"])
def test_v1_missing_parameter(param: str) -> None:
    response = send(make_app(make_state()), "POST", "/", params=v1_params(**{param: None}))
    assert (response.status_code, response.json()["Code"]) == (400, f"Missing{param}")


def test_v1_without_any_signature_is_missing_signature() -> None:
    params = v1_params()
    del params["Signature"]
    assert send(make_app(make_state()), "POST", "/", params=params).json()["Code"] == "MissingSignature"


@pytest.mark.parametrize(
    ("override", "code"),
    [
        ({"SignatureMethod": "HMAC-SHA256"}, "InvalidSignatureMethod"),
        ({"SignatureVersion": "2.0"}, "InvalidSignatureVersion"),
        ({"Timestamp": "2026-11-23 10:00:00"}, "InvalidTimeStamp.Format"),
        ({"Format": "XML"}, "InvalidFormat"),
        ({"Action": None}, "MissingAction"),
    ],
)
def test_v1_bad_common_parameters(override: dict[str, str | None], code: str) -> None:
    response = send(make_app(make_state()), "POST", "/", params=v1_params(**override))
    assert response.json()["Code"] == code


def test_v1_also_accepts_get_and_lowercase_json_format() -> None:
    params = v1_params(Format="json")
    params["Signature"] = v1_signature(ACCESS_KEY.secret, "GET", {k: v for k, v in params.items()})
    response = send(make_app(make_state()), "GET", "/", params=params)
    assert response.status_code == 200, response.text


def test_repeated_parameter_is_refused() -> None:
    response = send(make_app(make_state()), "POST", "/?PageSize=1&PageSize=2")
    assert response.json()["Code"] == "InvalidParameter"


def test_nonces_are_forgotten_once_their_timestamp_leaves_the_window() -> None:
    cache = NonceCache()
    start = 1_000_000.0
    for i in range(1000):
        assert cache.use("k", f"n{i}", request_time=start + i, now=start + i)
    assert not cache.use("k", "n999", request_time=start + 999, now=start + 999)
    assert cache.use("other", "n999", request_time=start + 999, now=start + 999)
    later = start + 999 + 15 * 60 + 1
    assert cache.use("k", "fresh", request_time=later, now=later)
    assert len(cache) == 1
