"""Deleting signatures under `prune: true`: never one still bound anywhere."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from conftest import CliResult

from reconciler.apply import ApplyResult, apply_plan_async
from reconciler.differ import diff
from reconciler.emulator.server import running_emulator
from reconciler.emulator.state import EmulatorState, derived_id
from reconciler.manifest import load_desired_state
from reconciler.snapshot import LiveSignature, Snapshot

CREDENTIALS = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "testid", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "testsecret"}


class FakeClient:
    """Answers DescribeApisBySignature from `bound` (signature id -> ApiInfo items); records every call."""

    def __init__(self, bound: Mapping[str, list[dict[str, str]]]) -> None:
        self.bound = bound
        self.calls: list[tuple[str, dict[str, str]]] = []

    async def __aenter__(self) -> FakeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def call(self, action: str, params: Mapping[str, str]) -> dict[str, Any]:
        self.calls.append((action, dict(params)))
        if action == "DescribeApisBySignature":
            items = self.bound.get(params["SignatureId"], [])
            return {"RequestId": "R", "TotalCount": len(items), "ApiInfos": {"ApiInfo": items[:100]}}
        return {"RequestId": "R"}


def prune_everything(tmp_path: Path, *names: str, client: FakeClient) -> ApplyResult:
    manifest = tmp_path / "m.yaml"
    manifest.write_text("region: cn-hangzhou\nprune: true\n")
    desired = load_desired_state([manifest], env={})
    snapshot = Snapshot(region="cn-hangzhou", signatures=tuple(
        LiveSignature(id=f"id-{name}", name=name, key="someKey01", secret="someSecret01") for name in names))
    plan = diff(desired, {"cn-hangzhou": snapshot})
    lines: list[str] = []
    result = asyncio.run(apply_plan_async(plan, desired, {"cn-hangzhou": snapshot}, lambda _: client,  # type: ignore[arg-type,return-value]
                                          concurrency=4, report=lines.append))
    assert lines == result.done
    return result


def api_info(n: int, stage: str = "PRE") -> dict[str, str]:
    return {"ApiId": f"api{n}", "ApiName": f"name{n}", "GroupId": "grp", "StageName": stage}


def test_a_signature_bound_outside_the_managed_scopes_is_not_deleted(tmp_path: Path) -> None:
    client = FakeClient({"id-old_key": [api_info(n) for n in range(4)]})
    result = prune_everything(tmp_path, "old_key", client=client)
    assert result.failures == [
        "delete signature old_key: old_key is not deleted: it is still bound to 4 APIs (API name0 (api0) in group "
        "grp stage PRE; API name1 (api1) in group grp stage PRE; API name2 (api2) in group grp stage PRE and "
        "1 more), in a group and stage no manifest manages; unbind them there, or declare bindings for that group "
        "and stage in a manifest"]
    assert result.not_done == ["delete signature old_key"]
    assert [action for action, _ in client.calls] == ["DescribeApisBySignature"]


def test_an_unbound_signature_is_deleted_after_checking(tmp_path: Path) -> None:
    client = FakeClient({})
    result = prune_everything(tmp_path, "old_key", client=client)
    assert result.ok
    assert result.done == ["old_key: deleted (id id-old_key)"]
    assert client.calls == [
        ("DescribeApisBySignature", {"SignatureId": "id-old_key", "PageNumber": "1", "PageSize": "100"}),
        ("DeleteSignature", {"SignatureId": "id-old_key"})]


def test_a_bound_key_is_refused_over_real_http_naming_where(cli: Callable[..., CliResult], tmp_path: Path) -> None:
    # keep_backend is bound in a stage no manifest mentions: apply's own check refuses, naming the binding.
    state = EmulatorState.from_dict({
        "region": "cn-hangzhou",
        "signatures": [{"name": "keep_backend", "key": "keepKey01", "secret": "keepSecret01"},
                       {"name": "spare_backend", "key": "spareKey01", "secret": "spareSecret01"}],
        "groups": [{"name": "g", "apis": [{"name": "one"}], "bindings": {"PRE": {"one": "keep_backend"}}}],
    })
    manifest = tmp_path / "m.yaml"
    manifest.write_text("region: cn-hangzhou\nprune: true\n")
    group_id = derived_id("group", "g")
    api_id = derived_id("api", group_id, "one")
    with running_emulator(state) as emulator:
        result = cli("apply", str(manifest), "--endpoint", emulator.url, "-q", "--auto-approve", env=CREDENTIALS)
    assert result.code == 1
    assert result.err.startswith(
        f"Error: apply stopped at the first failure: delete signature keep_backend: keep_backend is not deleted: "
        f"it is still bound to 1 API (API one ({api_id}) in group {group_id} stage PRE), in a group and stage no "
        f"manifest manages")
    assert f"spare_backend: deleted (id {derived_id('signature', 'spare_backend')})" in result.out
    assert state.signature_by_name("keep_backend") is not None
    assert state.signature_by_name("spare_backend") is None
