"""Deleting signatures under `prune: true`: a delete the service would refuse (the key is still bound in a
(group, stage) no manifest manages) is known at plan time, shown as blocked in every format, and apply refuses
to start a plan holding one."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from reconciler.apply import BlockedPlanError, apply_plan_async, refuse_blocked
from reconciler.differ import diff
from reconciler.emulator.server import RunningEmulator, running_emulator
from reconciler.emulator.state import EmulatorState, derived_id
from reconciler.manifest import load_desired_state
from reconciler.plan import Action
from reconciler.render.plan import render_markdown, render_text
from reconciler.review import Review
from reconciler.snapshot import BindingScope, LiveBinding, LiveSignature, Snapshot
from tests.support.cli import CliResult

CREDENTIALS = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "testid", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "testsecret"}
Cli = Callable[..., CliResult]

MANAGED = derived_id("group", "managed")
OTHER = derived_id("group", "other")


def api(group: str, name: str) -> str:
    return derived_id("api", group, name)


def bound_state() -> EmulatorState:
    """keep_backend: bound in a managed scope (unbound by the plan) and in two scopes no manifest manages;
    spare_backend: bound nowhere; orders_backend: declared."""
    return EmulatorState.from_dict({
        "region": "cn-hangzhou",
        "signatures": [{"name": "keep_backend", "key": "keepKey01", "secret": "keepSecret01"},
                       {"name": "spare_backend", "key": "spareKey01", "secret": "spareSecret01"},
                       {"name": "orders_backend", "key": "ordersKey01", "secret": "ordersSecret01"}],
        "groups": [
            {"name": "managed", "apis": [{"name": "m_one"}, {"name": "m_two"}],
             "bindings": {"RELEASE": {"m_one": "keep_backend", "m_two": "orders_backend"}}},
            {"name": "other", "apis": [{"name": f"oa_{n}"} for n in range(5)],
             "bindings": {"PRE": {f"oa_{n}": "keep_backend" for n in range(4)}, "TEST": {"oa_4": "keep_backend"}}},
        ],
    })


MANIFEST = f"""region: cn-hangzhou
prune: true
signatures:
  - {{name: orders_backend, key: ordersKey01, secret: ordersSecret01}}
bindings:
  - {{group: {MANAGED}, stage: RELEASE, signature: orders_backend, apis: [m_two]}}
