"""The emulator's operations, in-process: response shapes, paging, the vendor's validation errors."""

from __future__ import annotations

import re

import pytest

from reconciler.aliyun.auth import AcsV3Auth
from reconciler.aliyun.credentials import Credentials
from reconciler.emulator.state import derived_id
from tests.support.emulator import Caller, bindings_of, make_app, make_state, send
from tests.support.paths import ROOT

G0 = derived_id("group", "g0")


def api(n: int, group: str = G0) -> str:
    return derived_id("api", group, f"api{n:03d}")


def sig_id(n: int) -> str:
    return derived_id("signature", f"sig{n:04d}")


def caller_for(*, signatures: int = 0, groups: int = 1, apis: int = 0, bound: dict[str, int] | None = None) -> Caller:
    return Caller(make_app(make_state(signatures=signatures, groups=groups, apis=apis, bound=bound)))


# --- paging ---


@pytest.mark.parametrize("count", [0, 1, 100, 101, 250])
def test_describe_signatures_pages_through_every_item_once(count: int) -> None:
    caller = caller_for(signatures=count)
    seen: list[str] = []
    pages = 0
    page_number = 1
    while True:
        body = caller.ok("DescribeSignatures", PageNumber=page_number, PageSize=100)
        assert (body["PageNumber"], body["PageSize"], body["TotalCount"]) == (page_number, 100, count)
        items = body["SignatureInfos"]["SignatureInfo"]
        if not items:
            break
        seen += [item["SignatureName"] for item in items]
        pages += 1
        page_number += 1
    assert seen == [f"sig{i:04d}" for i in range(count)]
    assert pages == -(-count // 100)


@pytest.mark.parametrize("count", [0, 1, 100, 101, 250])
def test_describe_api_signatures_pages_through_every_binding_once(count: int) -> None:
    caller = caller_for(signatures=1, apis=max(count, 1), bound={"RELEASE": count})
    names: list[str] = []
    for page_number in range(1, 5):
        body = caller.ok("DescribeApiSignatures", GroupId=G0, StageName="RELEASE", PageNumber=page_number,
                         PageSize=100)
        assert body["TotalCount"] == count
        names += [item["ApiName"] for item in body["ApiSignatures"]["ApiSignatureItem"]]
    assert names == [f"api{i:03d}" for i in range(count)]


def test_describe_signatures_item_shape_and_default_paging() -> None:
    body = caller_for(signatures=12).ok("DescribeSignatures")
    assert (body["PageNumber"], body["PageSize"], body["TotalCount"]) == (1, 10, 12)
    first = body["SignatureInfos"]["SignatureInfo"][0]
    assert first == {
        "SignatureId": sig_id(0), "SignatureName": "sig0000", "SignatureKey": "key0000",
        "SignatureSecret": "secret0000", "RegionId": "cn-hangzhou",
        "CreatedTime": "2024-01-01T00:00:00Z", "ModifiedTime": "2024-01-01T00:00:00Z",
    }
    assert re.fullmatch(r"[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}", body["RequestId"])


def test_page_beyond_the_end_is_an_empty_list_with_the_total() -> None:
    body = caller_for(signatures=3).ok("DescribeSignatures", PageNumber=7, PageSize=2)
    assert body["SignatureInfos"] == {"SignatureInfo": []}
    assert (body["PageNumber"], body["TotalCount"]) == (7, 3)


def test_describe_signatures_filters_by_ids_and_names() -> None:
    caller = caller_for(signatures=5)
    body = caller.ok("DescribeSignatures", SignatureId=f"{sig_id(1)},{sig_id(3)}")
    assert [i["SignatureName"] for i in body["SignatureInfos"]["SignatureInfo"]] == ["sig0001", "sig0003"]
    assert body["TotalCount"] == 2
    body = caller.ok("DescribeSignatures", SignatureName="sig0004")
    assert [i["SignatureId"] for i in body["SignatureInfos"]["SignatureInfo"]] == [sig_id(4)]


def test_describe_api_signatures_filters_by_api_ids_and_stage() -> None:
    caller = caller_for(signatures=1, apis=5, bound={"RELEASE": 4, "TEST": 1})
    body = caller.ok("DescribeApiSignatures", GroupId=G0, StageName="RELEASE", ApiIds=f"{api(3)},{api(1)},{api(4)}")
    items = body["ApiSignatures"]["ApiSignatureItem"]
    assert [i["ApiName"] for i in items] == ["api001", "api003"]
    assert set(items[0]) == {"ApiId", "ApiName", "SignatureId", "SignatureName", "BoundTime"}
    assert items[0]["SignatureId"] == sig_id(0)
    assert caller.ok("DescribeApiSignatures", GroupId=G0, StageName="TEST")["TotalCount"] == 1
    # The reference documents RELEASE and TEST only for this read.
    assert caller.error("DescribeApiSignatures", GroupId=G0, StageName="PRE") == (400, "InvalidStageName")


def test_describe_api_groups_pages_at_most_fifty() -> None:
    caller = caller_for(groups=60)
    body = caller.ok("DescribeApiGroups", PageNumber=2, PageSize=50)
    attributes = body["ApiGroupAttributes"]["ApiGroupAttribute"]
    assert body["TotalCount"] == 60
    assert [a["GroupName"] for a in attributes] == [f"g{i}" for i in range(50, 60)]
    assert attributes[0]["GroupId"] == derived_id("group", "g50")
    assert attributes[0]["RegionId"] == "cn-hangzhou"
    assert caller.error("DescribeApiGroups", PageSize=51) == (400, "InvalidPageSize")
    assert caller.ok("DescribeApiGroups", GroupName="g7")["ApiGroupAttributes"]["ApiGroupAttribute"][0][
        "GroupId"] == derived_id("group", "g7")
    assert caller.ok("DescribeApiGroups", GroupId="nope")["TotalCount"] == 0


def test_describe_apis_pages_the_apis_of_a_group_or_the_region() -> None:
    caller = caller_for(groups=3, apis=101)
    body = caller.ok("DescribeApis", GroupId=G0, PageNumber=2, PageSize=100)
    summaries = body["ApiSummarys"]["ApiSummary"]
    assert body["TotalCount"] == 101
    assert [(s["ApiId"], s["ApiName"], s["GroupId"], s["GroupName"]) for s in summaries] == [
        (api(100), "api100", G0, "g0")]
    assert caller.ok("DescribeApis", PageSize=100)["TotalCount"] == 303
    g2 = derived_id("group", "g2")
    body = caller.ok("DescribeApis", PageNumber=4, PageSize=100)
    assert [s["GroupId"] for s in body["ApiSummarys"]["ApiSummary"]] == [g2] * 3
    assert caller.ok("DescribeApis", GroupId=G0, ApiName="api09", PageSize=100)["TotalCount"] == 10
    assert caller.ok("DescribeApis", GroupId=G0, ApiId=api(5))["ApiSummarys"]["ApiSummary"][0]["ApiName"] == "api005"


# --- validation ---


@pytest.mark.parametrize(
    ("action", "params", "status", "code"),
    [
        ("DescribeSignatures", {"PageSize": 101}, 400, "InvalidPageSize"),
        ("DescribeSignatures", {"PageSize": 0}, 400, "InvalidPageSize"),
        ("DescribeSignatures", {"PageNumber": 0}, 400, "InvalidPageNumber"),
        ("DescribeSignatures", {"PageNumber": "x"}, 400, "InvalidPageNumber"),
        ("DescribeApiSignatures", {"StageName": "RELEASE"}, 400, "MissingGroupId"),
        ("DescribeApiSignatures", {"GroupId": G0}, 400, "MissingStageName"),
        ("DescribeApiSignatures", {"GroupId": G0, "StageName": "release"}, 400, "InvalidStageName"),
        ("DescribeApiSignatures", {"GroupId": "nope", "StageName": "TEST"}, 404, "NotFoundApiGroup"),
        ("DescribeApiSignatures", {"GroupId": G0, "StageName": "TEST",
                                   "ApiIds": ",".join(f"a{i}" for i in range(101))}, 400, "InvalidApiIds"),
        ("DescribeApis", {"StageName": "PROD"}, 400, "InvalidStageName"),
        ("CreateSignature", {"SignatureKey": "abcdef1", "SignatureSecret": "abcdef1"}, 400, "MissingSignatureName"),
        ("CreateSignature", {"SignatureName": "abcd", "SignatureSecret": "abcdef1"}, 400, "MissingSignatureKey"),
        ("CreateSignature", {"SignatureName": "abcd", "SignatureKey": "abcdef1"}, 400, "MissingSignatureSecret"),
        ("CreateSignature", {"SignatureName": "abc", "SignatureKey": "abcdef1", "SignatureSecret": "abcdef1"},
         400, "InvalidSignatureName"),
        ("CreateSignature", {"SignatureName": "a" * 51, "SignatureKey": "abcdef1", "SignatureSecret": "abcdef1"},
         400, "InvalidSignatureName"),
        ("CreateSignature", {"SignatureName": "_abcd", "SignatureKey": "abcdef1", "SignatureSecret": "abcdef1"},
         400, "InvalidSignatureName"),
        ("CreateSignature", {"SignatureName": "abcd", "SignatureKey": "abc-def", "SignatureSecret": "abcdef1"},
         400, "InvalidSignatureKey"),
        ("CreateSignature", {"SignatureName": "abcd", "SignatureKey": "a" * 21, "SignatureSecret": "abcdef1"},
         400, "InvalidSignatureKey"),
        ("CreateSignature", {"SignatureName": "abcd", "SignatureKey": "abcdef", "SignatureSecret": "1abcdef"},
         400, "InvalidSignatureSecret"),
        ("CreateSignature", {"SignatureName": "abcd", "SignatureKey": "abcdef", "SignatureSecret": "abc$def"},
         400, "InvalidSignatureSecret"),
        ("CreateSignature", {"SignatureName": "sig0000", "SignatureKey": "abcdef", "SignatureSecret": "abcdef"},
         400, "RepeatedSignatureName"),
        ("ModifySignature", {}, 400, "MissingSignatureId"),
        ("ModifySignature", {"SignatureId": "nope"}, 404, "NotFoundSignature"),
        ("ModifySignature", {"SignatureId": sig_id(0), "SignatureName": "sig0001"}, 400, "RepeatedSignatureName"),
        ("ModifySignature", {"SignatureId": sig_id(0), "SignatureSecret": "short"}, 400, "InvalidSignatureSecret"),
        ("DeleteSignature", {}, 400, "MissingSignatureId"),
        ("DeleteSignature", {"SignatureId": "nope"}, 404, "NotFoundSignature"),
        ("DeleteSignature", {"SignatureId": sig_id(0)}, 400, "DependencyViolation.Signature"),
        ("SetSignatureApis", {"SignatureId": sig_id(1), "StageName": "TEST", "ApiIds": api(0)}, 400,
         "MissingGroupId"),
        ("SetSignatureApis", {"GroupId": G0, "StageName": "TEST", "ApiIds": api(0)}, 400, "MissingSignatureId"),
        ("SetSignatureApis", {"GroupId": G0, "SignatureId": sig_id(1), "ApiIds": api(0)}, 400, "MissingStageName"),
        ("SetSignatureApis", {"GroupId": G0, "SignatureId": sig_id(1), "StageName": "TEST"}, 400, "MissingApiIds"),
        ("SetSignatureApis", {"GroupId": G0, "SignatureId": sig_id(1), "StageName": "DEV", "ApiIds": api(0)},
         400, "InvalidStageName"),
        ("SetSignatureApis", {"GroupId": "nope", "SignatureId": sig_id(1), "StageName": "TEST", "ApiIds": api(0)},
         404, "NotFoundApiGroup"),
        ("SetSignatureApis", {"GroupId": G0, "SignatureId": "nope", "StageName": "TEST", "ApiIds": api(0)},
         404, "NotFoundSignature"),
        ("SetSignatureApis", {"GroupId": G0, "SignatureId": sig_id(1), "StageName": "TEST",
                              "ApiIds": f"{api(0)},nope"}, 404, "NotFoundApi"),
        ("SetSignatureApis", {"GroupId": G0, "SignatureId": sig_id(1), "StageName": "TEST",
                              "ApiIds": ",".join(f"a{i}" for i in range(101))}, 400, "InvalidApiIds"),
        ("RemoveSignatureApis", {"GroupId": G0, "SignatureId": sig_id(0)}, 400, "MissingStageName"),
        ("RemoveSignatureApis", {"GroupId": G0, "SignatureId": "nope", "StageName": "RELEASE"}, 404,
         "NotFoundSignature"),
        ("RemoveSignatureApis", {"GroupId": G0, "SignatureId": sig_id(0), "StageName": "RELEASE",
                                 "ApiIds": "nope"}, 404, "NotFoundApi"),
        ("NoSuchAction", {}, 404, "InvalidAction.NotFound"),
    ],
)
def test_validation_errors_use_the_vendor_codes(action: str, params: dict[str, str | int], status: int,
                                                code: str) -> None:
    caller = caller_for(signatures=2, apis=3, bound={"RELEASE": 1})
    assert caller.error(action, **params) == (status, code)


def test_failed_writes_change_nothing() -> None:
    caller = caller_for(signatures=2, apis=3, bound={"RELEASE": 1})
    caller.error("SetSignatureApis", GroupId=G0, SignatureId=sig_id(1), StageName="RELEASE",
                 ApiIds=f"{api(1)},nope")
    assert bindings_of(caller.app.state, G0, "RELEASE") == {"api000": "sig0000"}


def test_error_body_carries_host_id_and_request_id_header() -> None:
    response = caller_for().call("DescribeApiSignatures", GroupId=G0)
    body = response.json()
    assert body["HostId"] == "apigateway.cn-hangzhou.aliyuncs.com"
    assert body["Message"] == "The input parameter StageName that is mandatory is not supplied."
    assert response.headers["x-acs-request-id"] == body["RequestId"]
    assert response.headers["content-type"] == "application/json;charset=utf-8"


def test_wrong_version_path_and_method_are_refused() -> None:
    app = make_app(make_state())
    auth = AcsV3Auth(Credentials(access_key_id="testid", access_key_secret="testsecret"), version="2014-05-26")
    response = send(app, "POST", "/", auth=auth, extensions={"aliyun_action": "DescribeSignatures"})
    assert (response.status_code, response.json()["Code"]) == (400, "InvalidVersion")
    assert send(app, "POST", "/other").json()["Code"] == "InvalidAction.NotFound"
    assert send(app, "PUT", "/").status_code == 405


# --- writes ---


def test_signature_lifecycle() -> None:
    caller = caller_for()
    created = caller.ok("CreateSignature", SignatureName="orders_backend", SignatureKey="ordersKey01",
                        SignatureSecret="orders@Secret#1")
    assert set(created) == {"RequestId", "SignatureId", "SignatureName"}
    assert re.fullmatch(r"[0-9a-f]{32}", created["SignatureId"])
    sid = created["SignatureId"]
    modified = caller.ok("ModifySignature", SignatureId=sid, SignatureName="orders_backend2",
                         SignatureSecret="newSecret01")
    assert modified["SignatureName"] == "orders_backend2"
    info = caller.ok("DescribeSignatures", SignatureId=sid)["SignatureInfos"]["SignatureInfo"][0]
    assert (info["SignatureName"], info["SignatureKey"], info["SignatureSecret"]) == (
        "orders_backend2", "ordersKey01", "newSecret01")
    assert info["ModifiedTime"] >= info["CreatedTime"]
    assert set(caller.ok("DeleteSignature", SignatureId=sid)) == {"RequestId"}
    assert caller.ok("DescribeSignatures")["TotalCount"] == 0
    assert caller.error("DeleteSignature", SignatureId=sid) == (404, "NotFoundSignature")
    # The name is free again once deleted.
    caller.ok("CreateSignature", SignatureName="orders_backend2", SignatureKey="k" * 6, SignatureSecret="s" * 6)


def test_one_signature_per_api_per_stage_set_replaces_the_previous_binding() -> None:
    caller = caller_for(signatures=2, apis=3, bound={"RELEASE": 2})
    caller.ok("SetSignatureApis", GroupId=G0, SignatureId=sig_id(1), StageName="RELEASE",
              ApiIds=f"{api(1)},{api(2)},{api(2)}")
    state = caller.app.state
    assert bindings_of(state, G0, "RELEASE") == {"api000": "sig0000", "api001": "sig0001", "api002": "sig0001"}
    body = caller.ok("DescribeApiSignatures", GroupId=G0, StageName="RELEASE")
    assert body["TotalCount"] == 3
    # Stages are independent.
    caller.ok("SetSignatureApis", GroupId=G0, SignatureId=sig_id(0), StageName="TEST", ApiIds=api(1))
    assert bindings_of(state, G0, "TEST") == {"api001": "sig0000"}
    assert bindings_of(state, G0, "RELEASE")["api001"] == "sig0001"
    # sig0000 keeps api000 in RELEASE and api001 in TEST; once both are unbound it can be deleted.
    assert caller.error("DeleteSignature", SignatureId=sig_id(0)) == (400, "DependencyViolation.Signature")
    caller.ok("RemoveSignatureApis", GroupId=G0, SignatureId=sig_id(0), StageName="RELEASE", ApiIds=api(0))
    caller.ok("RemoveSignatureApis", GroupId=G0, SignatureId=sig_id(0), StageName="TEST")
    caller.ok("DeleteSignature", SignatureId=sig_id(0))


def test_binding_again_to_the_same_signature_keeps_the_bound_time() -> None:
    caller = caller_for(signatures=1, apis=1, bound={"RELEASE": 1})
    before = caller.ok("DescribeApiSignatures", GroupId=G0, StageName="RELEASE")["ApiSignatures"]
    caller.ok("SetSignatureApis", GroupId=G0, SignatureId=sig_id(0), StageName="RELEASE", ApiIds=api(0))
    after = caller.ok("DescribeApiSignatures", GroupId=G0, StageName="RELEASE")["ApiSignatures"]
    assert after == before


def test_remove_without_api_ids_unbinds_only_that_signature_in_that_stage() -> None:
    caller = caller_for(signatures=2, apis=4, bound={"RELEASE": 3, "TEST": 2})
    caller.ok("SetSignatureApis", GroupId=G0, SignatureId=sig_id(1), StageName="RELEASE", ApiIds=api(2))
    caller.ok("RemoveSignatureApis", GroupId=G0, SignatureId=sig_id(0), StageName="RELEASE")
    state = caller.app.state
    assert bindings_of(state, G0, "RELEASE") == {"api002": "sig0001"}
    assert bindings_of(state, G0, "TEST") == {"api000": "sig0000", "api001": "sig0000"}


def test_remove_listed_apis_leaves_another_signatures_binding_alone() -> None:
    caller = caller_for(signatures=2, apis=2, bound={"RELEASE": 1})
    caller.ok("SetSignatureApis", GroupId=G0, SignatureId=sig_id(1), StageName="RELEASE", ApiIds=api(1))
    caller.ok("RemoveSignatureApis", GroupId=G0, SignatureId=sig_id(0), StageName="RELEASE",
              ApiIds=f"{api(0)},{api(1)}")
    assert bindings_of(caller.app.state, G0, "RELEASE") == {"api001": "sig0001"}


def test_every_code_the_emulator_answers_is_documented_or_marked_invented() -> None:
    import re

    from reconciler.emulator.apierror import INVENTED

    documented = re.compile(r"(Missing|Invalid|InvalidFormat|NotFound|Repeated|Duplicate)[A-Z]\w*|RepeatedCommit|"
                            r"InternalError|ServiceUnavailable|Throttling(\.User)?|SignatureDoesNotMatch|"
                            r"InvalidAccessKeyId\.NotFound|IncompleteSignature|SignatureNonceUsed")
    source = "".join(p.read_text() for p in (ROOT / "reconciler/emulator").glob("*.py"))
    codes = set(re.findall(r'VendorErrorAnswer\(\s*\d{3},\s*"([A-Za-z.]+)"', source))
    assert len(codes) > 15
    unmarked = sorted(c for c in codes if c not in INVENTED and not documented.fullmatch(c))
    assert unmarked == []
