"""The signing functions reproduce, exactly, the vendor's published signing examples (the V3 reference's
RunInstances request, the RPC V1 reference's DescribeRegions request) and a DescribeSignatures request
captured from the vendor's Python SDK."""

from __future__ import annotations

import hashlib

import pytest

from reconciler.aliyun.signing import (
    V3_ALGORITHM,
    canonical_query,
    parse_v3_authorization,
    percent_encode,
    v1_signature,
    v1_string_to_sign,
    v3_authorization,
    v3_canonical_request,
    v3_signature,
    v3_signed_header_names,
)

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

RUN_INSTANCES_HEADERS = {
    "host": "ecs.cn-shanghai.aliyuncs.com",
    "x-acs-action": "RunInstances",
    "x-acs-version": "2014-05-26",
    "x-acs-date": "2023-10-26T10:22:32Z",
    "x-acs-signature-nonce": "3156853299f313e23d1673dc12e1703d",
    "x-acs-content-sha256": EMPTY_SHA256,
}
RUN_INSTANCES_QUERY = {
    "ImageId": "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd",
    "RegionId": "cn-shanghai",
}

# Header names in mixed case and one value with padding: lookups ignore case, values are trimmed.
SDK_CAPTURED_HEADERS = {
    "Host": "127.0.0.1:8080",
    "x-acs-version": "2016-07-14",
    "x-acs-action": "DescribeSignatures",
    "User-Agent": "AlibabaCloud (Linux; x86_64) Python/3.11.7 Core/0.4.3 TeaDSL/2",
    "x-acs-date": "2026-11-23T16:10:36Z",
    "x-acs-signature-nonce": "10b9c0d353cc4763a2e8757cbc890341",
    "Accept": " application/json ",
    "x-acs-content-sha256": EMPTY_SHA256,
    "x-acs-credentials-provider": "static_ak",
    "Authorization": "not signed",
    "Content-Length": "0",
}
SDK_CAPTURED_QUERY = {"PageNumber": "1", "PageSize": "10", "SignatureName": "mysig"}
SDK_CAPTURED_AUTHORIZATION = (
    "ACS3-HMAC-SHA256 Credential=testid,SignedHeaders=accept;host;user-agent;x-acs-action;"
    "x-acs-content-sha256;x-acs-credentials-provider;x-acs-date;x-acs-signature-nonce;x-acs-version,"
    "Signature=a8d7e75982473eb0e7ef6542e1bc9fcc329af04aa122024ddbeadac7c43b0fc4"
)

V1_PARAMS = {
    "Action": "DescribeRegions",
    "Format": "XML",
    "Version": "2014-05-26",
    "AccessKeyId": "testid",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureVersion": "1.0",
    "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
    "Timestamp": "2016-02-23T12:46:24Z",
}


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        ("AZaz09-_.~", "AZaz09-_.~"),
        ("a b", "a%20b"),
        ("a+b*c/d", "a%2Bb%2Ac%2Fd"),
        ("2016-02-23T12:46:24Z", "2016-02-23T12%3A46%3A24Z"),
        ("x@#!", "x%40%23%21"),
        ("é", "%C3%A9"),
    ],
)
def test_percent_encode_leaves_only_unreserved_characters(raw: str, encoded: str) -> None:
    assert percent_encode(raw) == encoded


def test_canonical_query_sorts_by_name_and_encodes_both_sides() -> None:
    assert canonical_query({"b": "x y", "a b": "1", "A": "*"}) == "A=%2A&a%20b=1&b=x%20y"
    assert canonical_query({}) == ""


def test_v3_run_instances_vector() -> None:
    names = v3_signed_header_names(RUN_INSTANCES_HEADERS)
    assert ";".join(names) == ("host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version")
    request = v3_canonical_request("POST", "/", RUN_INSTANCES_QUERY, RUN_INSTANCES_HEADERS, names, EMPTY_SHA256)
    assert hashlib.sha256(request.encode()).hexdigest() == (
        "7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"
    )
    assert v3_signature("YourAccessKeySecret", request) == (
        "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
    )


def test_v3_sdk_captured_vector_signs_nine_headers() -> None:
    names = v3_signed_header_names(SDK_CAPTURED_HEADERS)
    assert len(names) == 9
    request = v3_canonical_request("POST", "/", SDK_CAPTURED_QUERY, SDK_CAPTURED_HEADERS, names, EMPTY_SHA256)
    signature = v3_signature("testsecret", request)
    assert v3_authorization("testid", names, signature) == SDK_CAPTURED_AUTHORIZATION


def test_v3_signed_header_names_include_content_type_and_skip_others() -> None:
    headers = {"Content-Type": "application/json", "HOST": "h", "X-Acs-Date": "d", "Content-Length": "0"}
    assert v3_signed_header_names(headers) == ["content-type", "host", "x-acs-date"]


def test_v3_canonical_request_rejects_a_signed_header_that_is_absent() -> None:
    with pytest.raises(ValueError, match="x-acs-date"):
        v3_canonical_request("POST", "/", {}, {"host": "h"}, ["host", "x-acs-date"], EMPTY_SHA256)


def test_parse_v3_authorization_round_trips_the_sdk_header() -> None:
    access_key_id, names, signature = parse_v3_authorization(SDK_CAPTURED_AUTHORIZATION)
    assert access_key_id == "testid"
    assert names[0] == "accept" and names[-1] == "x-acs-version" and len(names) == 9
    assert signature == "a8d7e75982473eb0e7ef6542e1bc9fcc329af04aa122024ddbeadac7c43b0fc4"


@pytest.mark.parametrize(
    "value",
    [
        "",
        "HMAC-SHA1 Credential=a,SignedHeaders=host,Signature=" + "0" * 64,
        f"{V3_ALGORITHM} Credential=a,SignedHeaders=host",
        f"{V3_ALGORITHM} Credential=a,SignedHeaders=host,Signature={'0' * 64},Extra=1",
        f"{V3_ALGORITHM} Credential=a,Credential=b,SignedHeaders=host,Signature={'0' * 64}",
        f"{V3_ALGORITHM} Credential=,SignedHeaders=host,Signature={'0' * 64}",
        f"{V3_ALGORITHM} Credential=a,SignedHeaders=,Signature={'0' * 64}",
        f"{V3_ALGORITHM} Credential=a,SignedHeaders=host,Signature=xyz",
        f"{V3_ALGORITHM} Credential=a,SignedHeaders=host,Signature",
    ],
)
def test_parse_v3_authorization_rejects_malformed_values(value: str) -> None:
    with pytest.raises(ValueError):
        parse_v3_authorization(value)


def test_v1_get_vector() -> None:
    assert v1_string_to_sign("GET", V1_PARAMS) == (
        "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML"
        "%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"
        "%26SignatureVersion%3D1.0%26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26"
    )
    assert v1_signature("testsecret", "GET", V1_PARAMS) == "OLeaidS1JvxuMvnyHOwuJ+uX5qY="


def test_v1_post_vector() -> None:
    assert v1_signature("testsecret", "POST", V1_PARAMS) == "MxbnVAM4w6sft9xjVpe/GCKueuk="


def test_v1_ignores_a_signature_parameter_so_a_verifier_can_pass_the_whole_query() -> None:
    received = {**V1_PARAMS, "Signature": "MxbnVAM4w6sft9xjVpe/GCKueuk="}
    assert v1_signature("testsecret", "POST", received) == "MxbnVAM4w6sft9xjVpe/GCKueuk="
