"""Fuzzing the emulator's request parsing: random methods, paths, query strings and headers always get the
vendor's JSON error (Code, Message, RequestId, HostId) with a 4xx status - never a 500 or a crash."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.emulator import make_app, make_state, send

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
APP = make_app(make_state(signatures=3, apis=3, bound={"RELEASE": 2}))

PRINTABLE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
PARAM_NAMES = st.sampled_from(["Action", "Version", "Format", "AccessKeyId", "Signature", "SignatureMethod",
                               "SignatureVersion", "SignatureNonce", "Timestamp", "GroupId", "StageName",
                               "PageNumber", "PageSize", "ApiIds", "SignatureId", "SignatureName",
                               "SignatureKey", "SignatureSecret", "RegionId"]) | PRINTABLE
HEADER_NAMES = st.sampled_from(["authorization", "x-acs-action", "x-acs-version", "x-acs-date",
                                "x-acs-signature-nonce", "x-acs-content-sha256", "x-acs-security-token",
                                "content-type", "host"]) | st.from_regex(r"x-[a-z]{1,12}", fullmatch=True)
HEADER_VALUES = st.one_of(
    PRINTABLE,
    st.sampled_from(["ACS3-HMAC-SHA256 Credential=testid,SignedHeaders=host;x-acs-action,Signature=00",
                     "ACS3-HMAC-SHA256 ", "application/x-www-form-urlencoded", "DescribeSignatures", "2016-07-14",
                     "2024-01-01T00:00:00Z"]))


def assert_vendor_error(response_status: int, body: dict[str, object]) -> None:
    assert 400 <= response_status < 500, (response_status, body)
    assert {"Code", "Message", "RequestId"} <= set(body), body
    assert all(isinstance(body[k], str) and body[k] for k in ("Code", "Message", "RequestId")), body


@FUZZ
@given(st.lists(st.tuples(PARAM_NAMES, PRINTABLE), max_size=8),
       st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=6),
       st.sampled_from(["POST", "GET", "PUT", "DELETE", "PATCH"]),
       st.sampled_from(["/", "/", "/", "/x", "//", "/?"]))
def test_random_requests_get_a_vendor_error(params: list[tuple[str, str]], headers: dict[str, str], method: str,
                                            path: str) -> None:
    response = send(APP, method, path, params=params, headers=headers)
    assert_vendor_error(response.status_code, response.json())


@FUZZ
@given(st.binary(max_size=200), st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=4))
def test_raw_query_strings_and_bodies_get_a_vendor_error(raw: bytes, headers: dict[str, str]) -> None:
    query = raw.replace(b"#", b"%23")
    response = send(APP, "POST", "/", content=raw, headers={**headers, "content-type":
                                                             "application/x-www-form-urlencoded"},
                    params=query.decode("latin-1"))
    assert_vendor_error(response.status_code, response.json())
