"""export_manifests on hand-built snapshots: the cases the emulator cannot produce (two APIs of one
group sharing a name, a listing that changed between reads), variable names, and size limits."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from pydantic import SecretStr

from reconciler import export as export_module
from reconciler.differ import diff
from reconciler.errors import InputError
from reconciler.export import ExportError, export_manifests, header_time, secret_variable_names
from reconciler.manifest import load_desired_state
from reconciler.snapshot import BindingScope, LiveApi, LiveBinding, LiveGroup, LiveSignature, Snapshot

REGION = "cn-hangzhou"
GROUP = "0009db9c828549768a200320714b8930"
FIRST = "a" * 32
SECOND = "b" * 32


def snapshot(apis: tuple[LiveApi, ...], bound: tuple[str, ...], *, signature: str = "orders_backend") -> Snapshot:
    names = {api.id: api.name for api in apis}
    return Snapshot(
        region=REGION,
        signatures=(LiveSignature(id="s1", name="orders_backend", key="ordersKey01",
                                  secret=SecretStr("ordersSecret1")),),
        groups=(LiveGroup(id=GROUP, name="orders", apis=apis),),
        scopes=(BindingScope(group=GROUP, stage="RELEASE"),),
        bindings=tuple(LiveBinding(group=GROUP, stage="RELEASE", api_id=api_id, api_name=names[api_id],
                                   signature_id="s1", signature_name=signature) for api_id in bound),
    )


def plan_of_export(live: Snapshot, tmp_path: Path) -> tuple[str, bool]:
    result = export_manifests(live, exported_at="2026-01-01T00:00:00Z", source="endpoint test")
    path = tmp_path / result.files[0].name
    path.write_text(result.files[0].text, encoding="utf-8")
    desired = load_desired_state([path], env={"ORDERS_BACKEND_SECRET": "ordersSecret1"})
    return result.files[0].text, diff(desired, {REGION: live}).has_changes


def test_apis_sharing_a_name_in_their_group_are_written_by_id_with_the_name_as_comment(tmp_path: Path) -> None:
    apis = (LiveApi(id=FIRST, name="orders_list"), LiveApi(id=SECOND, name="orders_list"),
            LiveApi(id="c" * 32, name="orders_get"))
    text, has_changes = plan_of_export(snapshot(apis, (SECOND, FIRST, "c" * 32)), tmp_path)
    assert not has_changes
    assert text.splitlines()[-3:] == ["      - orders_get", f"      - {FIRST}  # orders_list",
                                      f"      - {SECOND}  # orders_list"]


def test_a_shared_name_counts_even_when_only_one_of_the_apis_is_bound(tmp_path: Path) -> None:
    apis = (LiveApi(id=FIRST, name="orders_list"), LiveApi(id=SECOND, name="orders_list"))
    text, has_changes = plan_of_export(snapshot(apis, (FIRST,)), tmp_path)
    assert not has_changes
    assert text.splitlines()[-1] == f"      - {FIRST}  # orders_list"


def test_a_shared_name_with_an_id_the_loader_would_read_as_a_name_is_refused() -> None:
    apis = (LiveApi(id="api-1", name="orders_list"), LiveApi(id="api-2", name="orders_list"))
    with pytest.raises(ExportError, match=re.escape(
            f"API 'orders_list' of group {GROUP} cannot be named in a manifest: its name is not unique in the "
            "group and its id 'api-1' is not 32 hex characters")):
        export_manifests(snapshot(apis, ("api-1",)), exported_at="t", source="s")


def test_a_binding_to_a_signature_the_listing_did_not_hold_is_refused() -> None:
    live = snapshot((LiveApi(id=FIRST, name="orders_list"),), (FIRST,), signature="created_meanwhile")
    with pytest.raises(ExportError, match="the live state changed while it was read; export again"):
        export_manifests(live, exported_at="t", source="s")


def test_a_comment_never_breaks_its_line() -> None:
    apis = (LiveApi(id=FIRST, name="two\u2028lines"), LiveApi(id=SECOND, name="two\u2028lines"))
    result = export_manifests(snapshot(apis, (FIRST,)), exported_at="t", source="s")
    assert result.files[0].text.splitlines()[-1] == f'      - {FIRST}  # "two\\u2028lines"'


def test_secret_variables_are_the_upper_cased_name_and_differ_for_names_equal_but_for_case() -> None:
    variables = secret_variable_names(["orders_backend", "Orders_Key", "orders_key"])
    assert variables["orders_backend"] == "ORDERS_BACKEND_SECRET"
    assert re.fullmatch(r"ORDERS_KEY_[0-9A-F]{8}_SECRET", variables["Orders_Key"])
    assert re.fullmatch(r"ORDERS_KEY_[0-9A-F]{8}_SECRET", variables["orders_key"])
    assert variables["Orders_Key"] != variables["orders_key"]
    assert secret_variable_names(["orders_key", "Orders_Key"]) == {k: variables[k] for k in ("orders_key",
                                                                                           "Orders_Key")}


def test_header_time_prefers_source_date_epoch() -> None:
    assert header_time("2026-11-23T10:00:00Z", "0") == "1970-01-01T00:00:00Z"
    assert header_time("2026-11-23T10:00:00Z", None) == "2026-11-23T10:00:00Z"
    with pytest.raises(InputError, match="SOURCE_DATE_EPOCH must be whole seconds since 1970, got 'yesterday'"):
        header_time(None, "yesterday")


def test_a_file_the_loader_would_refuse_is_an_error_that_suggests_splitting(monkeypatch: pytest.MonkeyPatch) -> None:
    live = snapshot((LiveApi(id=FIRST, name="orders_list"),), (FIRST,))
    single = export_manifests(live, exported_at="t", source="s")
    monkeypatch.setattr(export_module, "MAX_FILE_BYTES", len(single.files[0].text.encode()) - 1)
    with pytest.raises(ExportError, match=r"cn-hangzhou.yaml would be \d+ bytes with \d+ values, more than a "
                                          r"manifest may hold .*; export with --split-by group"):
        export_manifests(live, exported_at="t", source="s")
    split = export_manifests(live, exported_at="t", source="s", split_by="group")
    assert [f.name for f in split.files] == ["cn-hangzhou.yaml", f"cn-hangzhou.{GROUP}.yaml"]


def loader_node_count(text: str) -> int:
    """Nodes as yamlsource counts them: every mapping, sequence and scalar, keys included."""
    count, stack = 0, [yaml.compose(text, Loader=yaml.SafeLoader)]
    while stack:
        node = stack.pop()
        count += 1
        if isinstance(node, yaml.MappingNode):
            stack.extend(part for pair in node.value for part in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return count


@pytest.mark.parametrize("split_by", ["none", "group"])
def test_the_node_limit_is_checked_with_the_loaders_count(monkeypatch: pytest.MonkeyPatch, split_by: str) -> None:
    apis = (LiveApi(id=FIRST, name="orders_list"), LiveApi(id=SECOND, name="orders_get"))
    live = snapshot(apis, (FIRST, SECOND))
    exported = export_manifests(live, exported_at="t", source="s", split_by="group" if split_by == "group" else "none")
    largest = max(exported.files, key=lambda f: loader_node_count(f.text))
    nodes = loader_node_count(largest.text)
    monkeypatch.setattr(export_module, "MAX_NODES", nodes - 1)
    with pytest.raises(ExportError, match=f"{re.escape(largest.name)} would be .* with {nodes} values"):
        export_manifests(live, exported_at="t", source="s", split_by="group" if split_by == "group" else "none")


def test_a_region_id_no_manifest_accepts_is_refused() -> None:
    live = Snapshot(region="local")
    with pytest.raises(ExportError, match="region 'local' is not a region id a manifest accepts"):
        export_manifests(live, exported_at="t", source="s")


def test_a_chinese_name_gets_a_stable_digest_variable_a_ci_secret_store_accepts() -> None:
    variables = secret_variable_names(["订单签名_01", "签名ab", "orders_backend"])
    for name in ("订单签名_01", "签名ab"):
        assert re.fullmatch(r"SIG_[0-9A-F]{8}_SECRET", variables[name])
    assert variables["订单签名_01"] == secret_variable_names(["订单签名_01"])["订单签名_01"]
    assert variables["订单签名_01"] != variables["签名ab"]
    assert variables["orders_backend"] == "ORDERS_BACKEND_SECRET"
