"""Alibaba's own SDK (alibabacloud-cloudapi20160714), in V3 and in RPC V1 signing, drives the emulator
over real HTTP through every operation the emulator serves; responses parse into the SDK's models."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alibabacloud_cloudapi20160714 import models
from alibabacloud_cloudapi20160714.client import Client
from alibabacloud_tea_openapi.models import Config

from reconciler.emulator.server import RunningEmulator, running_emulator
from reconciler.emulator.state import derived_id
from tests.support.emulator import bindings_of, make_state

G0 = derived_id("group", "g0")
SIG0 = derived_id("signature", "sig0000")


def api(n: int) -> str:
    return derived_id("api", G0, f"api{n:03d}")


def sdk_client(emulator: RunningEmulator, algorithm: str | None, secret: str | None = None) -> Client:
    return Client(Config(
        access_key_id=emulator.access_key_id,
        access_key_secret=secret or emulator.access_key_secret,
        endpoint=emulator.endpoint,
        protocol="http",
        signature_algorithm=algorithm,
    ))


# One emulator per algorithm for the whole module (starting one costs ~0.2 s); the write test
# removes what it creates, so the describe tests see the seeded state whatever the order.
@pytest.fixture(scope="module", params=[None, "v2"], ids=["v3", "rpc-v1"])
def sdk(request: pytest.FixtureRequest) -> Iterator[tuple[Client, RunningEmulator, str | None]]:
    state = make_state(signatures=12, groups=2, apis=3, bound={"RELEASE": 2})
    with running_emulator(state) as emulator:
        yield sdk_client(emulator, request.param), emulator, request.param


def test_describe_signatures(sdk: tuple[Client, RunningEmulator, str | None]) -> None:
    client, _, _ = sdk
    body = client.describe_signatures(models.DescribeSignaturesRequest(page_number=2, page_size=10)).body
    assert (body.page_number, body.page_size, body.total_count) == (2, 10, 12)
    infos = body.signature_infos.signature_info
    assert [i.signature_name for i in infos] == ["sig0010", "sig0011"]
    assert (infos[0].signature_id, infos[0].signature_key, infos[0].signature_secret, infos[0].region_id) == (
        derived_id("signature", "sig0010"), "key0010", "secret0010", "cn-hangzhou")
    assert infos[0].created_time == "2024-01-01T00:00:00Z"
    assert body.request_id


def test_describe_api_signatures(sdk: tuple[Client, RunningEmulator, str | None]) -> None:
    client, _, _ = sdk
    body = client.describe_api_signatures(models.DescribeApiSignaturesRequest(
        group_id=G0, stage_name="RELEASE", api_ids=f"{api(1)},{api(2)}", page_size=100)).body
    assert body.total_count == 1
    item = body.api_signatures.api_signature_item[0]
    assert (item.api_id, item.api_name, item.signature_id, item.signature_name) == (api(1), "api001", SIG0, "sig0000")
    assert item.bound_time


def test_describe_api_groups(sdk: tuple[Client, RunningEmulator, str | None]) -> None:
    client, _, _ = sdk
    body = client.describe_api_groups(models.DescribeApiGroupsRequest(page_size=50)).body
    assert body.total_count == 2
    groups = body.api_group_attributes.api_group_attribute
    assert [(g.group_id, g.group_name, g.region_id) for g in groups] == [
        (G0, "g0", "cn-hangzhou"), (derived_id("group", "g1"), "g1", "cn-hangzhou")]
    # Every field the SDK's model declares is there (the model leaves a missing one None).
    group = groups[0]
    assert None not in (group.https_policy, group.tags, group.traffic_limit, group.instance_type, group.sub_domain,
                        group.billing_status, group.illegal_status, group.base_path, group.description)
    assert group.tags.tag_info == []


def test_describe_apis(sdk: tuple[Client, RunningEmulator, str | None]) -> None:
    client, _, _ = sdk
    body = client.describe_apis(models.DescribeApisRequest(group_id=G0, page_number=1, page_size=2)).body
    assert body.total_count == 3
    summaries = body.api_summarys.api_summary
    assert [(s.api_id, s.api_name, s.group_id, s.group_name) for s in summaries] == [
        (api(0), "api000", G0, "g0"), (api(1), "api001", G0, "g0")]
    first = summaries[0]
    assert None not in (first.deployed_infos, first.tag_list, first.api_method, first.api_path, first.visibility,
                        first.created_time, first.modified_time, first.region_id, first.description)
    # An API the state publishes nowhere: RELEASE and TEST (the documented stage names) read NONDEPLOYED.
    assert [(d.stage_name, d.deployed_status) for d in first.deployed_infos.deployed_info] == [
        ("RELEASE", "NONDEPLOYED"), ("TEST", "NONDEPLOYED")]
    assert first.tag_list.tag == []


def test_describe_apis_by_signature(sdk: tuple[Client, RunningEmulator, str | None]) -> None:
    client, _, _ = sdk
    body = client.describe_apis_by_signature(models.DescribeApisBySignatureRequest(
        signature_id=SIG0, page_number=1, page_size=3)).body
    assert body.total_count == 4  # two APIs bound in RELEASE in each of two groups
    infos = body.api_infos.api_info
    assert [(i.api_id, i.api_name, i.group_id, i.group_name, i.stage_name) for i in infos] == [
        (api(0), "api000", G0, "g0", "RELEASE"), (api(1), "api001", G0, "g0", "RELEASE"),
        (derived_id("api", derived_id("group", "g1"), "api000"), "api000", derived_id("group", "g1"), "g1",
         "RELEASE")]
    assert infos[0].bound_time


def test_write_operations(sdk: tuple[Client, RunningEmulator, str | None]) -> None:
    client, emulator, _ = sdk
    created = client.create_signature(models.CreateSignatureRequest(
        signature_name="orders_backend", signature_key="ordersKey01", signature_secret="orders@Secret!1")).body
    assert created.signature_name == "orders_backend"
    new_id = created.signature_id

    modified = client.modify_signature(models.ModifySignatureRequest(
        signature_id=new_id, signature_name="orders_backend2", signature_secret="newSecret#2")).body
    assert (modified.signature_id, modified.signature_name) == (new_id, "orders_backend2")
    record = emulator.state.signature_by_name("orders_backend2")
    assert record is not None and record.secret == "newSecret#2"

    assert client.set_signature_apis(models.SetSignatureApisRequest(
        group_id=G0, signature_id=new_id, stage_name="TEST", api_ids=f"{api(0)},{api(2)}")).body.request_id
    assert bindings_of(emulator.state, G0, "TEST") == {"api000": "orders_backend2", "api002": "orders_backend2"}

    client.remove_signature_apis(models.RemoveSignatureApisRequest(
        group_id=G0, signature_id=new_id, stage_name="TEST", api_ids=api(0)))
    assert bindings_of(emulator.state, G0, "TEST") == {"api002": "orders_backend2"}
    client.remove_signature_apis(models.RemoveSignatureApisRequest(group_id=G0, signature_id=new_id, stage_name="TEST"))
    assert bindings_of(emulator.state, G0, "TEST") == {}

    # PRE as documented: SetSignatureApis takes it, RemoveSignatureApis and DescribeApiSignatures do not.
    client.set_signature_apis(models.SetSignatureApisRequest(
        group_id=G0, signature_id=new_id, stage_name="PRE", api_ids=api(1)))
    assert bindings_of(emulator.state, G0, "PRE") == {"api001": "orders_backend2"}
    for refused in (
        lambda: client.remove_signature_apis(models.RemoveSignatureApisRequest(
            group_id=G0, signature_id=new_id, stage_name="PRE")),
        lambda: client.describe_api_signatures(models.DescribeApiSignaturesRequest(group_id=G0, stage_name="PRE")),
    ):
        with pytest.raises(Exception) as caught:
            refused()
        assert (caught.value.code, caught.value.status_code) == ("InvalidStageName", 400)  # type: ignore[attr-defined]
    emulator.state.remove_signature_apis(G0, new_id, "PRE", None)

    assert client.delete_signature(models.DeleteSignatureRequest(signature_id=new_id)).body.request_id
    assert emulator.state.signature_by_name("orders_backend2") is None


def test_errors_surface_as_sdk_exceptions_with_the_vendor_code(
    sdk: tuple[Client, RunningEmulator, str | None],
) -> None:
    client, emulator, algorithm = sdk
    with pytest.raises(Exception) as caught:
        client.delete_signature(models.DeleteSignatureRequest(signature_id="nope"))
    assert (caught.value.code, caught.value.status_code) == ("NotFoundSignature", 404)  # type: ignore[attr-defined]

    wrong = sdk_client(emulator, algorithm, secret="not-the-secret")
    with pytest.raises(Exception) as caught:
        wrong.describe_signatures(models.DescribeSignaturesRequest())
    assert (caught.value.code, caught.value.status_code) == ("SignatureDoesNotMatch", 400)  # type: ignore[attr-defined]
