"""Saved plans: `apply --plan-file` carries out exactly what `plan --out-plan` showed, refuses a file that
is not one plan could have written, and refuses a plan whose secrets changed, without the file making
any secret testable cheaply."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli import run
from reconciler.emulator.server import RunningEmulator, running_emulator
from reconciler.emulator.state import EmulatorState
from tests.support.cli import CliResult
from tests.support.emulator import bindings_of
from tests.support.paths import ROOT

MANIFESTS = ROOT / "manifests"
DEMO_STATE = ROOT / "examples" / "emulator-state.yaml"
DEMO_ENV = ROOT / "examples" / "demo.env"
CREDENTIALS = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "testid", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "testsecret"}
ORDERS = "0009db9c828549768a200320714b8930"
PAYMENTS = "5d1f3e0a7b8c4d2e9f6a1b3c5d7e9f01"
NEW_PLAN = "make a new plan with `reconciler plan --out-plan`"
STALE = "Error: the manifests (or the secrets in the environment) no longer give the saved plan ("

Cli = Callable[..., CliResult]


@pytest.fixture
def demo() -> Iterator[RunningEmulator]:
    with running_emulator(EmulatorState.from_file(DEMO_STATE)) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def demo_plan_text(tmp_path_factory: pytest.TempPathFactory) -> str:
    """`plan --out-plan` of the demo, made once per module: binding its secrets is a deliberately slow scrypt, and
    the file names no endpoint, so it is the saved plan of every emulator started from the demo state. The tests
    that make a plan differently, or are about making one, run `plan --out-plan` themselves (saved_plan)."""
    path = tmp_path_factory.mktemp("demo-plan") / "plan.json"
    with running_emulator(EmulatorState.from_file(DEMO_STATE)) as emulator, pytest.MonkeyPatch.context() as patch:
        for name, value in CREDENTIALS.items():
            patch.setenv(name, value)
        assert run(list(args("plan", emulator, "--out-plan", str(path)))) == 0
    return path.read_text()


@pytest.fixture
def demo_plan(demo_plan_text: str, tmp_path: Path) -> Path:
    """A copy of the demo's saved plan (demo_plan_text), the test's own to change."""
    path = tmp_path / "plan.json"
    path.write_text(demo_plan_text)
    return path


def args(command: str, emulator: RunningEmulator, *extra: str) -> tuple[str, ...]:
    return (command, str(MANIFESTS), "--env-file", str(DEMO_ENV), "--endpoint", emulator.url, "-q", *extra)


def saved_plan(cli: Cli, demo: RunningEmulator, path: Path, *extra: str) -> dict[str, Any]:
    made = cli(*args("plan", demo, "--out-plan", str(path), *extra), env=CREDENTIALS)
    assert made.code == 0, made.err
    document: dict[str, Any] = json.loads(path.read_text())
    return document


# ---------------------------------------------------------------- exactly what was shown


def test_a_targeted_saved_plan_applies_only_the_targeted_changes(cli: Cli, demo: RunningEmulator,
                                                                 tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    shown = cli(*args("plan", demo, "--target", "signature=inventory_backend", "--compact", "--out-plan", str(path)),
                env=CREDENTIALS)
    assert shown.out.splitlines()[:2] == [
        "+ create    signature.cn-hangzhou.inventory_backend",
        f"+ bind      binding.cn-hangzhou.{PAYMENTS}.RELEASE.9a7e2c4b6d8f0a1c3e5b7d9f1a3c5e72 payments_stock_hold "
        f"-> inventory_backend"]
    document = json.loads(path.read_text())
    assert [c["address"] for c in document["plan"]["changes"]] == [
        "signature.cn-hangzhou.inventory_backend",
        f"binding.cn-hangzhou.{PAYMENTS}.RELEASE.9a7e2c4b6d8f0a1c3e5b7d9f1a3c5e72"]
    assert document["plan"]["targets"] == ["signature=inventory_backend"]

    applied = cli(*args("apply", demo, "--plan-file", str(path)), env=CREDENTIALS)
    assert applied.code == 0, applied.err
    assert applied.out.splitlines()[-1] == ("Apply complete: 1 created, 0 updated, 0 rebound, 1 bound, 0 unbound, "
                                            "0 deleted.")
    # The changes the targeted plan left out are still pending.
    after = cli(*args("plan", demo, "--compact"), env=CREDENTIALS)
    assert after.out.splitlines() == [
        "? unmanaged signature.cn-hangzhou.debug_temp_key",
        "~ update    signature.cn-hangzhou.payments_backend (key)",
        f"+ bind      binding.cn-hangzhou.{ORDERS}.RELEASE.46fbb52840d146f186e38e8e70fc8c92 orders_create -> "
        "orders_backend",
        f"- unbind    binding.cn-hangzhou.{ORDERS}.RELEASE.46fbb52840d146f186e38e8e70fc8c93 orders_delete from "
        "orders_backend",
        f"~ rebind    binding.cn-hangzhou.{ORDERS}.RELEASE.46fbb52840d146f186e38e8e70fc8c91 orders_get: "
        "payments_backend -> orders_backend",
        "",
        "Plan: 0 to create, 1 to update, 0 to delete, 1 to bind, 1 to unbind, 1 to rebind, 1 unmanaged."]


def test_a_group_target_takes_along_the_create_its_bind_needs(cli: Cli, demo: RunningEmulator,
                                                              tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    shown = cli(*args("plan", demo, "--target", f"group={PAYMENTS}", "--compact", "--out-plan", str(path)),
                env=CREDENTIALS)
    assert [line.split()[1] for line in shown.out.splitlines()[:2]] == ["create", "bind"]
    applied = cli(*args("apply", demo, "--plan-file", str(path)), env=CREDENTIALS)
    assert applied.code == 0, applied.err
    assert bindings_of(demo.state, PAYMENTS, "RELEASE")["payments_stock_hold"] == "inventory_backend"
    assert bindings_of(demo.state, ORDERS, "RELEASE")["orders_get"] == "payments_backend"  # not targeted


def test_a_targeted_plan_is_stale_when_its_own_changes_differ(cli: Cli, demo: RunningEmulator,
                                                              tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    saved_plan(cli, demo, path, "--target", "signature=inventory_backend")
    edited = tmp_path / "manifests"
    edited.mkdir()
    for manifest in MANIFESTS.glob("*.yaml"):
        (edited / manifest.name).write_text(manifest.read_text().replace("inventoryKey01", "inventoryKey02"))
    before = demo.state.to_spec()
    result = cli("apply", str(edited), "--env-file", str(DEMO_ENV), "--endpoint", demo.url, "-q", "--plan-file",
                 str(path), env=CREDENTIALS)
    assert (result.code, result.out) == (1, "")
    assert result.err == (f"{STALE}signature.cn-hangzhou.inventory_backend: key inventoryKey01 -> inventoryKey02); "
                          f"nothing was changed; {NEW_PLAN}\n")
    assert demo.state.to_spec() == before


# ---------------------------------------------------------------- a file plan could have written, or nothing


def _regions_twice(d: dict[str, Any]) -> None:
    d["plan"]["regions"] = ["cn-hangzhou", "cn-hangzhou"]


def _extra_field(d: dict[str, Any]) -> None:
    d["plan"]["changes"][0]["force"] = True


def _address_elsewhere(d: dict[str, Any]) -> None:
    d["plan"]["changes"][0]["address"] = "signature.cn-hangzhou.payments_backend"


def _bind_to_another_api(d: dict[str, Any]) -> None:
    binding = next(c for c in d["plan"]["changes"] if c["action"] == "bind")
    binding["after"]["api_id"] = "46fbb52840d146f186e38e8e70fc8c90"


def _summary_off(d: dict[str, Any]) -> None:
    d["plan"]["summary"]["create"] = 0


def _number_as_string(d: dict[str, Any]) -> None:
    d["plan"]["summary"]["no_op"] = "3"


def _unknown_version(d: dict[str, Any]) -> None:
    d["format_version"] = "3"


def _old_version(d: dict[str, Any]) -> None:
    d["format_version"] = "1"


def _update_without_change(d: dict[str, Any]) -> None:
    update = next(c for c in d["plan"]["changes"] if c["action"] == "update")
    update["changed"] = []


def _region_not_covered(d: dict[str, Any]) -> None:
    d["plan"]["changes"][0]["region"] = "cn-shanghai"


def _weak_kdf(d: dict[str, Any]) -> None:
    d["secrets"]["n"] = 1024


def _hostile_key(d: dict[str, Any]) -> None:
    d["live_fingerprints"]["\x1b[2Jcn-hangzhou"] = d["live_fingerprints"]["cn-hangzhou"]


def _hostile_region(d: dict[str, Any]) -> None:
    d["plan"]["regions"] = ["cn-hangzhou\x1b[2J"]
    d["live_fingerprints"] = {"cn-hangzhou\x1b[2J": d["live_fingerprints"]["cn-hangzhou"]}


def _hostile_target(d: dict[str, Any]) -> None:
    d["plan"]["targets"] = ["signature=\u202e*"]


def _group_names(d: dict[str, Any]) -> None:
    d["plan"]["group_names"] = {ORDERS: "\x1b[2Jorders"}


@pytest.mark.parametrize(("tamper", "message"), [
    (_group_names, "not a valid saved plan: a saved plan holds no group names"),
    (_hostile_region, "not a valid saved plan: 'plan.regions' holds something that is not a region"),
    (_hostile_target, "not a valid saved plan: 'plan.targets' holds something that is not a target"),
    (_regions_twice, "not a valid saved plan: 'plan.regions' must list each region once"),
    (_extra_field, "not a valid saved plan: field 'plan.changes.0.force': Extra inputs are not permitted"),
    (_address_elsewhere, "not a valid saved plan: 'plan.changes[0]': the address does not match the values"),
    (_bind_to_another_api, "not a valid saved plan: 'plan.changes[3]': the address does not match the values"),
    (_summary_off, "not a valid saved plan: 'plan.summary' does not count the changes"),
    (_number_as_string, "not a valid saved plan: field 'plan.summary.no_op': Input should be a valid integer"),
    (_unknown_version, "saved plan of format 3; this reconciler reads format 2"),
    (_old_version, "saved plan of format 1; this reconciler reads format 2"),
    (_update_without_change, "not a valid saved plan: 'plan.changes[2]': 'changed' does not match the values"),
    (_region_not_covered, "not a valid saved plan: 'plan.changes[0]' is in a region the plan does not cover"),
    (_weak_kdf, "not a valid saved plan: field 'secrets.n': Input should be 131072"),
    (_hostile_key, "not a valid saved plan: 'live_fingerprints' must have one entry per region of the plan"),
])
def test_a_tampered_saved_plan_is_one_line_and_changes_nothing(cli: Cli, demo: RunningEmulator, demo_plan: Path,
                                                               tamper: Callable[[dict[str, Any]], None],
                                                               message: str) -> None:
    path = demo_plan
    document = json.loads(path.read_text())
    tamper(document)
    path.write_text(json.dumps(document))
    before = demo.state.to_spec()
    result = cli(*args("apply", demo, "--plan-file", str(path)), env=CREDENTIALS)
    assert (result.code, result.out) == (1, "")
    assert result.err == f"Error: {path}: {message}; {NEW_PLAN}\n"
    assert demo.state.to_spec() == before


def test_apply_shows_where_each_change_comes_from_now_never_the_file_s_sources(cli: Cli, demo: RunningEmulator,
                                                                               demo_plan: Path) -> None:
    # Sources are left out of the comparison (a manifest line may move), so the file's are not shown either.
    path = demo_plan
    document = json.loads(path.read_text())
    create = next(c for c in document["plan"]["changes"] if c["action"] == "create")
    create["source"] = "\x1b[2JNo changes.\nApply these changes? "
    path.write_text(json.dumps(document))
    result = cli(*args("apply", demo, "--plan-file", str(path)), env=CREDENTIALS)
    assert result.code == 0, result.err
    shown = f'  # signature "inventory_backend" will be created  ({MANIFESTS}/hangzhou.yaml:15)'
    assert shown in result.out.splitlines()
    assert "\x1b" not in result.out and "Apply these changes?" not in result.out


def test_a_repeated_key_is_refused(cli: Cli, demo: RunningEmulator, demo_plan: Path) -> None:
    path = demo_plan
    text = path.read_text()
    path.write_text(text.replace('"kind": "reconciler-saved-plan",',
                                 '"kind": "reconciler-saved-plan", "kind": "reconciler-saved-plan",', 1))
    result = cli(*args("apply", demo, "--plan-file", str(path)), env=CREDENTIALS)
    assert (result.code, result.err) == (1, f"Error: {path}: not a valid saved plan (a key is repeated); {NEW_PLAN}\n")


# ---------------------------------------------------------------- secrets


def test_a_different_secret_at_apply_makes_the_plan_stale(cli: Cli, demo: RunningEmulator, demo_plan: Path) -> None:
    path = demo_plan
    before = demo.state.to_spec()
    # The plan creates inventory_backend; its secret comes from the environment at apply time (which wins over
    # the env file). The changes themselves are the same: only the secrets binding can tell.
    result = cli(*args("apply", demo, "--plan-file", str(path)),
                 env={**CREDENTIALS, "INVENTORY_BACKEND_SECRET": "inventorySecret02"})
    assert (result.code, result.out) == (1, "")
    assert result.err == ("Error: stale plan: a secret differs from when the plan was made (a secret the plan sets, "
                          "from the environment, or a live secret); nothing was changed; " + NEW_PLAN + "\n")
    assert demo.state.to_spec() == before


def test_a_live_secret_changed_by_hand_makes_the_plan_stale(cli: Cli, demo: RunningEmulator, demo_plan: Path) -> None:
    path = demo_plan
    debug = demo.state.signature_by_name("debug_temp_key")
    assert debug is not None
    demo.state.modify_signature(debug.id, None, None, "debugSecret02")
    result = cli(*args("apply", demo, "--plan-file", str(path)), env=CREDENTIALS)
    assert result.code == 1
    assert result.err.startswith("Error: stale plan: a secret differs from when the plan was made")


def test_the_secrets_are_bound_by_salted_scrypt_only(cli: Cli, demo: RunningEmulator, tmp_path: Path) -> None:
    first = saved_plan(cli, demo, tmp_path / "one.json")
    second = saved_plan(cli, demo, tmp_path / "two.json")
    binding = first["secrets"]
    assert (binding["kdf"], binding["n"], binding["r"], binding["p"]) == ("scrypt", 2 ** 17, 8, 1)
    # A fresh salt per plan: the same secrets give unrelated digests, so two plans cannot be compared either.
    assert binding["salt"] != second["secrets"]["salt"]
    assert binding["digest"] != second["secrets"]["digest"]
    # The fingerprint of the live state covers no secret: it is the same whatever the live secrets are.
    assert first["live_fingerprints"] == second["live_fingerprints"]
    # The digest is scrypt over the secrets (the exact construction; nothing cheaper is in the file).
    live = sorted((s.id, s.secret) for s in (demo.state.signature_by_name(n) for n in
                  ("orders_backend", "payments_backend", "debug_temp_key", "legacy_partner_v1")) if s is not None)
    material = json.dumps([["live", "cn-hangzhou", sid, secret] for sid, secret in live]
                          + [["set", "cn-hangzhou", "inventory_backend", "inventorySecret01"]],
                          separators=(",", ":")).encode()
    expected = hashlib.scrypt(material, salt=base64.b64decode(binding["salt"]), n=2 ** 17, r=8, p=1,
                              maxmem=256 * 1024 * 1024, dklen=32).hex()
    assert binding["digest"] == expected
    text = (tmp_path / "one.json").read_text()
    for secret in ("inventorySecret01", "ordersSecret2026", "debugSecret01", "ordersSecret01"):
        assert secret not in text


def test_a_plan_compared_with_a_base_is_applied_against_apply_s_own_read(cli: Cli, demo: RunningEmulator,
                                                                       tmp_path: Path) -> None:
    # The base mentions a (group, stage) the manifests do not: plan reads it too, apply does not; the saved
    # plan depends only on what the manifests need.
    base = tmp_path / "base"
    base.mkdir()
    for manifest in MANIFESTS.glob("*.yaml"):
        (base / manifest.name).write_text(manifest.read_text())
    with (base / "hangzhou.yaml").open("a") as extra:
        extra.write(f"  - group: {PAYMENTS}\n    stage: TEST\n    signature: payments_backend\n"
                    "    apis: [payments_charge]\n")
    path = tmp_path / "plan.json"
    saved_plan(cli, demo, path, "--base", str(base))
    applied = cli(*args("apply", demo, "--plan-file", str(path)), env=CREDENTIALS)
    assert applied.code == 0, applied.err
    assert cli(*args("plan", demo, "--detailed-exitcode"), env=CREDENTIALS).code == 0


def test_a_plan_from_a_snapshot_file_cannot_be_saved(cli: Cli, demo: RunningEmulator, tmp_path: Path) -> None:
    snapshot = tmp_path / "live.json"
    assert cli(*args("plan", demo, "--save-snapshot", str(snapshot)), env=CREDENTIALS).code == 0
    path = tmp_path / "plan.json"
    result = cli("plan", str(MANIFESTS), "--env-file", str(DEMO_ENV), "--snapshot", str(snapshot), "--out-plan",
                 str(path))
    assert (result.code, result.err) == (1, "Error: --out-plan needs the live state from the API (not --snapshot): "
                                            "a saved plan is tied to the live secrets\n")
    assert not path.exists()


# ---------------------------------------------------------------- a stale plan says what differs


def _edited_manifests(tmp_path: Path, *replacements: tuple[str, str]) -> Path:
    edited = tmp_path / "manifests"
    edited.mkdir()
    for manifest in MANIFESTS.glob("*.yaml"):
        text = manifest.read_text()
        for old, new in replacements:
            text = text.replace(old, new)
        (edited / manifest.name).write_text(text)
    return edited


def test_a_stale_plan_names_each_change_and_attribute_that_differs(cli: Cli, demo: RunningEmulator,
                                                                   tmp_path: Path, demo_plan: Path) -> None:
    path = demo_plan
    edited = _edited_manifests(tmp_path, ("inventoryKey01", "inventoryKey02"),
                               ("signature: inventory_backend", "signature: payments_backend"))
    before = demo.state.to_spec()
    result = cli("apply", str(edited), "--env-file", str(DEMO_ENV), "--endpoint", demo.url, "-q", "--plan-file",
                 str(path), env=CREDENTIALS)
    assert (result.code, result.out) == (1, "")
    assert result.err == (f"{STALE}signature.cn-hangzhou.inventory_backend: key inventoryKey01 -> inventoryKey02; "
                          f"binding.cn-hangzhou.{PAYMENTS}.RELEASE.9a7e2c4b6d8f0a1c3e5b7d9f1a3c5e72: signature "
                          f"inventory_backend -> payments_backend); nothing was changed; {NEW_PLAN}\n")
    assert demo.state.to_spec() == before


def test_a_stale_plan_names_five_differences_and_counts_the_rest(cli: Cli, demo: RunningEmulator,
                                                                 tmp_path: Path, demo_plan: Path) -> None:
    path = demo_plan
    edited = _edited_manifests(tmp_path, ("signature: orders_backend", "signature: payments_backend"),
                               ("signature: inventory_backend", "signature: payments_backend"),
                               ("inventoryKey01", "inventoryKey02"))
    result = cli("apply", str(edited), "--env-file", str(DEMO_ENV), "--endpoint", demo.url, "-q", "--plan-file",
                 str(path), env=CREDENTIALS)
    assert (result.code, result.out) == (1, "")
    # In plan order: the saved plan's changes, then those only the manifests give now.
    assert result.err == (
        f"{STALE}signature.cn-hangzhou.inventory_backend: key inventoryKey01 -> inventoryKey02; "
        f"binding.cn-hangzhou.{ORDERS}.RELEASE.46fbb52840d146f186e38e8e70fc8c92: signature orders_backend -> "
        f"payments_backend; binding.cn-hangzhou.{ORDERS}.RELEASE.46fbb52840d146f186e38e8e70fc8c91: no longer "
        f"planned (was rebind); binding.cn-hangzhou.{PAYMENTS}.RELEASE.9a7e2c4b6d8f0a1c3e5b7d9f1a3c5e72: signature "
        f"inventory_backend -> payments_backend; binding.cn-hangzhou.{ORDERS}.RELEASE."
        f"46fbb52840d146f186e38e8e70fc8c90: not in the saved plan (now rebind); and 3 more); nothing was changed; "
        f"{NEW_PLAN}\n")


def test_a_stale_plan_names_a_secret_that_now_differs_never_its_value(cli: Cli, demo: RunningEmulator,
                                                                      demo_plan: Path) -> None:
    path = demo_plan
    result = cli(*args("apply", demo, "--plan-file", str(path)),
                 env={**CREDENTIALS, "PAYMENTS_BACKEND_SECRET": "paymentsSecretNew7"})
    assert (result.code, result.out) == (1, "")
    assert result.err == (f"{STALE}signature.cn-hangzhou.payments_backend: changed attributes key -> key, secret); "
                          f"nothing was changed; {NEW_PLAN}\n")


def test_a_stale_plan_shows_the_file_s_values_escaped(cli: Cli, demo: RunningEmulator, demo_plan: Path) -> None:
    path = demo_plan
    document = json.loads(path.read_text())
    bind = next(c for c in document["plan"]["changes"] if c["action"] == "bind")
    bind["after"]["api_id"] = "\x1b[2J\u202e"
    bind["address"] = f"binding.cn-hangzhou.{ORDERS}.RELEASE.\x1b[2J\u202e"
    path.write_text(json.dumps(document))
    result = cli(*args("apply", demo, "--plan-file", str(path)), env=CREDENTIALS)
    assert (result.code, result.out) == (1, "")
    assert result.err == (f"{STALE}binding.cn-hangzhou.{ORDERS}.RELEASE.\\x1b[2J\\u202e: no longer planned (was "
                          f"bind); binding.cn-hangzhou.{ORDERS}.RELEASE.46fbb52840d146f186e38e8e70fc8c92: not in the "
                          f"saved plan (now bind)); nothing was changed; {NEW_PLAN}\n")