"""


@pytest.fixture
def emulator() -> Iterator[RunningEmulator]:
    with running_emulator(bound_state()) as running:
        yield running


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(MANIFEST)
    return path


def run_args(command: str, manifest: Path, emulator: RunningEmulator, *extra: str) -> tuple[str, ...]:
    return (command, str(manifest), "--endpoint", emulator.url, "-q", *extra)


BLOCKED_TEXT = [
    '  # signature "keep_backend" cannot be deleted (prune: true): still bound where no manifest manages bindings',
    '  ! signature "keep_backend" {',
    f"      ! bound in group {OTHER}, stage TEST: 1 API (oa_4)",
    f"      ! bound in group {OTHER}, stage PRE: 4 APIs (oa_0, oa_1, oa_2 and 1 more)",
    "    }",
]
BLOCKED_NOTE = ("Apply refuses this plan: 1 delete(s) blocked (keep_backend): each signature is still bound in a group "
                "and stage no manifest manages. Unbind it there, manage that group and stage in a manifest, or list "
                "the signature under ignore.")


def test_plan_shows_a_blocked_delete_and_the_rest_of_the_plan(cli: Cli, emulator: RunningEmulator,
                                                               manifest: Path) -> None:
    result = cli(*run_args("plan", manifest, emulator, "--detailed-exitcode"), env=CREDENTIALS)
    assert (result.code, result.err) == (2, "")
    lines = result.out.splitlines()
    start = lines.index(BLOCKED_TEXT[0])
    assert lines[start:start + len(BLOCKED_TEXT)] == BLOCKED_TEXT
    # The rest of the plan is there: the unbound key is deleted, the managed scope's binding of keep_backend is
    # unbound (and so does not block).
    assert '  # signature "spare_backend" will be deleted (prune: true)' in lines
    assert f"  - unbind m_one ({api(MANAGED, 'm_one')}) from keep_backend" in lines
    assert lines[-3:] == [BLOCKED_NOTE, "",
                          "Plan: 0 to create, 0 to update, 1 to delete, 0 to bind, 1 to unbind, 0 to rebind, "
                          "1 delete blocked."]

    compact = cli(*run_args("plan", manifest, emulator, "--compact"), env=CREDENTIALS)
    assert (f"! delete_blocked signature.cn-hangzhou.keep_backend (still bound: group {OTHER}, stage TEST: 1 API "
            f"(oa_4); group {OTHER}, stage PRE: 4 APIs (oa_0, oa_1, oa_2 and 1 more))") in compact.out.splitlines()


def test_the_json_plan_types_and_counts_a_blocked_delete(cli: Cli, emulator: RunningEmulator,
                                                        manifest: Path) -> None:
    result = cli(*run_args("plan", manifest, emulator, "-o", "json"), env=CREDENTIALS)
    document = json.loads(result.out)
    assert document["summary"]["delete_blocked"] == 1
    assert document["summary"]["delete"] == 1
    blocked = [c for c in document["changes"] if c["action"] == "delete_blocked"]
    assert [c["address"] for c in blocked] == ["signature.cn-hangzhou.keep_backend"]
    assert blocked[0]["still_bound"][0] == {"group": OTHER, "stage": "TEST", "api_id": api(OTHER, "oa_4"),
                                           "api_name": "oa_4", "signature": "keep_backend"}
    assert [(b["stage"], b["api_name"]) for b in blocked[0]["still_bound"]] == [
        ("TEST", "oa_4"), ("PRE", "oa_0"), ("PRE", "oa_1"), ("PRE", "oa_2"), ("PRE", "oa_3")]
    # Optional fields stay out of a plan without blocked deletes: format "1" is what it was.
    assert all("still_bound" not in c for c in document["changes"] if c["action"] != "delete_blocked")


def test_the_markdown_plan_warns_of_a_blocked_delete(cli: Cli, emulator: RunningEmulator, manifest: Path) -> None:
    result = cli(*run_args("plan", manifest, emulator, "-o", "markdown"), env=CREDENTIALS)
    # In markdown the signature's name is a code span, as every value is there.
    assert f"> {BLOCKED_NOTE.replace('(keep_backend)', '(`keep_backend`)')}" in result.out.splitlines()
    assert (f"| **delete_blocked** | signature | `signature.cn-hangzhou.keep_backend` | not deleted, still bound: "
            f"`group {OTHER}, stage TEST: 1 API (oa_4)`; `group {OTHER}, stage PRE: 4 APIs (oa_0, oa_1, oa_2 and 1 "
            f"more)` |") in result.out.splitlines()


def test_apply_refuses_a_plan_with_a_blocked_delete_before_any_call(cli: Cli, emulator: RunningEmulator,
                                                                   manifest: Path) -> None:
    before = emulator.state.to_spec()
    result = cli(*run_args("apply", manifest, emulator, "--auto-approve"), env=CREDENTIALS)
    assert result.code == 1
    assert result.err == (
        f"Error: apply refused: the plan holds 1 delete(s) that cannot be carried out (keep_backend is still bound "
        f"in group {OTHER}, stage TEST: 1 API (oa_4) and group {OTHER}, stage PRE: 4 APIs (oa_0, oa_1, oa_2 and 1 "
        f"more)); "
        f"nothing was changed; unbind those APIs there, manage that group and stage in a manifest, or list the "
        f"signature under ignore\n")
    assert BLOCKED_TEXT[0] in result.out.splitlines()
    assert emulator.state.to_spec() == before


def test_a_targeted_saved_plan_without_the_blocked_delete_is_applied(cli: Cli, emulator: RunningEmulator,
                                                                    manifest: Path, tmp_path: Path) -> None:
    saved = tmp_path / "plan.json"
    made = cli(*run_args("plan", manifest, emulator, "--target", "signature=spare_backend", "--out-plan", str(saved)),
               env=CREDENTIALS)
    assert made.code == 0, made.err
    applied = cli(*run_args("apply", manifest, emulator, "--plan-file", str(saved)), env=CREDENTIALS)
    assert applied.code == 0, applied.err
    assert applied.out.splitlines()[-1] == "Apply complete: 0 created, 0 updated, 0 rebound, 0 bound, 0 unbound, " \
                                           "1 deleted."
    assert emulator.state.signature_by_name("spare_backend") is None
    assert emulator.state.signature_by_name("keep_backend") is not None


def test_unbinding_the_blocking_bindings_unblocks_the_delete(cli: Cli, emulator: RunningEmulator,
                                                            manifest: Path) -> None:
    keep = emulator.state.signature_by_name("keep_backend")
    assert keep is not None
    emulator.state.remove_signature_apis(OTHER, keep.id, "PRE", None)
    emulator.state.remove_signature_apis(OTHER, keep.id, "TEST", None)
    result = cli(*run_args("apply", manifest, emulator, "--auto-approve"), env=CREDENTIALS)
    assert result.code == 0, result.err
    assert emulator.state.signature_by_name("keep_backend") is None


# ---------------------------------------------------------------- the differ and apply, without HTTP


def binding(group: str, stage: str, api_id: str) -> LiveBinding:
    return LiveBinding(group=group, stage=stage, api_id=api_id, api_name=f"name-{api_id}",  # type: ignore[arg-type]
                       signature_id="id-old", signature_name="old_key")


def plan_of(tmp_path: Path, manifest: str, signature: LiveSignature, bindings: tuple[LiveBinding, ...] = (),
            scopes: tuple[BindingScope, ...] = ()) -> Any:
    path = tmp_path / "m.yaml"
    path.write_text(manifest)
    desired = load_desired_state([path], env={})
    snapshot = Snapshot(region="cn-hangzhou", signatures=(signature,), bindings=bindings, scopes=scopes)
    return desired, snapshot, diff(desired, {"cn-hangzhou": snapshot})


def test_bindings_the_plan_itself_unbinds_do_not_block(tmp_path: Path) -> None:
    managed = binding("e" * 32, "RELEASE", "a1")
    old = LiveSignature(id="id-old", name="old_key", key="oldKey01", secret="oldSecret01",
                        bindings_in_region=(managed,))
    manifest = "region: cn-hangzhou\nprune: true\nbindings: []\nsignatures: []\n"
    _, _, plan = plan_of(tmp_path, manifest, old, (managed,), (BindingScope(group="e" * 32, stage="RELEASE"),))
    # No manifest mentions the scope, so nothing unbinds it: blocked.
    assert [c.action for c in plan.changes] == [Action.DELETE_BLOCKED]

    manifest = ("region: cn-hangzhou\nprune: true\nsignatures:\n  - {name: new_key, key: newKey01, secret: "
                f"newSecret01}}\nbindings:\n  - {{group: {'e' * 32}, stage: RELEASE, signature: new_key, "
                "apis: [b2]}\n")
    _, _, plan = plan_of(tmp_path, manifest.replace("b2", "b" * 32), old, (managed,),
                         (BindingScope(group="e" * 32, stage="RELEASE"),))
    assert sorted(c.action.value for c in plan.changes) == ["bind", "create", "delete", "unbind"]


def test_a_blocked_delete_names_the_groups_whose_names_the_read_knows(tmp_path: Path) -> None:
    named, unnamed = "e" * 32, "f" * 32
    old = LiveSignature(id="id-old", name="old_key", key="oldKey01", secret="oldSecret01",
                        bindings_in_region=(binding(named, "TEST", "a1"), binding(unnamed, "TEST", "a2")))
    _, _, plan = plan_of(tmp_path, "region: cn-hangzhou\nprune: true\n", old)
    plan = Review(plan).with_group_names({named: "orders", unnamed: None}).plan
    invalid = "(not a valid API name)"  # binding() names its APIs with a hyphen
    assert (f"      ! bound in group {named} (orders), stage TEST: 1 API (name-a1 {invalid})"
            in render_text(plan).splitlines())
    assert (f"`group {named} (orders), stage TEST: 1 API (name-a1 {invalid})`; "
            f"`group {unnamed}, stage TEST: 1 API (name-a2 {invalid})`" in render_markdown(plan))
    with pytest.raises(BlockedPlanError, match=rf"still bound in group {named} \(orders\), stage TEST"):
        refuse_blocked(plan)


def test_a_snapshot_without_the_lookup_plans_a_plain_delete(tmp_path: Path) -> None:
    old = LiveSignature(id="id-old", name="old_key", key="oldKey01", secret="oldSecret01")
    _, _, plan = plan_of(tmp_path, "region: cn-hangzhou\nprune: true\n", old)
    assert [c.action for c in plan.changes] == [Action.DELETE]


class RecordingClient:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def __aenter__(self) -> RecordingClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def call(self, action: str, params: Mapping[str, str]) -> dict[str, Any]:
        self.calls.append(action)
        return {"RequestId": "R"}


def test_apply_plan_refuses_a_blocked_delete_before_any_call(tmp_path: Path) -> None:
    old = LiveSignature(id="id-old", name="old_key", key="oldKey01", secret="oldSecret01",
                        bindings_in_region=(binding(derived_id("group", "x"), "PRE", "a1"),))
    manifest = ("region: cn-hangzhou\nprune: true\nsignatures:\n"
                "  - {name: new_key, key: newKey01, secret: newSecret01}\n")
    desired, snapshot, plan = plan_of(tmp_path, manifest, old)
    client = RecordingClient()
    with pytest.raises(BlockedPlanError, match=r"^apply refused: the plan holds 1 delete\(s\)"):
        asyncio.run(apply_plan_async(plan, desired, {"cn-hangzhou": snapshot}, lambda _: client,  # type: ignore[arg-type,return-value]
                                     concurrency=4, report=lambda _: None))
    assert client.calls == []


# ---------------------------------------------------------------- what is read, and offline plans


def count_lookups(state: EmulatorState) -> list[str]:
    looked_up: list[str] = []
    real = state.describe_apis_by_signature

    def counting(signature_id: str, *rest: Any) -> Any:
        looked_up.append(signature_id)
        return real(signature_id, *rest)

    state.describe_apis_by_signature = counting  # type: ignore[method-assign]
    return looked_up


def test_only_the_signatures_a_plan_may_delete_are_looked_up(cli: Cli, tmp_path: Path) -> None:
    state = bound_state()
    looked_up = count_lookups(state)
    path = tmp_path / "m.yaml"
    with running_emulator(state) as emulator:
        path.write_text(MANIFEST)
        assert cli(*run_args("plan", path, emulator), env=CREDENTIALS).code == 0
        ids = {derived_id("signature", name) for name in ("keep_backend", "spare_backend")}
        assert sorted(looked_up) == sorted(ids)  # not orders_backend: declared
        looked_up.clear()
        path.write_text(MANIFEST.replace("prune: true", "prune: false"))
        assert cli(*run_args("plan", path, emulator), env=CREDENTIALS).code == 0
        assert looked_up == []
        looked_up.clear()
        path.write_text(MANIFEST.replace("prune: true", "prune: true\nignore: [keep_*]"))
        assert cli(*run_args("plan", path, emulator), env=CREDENTIALS).code == 0
        assert looked_up == [derived_id("signature", "spare_backend")]


def test_a_saved_snapshot_keeps_the_lookup_for_offline_plans(cli: Cli, emulator: RunningEmulator, manifest: Path,
                                                            tmp_path: Path) -> None:
    snapshot = tmp_path / "live.json"
    online = cli(*run_args("plan", manifest, emulator, "--save-snapshot", str(snapshot)), env=CREDENTIALS)
    offline = cli("plan", str(manifest), "--snapshot", str(snapshot))
    assert offline.code == 0, offline.err
    assert offline.out == online.out
    assert BLOCKED_TEXT[0] in offline.out.splitlines()


def test_a_base_comparison_looks_up_what_either_plan_may_delete(tmp_path: Path) -> None:
    from reconciler.drift import fetch_view
    from reconciler.live import fetch_targets

    def desired(name: str, text: str) -> Any:
        path = tmp_path / name
        path.write_text(text)
        return load_desired_state([path], env={})

    pruning = desired("pr.yaml", "region: cn-hangzhou\nprune: true\nignore: [legacy_*]\nsignatures:\n"
                                 "  - {name: kept_key, key: keptKey01, secret: keptSecret01}\n")
    not_pruning = desired("base.yaml", "region: cn-hangzhou\n")
    may_delete = fetch_targets(fetch_view(pruning, not_pruning))[0].may_delete
    assert may_delete is not None
    assert (may_delete("other_key"), may_delete("kept_key")) == (True, False)
    assert fetch_targets(fetch_view(not_pruning, not_pruning))[0].may_delete is None
