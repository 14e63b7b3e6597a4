"""The vendor's SDK reads what `scan` relies on from the emulator: DescribeRegions (every region of an
embedded run) and the deployment information of DescribeApis (DeployedInfos), in V3 and RPC V1 signing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alibabacloud_cloudapi20160714 import models
from alibabacloud_cloudapi20160714.client import Client
from alibabacloud_tea_openapi.models import Config
from Tea.exceptions import TeaException

from reconciler.emulator.server import RunningEmulator, running_emulator
from reconciler.emulator.state import EmulatorState, derived_id
from reconciler.live import ConnectionOptions, open_connection

STATE = {
    "region": "cn-hangzhou",
    "groups": [{"name": "shop", "apis": [
        {"name": "cart_get", "deployed": ["RELEASE", "TEST"]},
        {"name": "cart_put", "deployed": ["TEST"]},
        {"name": "cart_draft"},
        {"name": "cart_preview", "deployed": ["PRE"]},
    ]}],
}


def sdk_client(emulator: RunningEmulator, algorithm: str | None) -> Client:
    return Client(Config(access_key_id=emulator.access_key_id, access_key_secret=emulator.access_key_secret,
                         endpoint=emulator.endpoint, protocol="http", signature_algorithm=algorithm))


@pytest.fixture(scope="module", params=[None, "v2"], ids=["v3", "rpc-v1"])
def sdk(request: pytest.FixtureRequest) -> Iterator[Client]:
    state = EmulatorState.from_dict(STATE)
    state.account_regions = ("cn-hangzhou", "cn-shanghai")
    with running_emulator(state) as emulator:
        yield sdk_client(emulator, request.param)


def test_describe_regions_lists_every_region_of_the_account(sdk: Client) -> None:
    body = sdk.describe_regions(models.DescribeRegionsRequest(language="en")).body
    assert body.request_id
    assert [(r.region_id, r.region_endpoint) for r in body.regions.region] == [
        ("cn-hangzhou", "apigateway.cn-hangzhou.aliyuncs.com"), ("cn-shanghai", "apigateway.cn-shanghai.aliyuncs.com")]


def test_describe_regions_refuses_an_unknown_language(sdk: Client) -> None:
    with pytest.raises(TeaException) as caught:
        sdk.describe_regions(models.DescribeRegionsRequest(language="xx"))
    assert caught.value.code == "InvalidLanguage"


def test_describe_apis_reports_the_stages_each_api_is_deployed_in(sdk: Client) -> None:
    body = sdk.describe_apis(models.DescribeApisRequest(group_id=derived_id("group", "shop"), page_size=100)).body
    deployed = {s.api_name: [(i.stage_name, i.deployed_status) for i in s.deployed_infos.deployed_info]
                for s in body.api_summarys.api_summary}
    assert deployed == {
        "cart_get": [("RELEASE", "DEPLOYED"), ("TEST", "DEPLOYED")],
        "cart_put": [("RELEASE", "NONDEPLOYED"), ("TEST", "DEPLOYED")],
        "cart_draft": [("RELEASE", "NONDEPLOYED"), ("TEST", "NONDEPLOYED")],
        "cart_preview": [("RELEASE", "NONDEPLOYED"), ("TEST", "NONDEPLOYED"), ("PRE", "DEPLOYED")],
    }
    versions = {i.effective_version for s in body.api_summarys.api_summary for i in s.deployed_infos.deployed_info
                if i.deployed_status == "DEPLOYED"}
    assert versions == {"20240101000000000"}


def test_embedded_emulators_each_list_every_region_of_the_run(tmp_path: Path) -> None:
    hangzhou, shanghai = tmp_path / "hz.yaml", tmp_path / "sh.yaml"
    hangzhou.write_text("region: cn-hangzhou\n")
    shanghai.write_text("region: cn-shanghai\n")
    options = ConnectionOptions(emulator_states=(hangzhou, shanghai))
    with open_connection(options, ["cn-hangzhou"], serve_all_states=True) as connection:
        credentials = connection.credentials.peek()
        for region in ("cn-hangzhou", "cn-shanghai"):
            client = Client(Config(access_key_id=credentials.access_key_id,
                                   access_key_secret=credentials.access_key_secret.get_secret_value(),
                                   endpoint=connection.endpoint(region).removeprefix("http://"), protocol="http"))
            listed = client.describe_regions(models.DescribeRegionsRequest()).body.regions.region
            assert [r.region_id for r in listed] == ["cn-hangzhou", "cn-shanghai"]


def test_older_state_files_stay_valid_and_deployed_round_trips(tmp_path: Path) -> None:
    state = EmulatorState.from_dict(STATE)
    saved = tmp_path / "saved.yaml"
    state.dump_state(saved)
    again = EmulatorState.from_file(saved)
    apis, _ = again.describe_apis(None, None, None, 1, 10)
    assert [(a.name, a.deployed) for a in apis] == [
        ("cart_get", ("RELEASE", "TEST")), ("cart_put", ("TEST",)), ("cart_draft", ()), ("cart_preview", ("PRE",))]


def test_a_stage_listed_twice_is_an_error_naming_the_field() -> None:
    from reconciler.errors import InputError
    with pytest.raises(InputError, match=r"groups\.0\.apis\.0\.deployed': a stage is listed twice"):
        EmulatorState.from_dict({"region": "cn-hangzhou", "groups": [
            {"name": "shop", "apis": [{"name": "cart_get", "deployed": ["TEST", "TEST"]}]}]})
