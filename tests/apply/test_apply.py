"""`reconciler apply` against the emulator over real HTTP: order, batching, convergence, faults,
interruption, saved plans, confirmation, and what the vendor's own SDK reads back afterwards."""

from __future__ import annotations

import io
import json
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from alibabacloud_cloudapi20160714 import models
from alibabacloud_cloudapi20160714.client import Client
from alibabacloud_tea_openapi.models import Config

from reconciler.emulator.apierror import VendorErrorAnswer
from reconciler.emulator.faults import FaultConfig
from reconciler.emulator.server import RunningEmulator, running_emulator
from reconciler.emulator.state import EmulatorState, derived_id
from tests.support.cli import CliResult
from tests.support.emulator import bindings_of
from tests.support.paths import ROOT
from tests.support.prewarmed import Prewarmed

MANIFESTS = ROOT / "manifests"
DEMO_STATE = ROOT / "examples" / "emulator-state.yaml"
DEMO_ENV = ROOT / "examples" / "demo.env"
CREDENTIALS = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "testid", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "testsecret"}
DEMO_SECRETS = ("ordersSecret2026", "paymentsSecret2026", "inventorySecret01", "testsecret")

ORDERS = "0009db9c828549768a200320714b8930"
PAYMENTS = "5d1f3e0a7b8c4d2e9f6a1b3c5d7e9f01"

DEMO_LOG = [
    f"rebound 1 API of group {ORDERS} stage RELEASE from payments_backend to orders_backend",
    f"bound 1 API of group {ORDERS} stage RELEASE to orders_backend",
    f"bound 1 API of group {PAYMENTS} stage RELEASE to inventory_backend",
    f"unbound 1 API of group {ORDERS} stage RELEASE from orders_backend",
    "Apply complete: 1 created, 1 updated, 1 rebound, 2 bound, 1 unbound, 0 deleted.",
]

Cli = Callable[..., CliResult]


@pytest.fixture
def demo() -> Iterator[RunningEmulator]:
    with running_emulator(EmulatorState.from_file(DEMO_STATE)) as emulator:
        yield emulator


def apply_args(emulator: RunningEmulator, *extra: str, manifests: Path = MANIFESTS) -> tuple[str, ...]:
    return ("apply", str(manifests), "--env-file", str(DEMO_ENV), "--endpoint", emulator.url, "-q", *extra)


def plan_args(emulator: RunningEmulator, *extra: str, manifests: Path = MANIFESTS) -> tuple[str, ...]:
    return ("plan", str(manifests), "--env-file", str(DEMO_ENV), "--endpoint", emulator.url, "-q", *extra)


def log_lines(out: str) -> list[str]:
    """The lines apply prints after the plan (the plan ends with its summary line and a blank line)."""
    return re.split(r"^Plan: .*\n\n", out, maxsplit=1, flags=re.MULTILINE)[1].splitlines()


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in DEMO_SECRETS:
            assert secret not in text


def test_the_demo_applied_then_plan_shows_no_changes(cli: Cli, demo: RunningEmulator) -> None:
    result = cli(*apply_args(demo, "--auto-approve"), env=CREDENTIALS)
    assert (result.code, result.err) == (0, "")
    assert "Plan: 1 to create, 1 to update, 0 to delete, 2 to bind, 1 to unbind, 1 to rebind, 1 unmanaged." \
        in result.out
    created_id = demo.state.signature_by_name("inventory_backend").id  # type: ignore[union-attr]
    assert log_lines(result.out) == [f"inventory_backend: created (id {created_id})",
                                     "payments_backend: updated (key)", *DEMO_LOG]
    assert_no_secret(result.out, result.err)

    after = cli(*plan_args(demo, "--detailed-exitcode"), env=CREDENTIALS)
    assert after.code == 0, after.out + after.err
    again = cli(*apply_args(demo, "--auto-approve"), env=CREDENTIALS)
    assert (again.code, again.out) == (0, "No changes. Live state matches the manifests.\n")


def test_the_vendor_sdk_reads_back_exactly_the_desired_state(cli: Cli, demo: RunningEmulator) -> None:
    assert cli(*apply_args(demo, "--auto-approve"), env=CREDENTIALS).code == 0
    sdk = Client(Config(access_key_id="testid", access_key_secret="testsecret", endpoint=demo.endpoint,
                        protocol="http"))
    body = sdk.describe_signatures(models.DescribeSignaturesRequest(page_size=100)).body
    signatures = {i.signature_name: (i.signature_key, i.signature_secret)
                  for i in body.signature_infos.signature_info}
    assert signatures == {
        "orders_backend": ("ordersKey0123456789", "ordersSecret2026"),
        "payments_backend": ("paymentsKey2026", "paymentsSecret2026"),
        "inventory_backend": ("inventoryKey01", "inventorySecret01"),
        "debug_temp_key": ("debugKey01", "debugSecret01"),  # unmanaged: left alone
        "legacy_partner_v1": ("legacyKey01", "legacySecret01"),  # ignored: left alone
    }

    def bound(group: str, stage: str) -> dict[str, str]:
        items = sdk.describe_api_signatures(models.DescribeApiSignaturesRequest(
            group_id=group, stage_name=stage, page_size=100)).body.api_signatures.api_signature_item
        return {i.api_name: i.signature_name for i in items}

    assert bound(ORDERS, "RELEASE") == {"orders_list": "orders_backend", "orders_get": "orders_backend",
                                        "orders_create": "orders_backend", "orders_update": "orders_backend",
                                        "orders_partner_feed": "legacy_partner_v1"}
    assert bound(ORDERS, "TEST") == {"orders_list": "orders_backend", "orders_get": "orders_backend"}
    assert bound(PAYMENTS, "RELEASE") == {"payments_charge": "payments_backend",
                                          "payments_refund": "payments_backend",
                                          "payments_stock_hold": "inventory_backend"}


def test_apply_converges_under_throttling_and_server_errors(cli: Cli, quick_retries: None) -> None:
    faults = FaultConfig(throttle_rate=0.3, error_rate=0.1, seed=7)
    with running_emulator(EmulatorState.from_file(DEMO_STATE), faults=faults) as emulator:
        result = cli(*apply_args(emulator, "--auto-approve"), env=CREDENTIALS)
        assert result.code == 0, result.err
        assert log_lines(result.out)[-1] == DEMO_LOG[-1]
        assert cli(*plan_args(emulator, "--detailed-exitcode"), env=CREDENTIALS).code == 0


def fail_nth_call(state: EmulatorState, method: str, n: int, *, after_write: bool) -> list[int]:
    """Make the n-th call of a state write method answer 500 InternalError (after or instead of writing)."""
    real = getattr(state, method)
    calls = [0]

    def failing(*args: Any) -> Any:
        calls[0] += 1
        if calls[0] != n:
            return real(*args)
        if after_write:
            real(*args)
        raise VendorErrorAnswer(500, "InternalError", "The request processing has failed due to some unknown error.")

    setattr(state, method, failing)
    return calls


def test_an_interrupted_apply_reports_done_and_not_done_and_a_rerun_converges(cli: Cli) -> None:
    state = EmulatorState.from_file(DEMO_STATE)
    # The second SetSignatureApis (the first bind) is carried out, but its answer is a 500: the outcome
    # is unknown to the client, which must not resubmit it, and apply stops there.
    fail_nth_call(state, "set_signature_apis", 2, after_write=True)
    with running_emulator(state) as emulator:
        first = cli(*apply_args(emulator, "--auto-approve", "--concurrency", "1"), env=CREDENTIALS)
        assert first.code == 1
        assert re.fullmatch(
            re.escape(f"Error: apply stopped at the first failure: bind 1 API of group {ORDERS} stage RELEASE to "
                      f"orders_backend: SetSignatureApis failed: InternalError: The request processing has failed "
                      f"due to some unknown error. (RequestId ") + r"[0-9A-F-]{36}\)\n", first.err)
        log = log_lines(first.out)
        assert log[2:] == [
            DEMO_LOG[0],
            "Apply stopped at the first failure. Done: 3 step(s), logged above.",
            "Not done: 3 step(s):",
            f"  bind 1 API of group {ORDERS} stage RELEASE to orders_backend",
            f"  bind 1 API of group {PAYMENTS} stage RELEASE to inventory_backend",
            f"  unbind 1 API of group {ORDERS} stage RELEASE from orders_backend",
            "Run apply again to carry on: it re-reads the live state, so done steps are not repeated.",
        ]

        second = cli(*apply_args(emulator, "--auto-approve"), env=CREDENTIALS)
        assert second.code == 0, second.err
        # The bind that failed had in fact been carried out: it is not planned again.
        assert "Plan: 0 to create, 0 to update, 0 to delete, 1 to bind, 1 to unbind, 0 to rebind, 1 unmanaged." \
            in second.out
        assert log_lines(second.out) == [
            *DEMO_LOG[2:4], "Apply complete: 0 created, 0 updated, 0 rebound, 1 bound, 1 unbound, 0 deleted."]
        assert cli(*plan_args(emulator, "--detailed-exitcode"), env=CREDENTIALS).code == 0


def test_a_failed_rebind_says_the_apis_are_left_unbound_and_a_rerun_binds_them(cli: Cli) -> None:
    state = EmulatorState.from_file(DEMO_STATE)
    fail_nth_call(state, "set_signature_apis", 1, after_write=False)
    with running_emulator(state) as emulator:
        first = cli(*apply_args(emulator, "--auto-approve"), env=CREDENTIALS)
        assert first.code == 1
        assert first.err.startswith(f"Error: apply stopped at the first failure: rebind 1 API of group {ORDERS} "
                                    "stage RELEASE from payments_backend to orders_backend: SetSignatureApis failed")
        assert first.err.rstrip().endswith("(those APIs were unbound from payments_backend and are not yet bound "
                                           "to orders_backend)")
        assert "orders_get" not in bindings_of(state, ORDERS, "RELEASE")
        second = cli(*apply_args(emulator, "--auto-approve"), env=CREDENTIALS)
        assert second.code == 0
        assert f"bound 2 APIs of group {ORDERS} stage RELEASE to orders_backend" in second.out
        assert bindings_of(state, ORDERS, "RELEASE")["orders_get"] == "orders_backend"


def test_a_saved_plan_holds_no_secret_and_is_carried_out(cli: Cli, demo: RunningEmulator, tmp_path: Path) -> None:
    saved = tmp_path / "plan.json"
    made = cli(*plan_args(demo, "--out-plan", str(saved)), env=CREDENTIALS)
    assert made.code == 0
    document = json.loads(saved.read_text())
    assert document["kind"] == "reconciler-saved-plan"
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", document["live_fingerprints"]["cn-hangzhou"])
    assert document["plan"]["summary"]["create"] == 1
    assert_no_secret(saved.read_text())

    # No --auto-approve and no terminal: a saved plan was reviewed already, as with Terraform.
    result = cli(*apply_args(demo, "--plan-file", str(saved)), env=CREDENTIALS)
    assert result.code == 0, result.err
    assert log_lines(result.out)[2:] == DEMO_LOG
    assert cli(*plan_args(demo, "--detailed-exitcode"), env=CREDENTIALS).code == 0


def test_a_stale_saved_plan_is_refused_and_changes_nothing(cli: Cli, demo: RunningEmulator, tmp_path: Path) -> None:
    saved = tmp_path / "plan.json"
    assert cli(*plan_args(demo, "--out-plan", str(saved)), env=CREDENTIALS).code == 0
    # Someone binds an API by hand after the plan was made.
    debug_id = demo.state.signature_by_name("debug_temp_key").id  # type: ignore[union-attr]
    demo.state.set_signature_apis(ORDERS, debug_id, "TEST", ["46fbb52840d146f186e38e8e70fc8c92"])
    before = demo.state.to_spec()
    result = cli(*apply_args(demo, "--plan-file", str(saved)), env=CREDENTIALS)
    assert result.code == 1
    assert result.out == ""
    assert result.err == ("Error: stale plan: the live state of region cn-hangzhou changed since the plan was saved; "
                          "nothing was changed; make a new plan with `reconciler plan --out-plan`\n")
    assert demo.state.to_spec() == before


def test_a_saved_plan_is_refused_when_the_manifests_changed(cli: Cli, demo: RunningEmulator,
                                                            tmp_path: Path) -> None:
    saved = tmp_path / "plan.json"
    assert cli(*plan_args(demo, "--out-plan", str(saved)), env=CREDENTIALS).code == 0
    edited = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, edited)
    manifest = edited / "hangzhou.yaml"
    manifest.write_text(manifest.read_text().replace("key: inventoryKey01", "key: inventoryKey02"))
    result = cli(*apply_args(demo, "--plan-file", str(saved), manifests=edited), env=CREDENTIALS)
    assert (result.code, result.out) == (1, "")
    assert result.err == ("Error: the manifests (or the secrets in the environment) no longer give the saved plan "
                          "(signature.cn-hangzhou.inventory_backend: key inventoryKey01 -> inventoryKey02); nothing "
                          "was changed; make a new plan with `reconciler plan --out-plan`\n")


def test_a_plan_made_without_secrets_cannot_be_saved(cli: Cli, demo: RunningEmulator, tmp_path: Path) -> None:
    saved = tmp_path / "plan.json"
    result = cli(*plan_args(demo, "--skip-secrets", "--out-plan", str(saved)), env=CREDENTIALS)
    assert result.code == 1
    assert result.err.startswith("Error: --out-plan needs the secrets")
    assert not saved.exists()


def test_without_a_terminal_apply_needs_auto_approve(cli: Cli, demo: RunningEmulator) -> None:
    result = cli(*apply_args(demo), env=CREDENTIALS)
    assert (result.code, result.out) == (1, "")
    assert result.err == "Error: apply asks for confirmation but stdin is not a terminal; pass --auto-approve\n"
    assert demo.state.signature_by_name("inventory_backend") is None


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("answer", "applied"), [("yes", True), ("y", False), ("", False)])
def test_apply_asks_and_only_yes_applies(cli: Cli, demo: RunningEmulator, monkeypatch: pytest.MonkeyPatch,
                                         answer: str, applied: bool) -> None:
    monkeypatch.setattr(sys, "stdin", _Terminal(answer + "\n"))
    result = cli(*apply_args(demo), env=CREDENTIALS)
    assert "Plan: 1 to create" in result.out
    assert "Apply these changes? Only 'yes' will be accepted: " in result.out
    assert (demo.state.signature_by_name("inventory_backend") is not None) is applied
    if applied:
        assert result.code == 0
        assert result.out.endswith(DEMO_LOG[-1] + "\n")
    else:
        assert (result.code, result.err) == (1, "Error: apply cancelled; nothing was changed\n")


def test_bindings_go_at_most_100_apis_a_call(cli: Cli, tmp_path: Path) -> None:
    apis = [f"api{n:03d}" for n in range(250)]
    state = EmulatorState.from_dict({
        "region": "cn-hangzhou",
        "signatures": [{"name": "old_backend", "key": "oldKey01", "secret": "oldSecret01"}],
        "groups": [{"name": "big", "apis": [{"name": a} for a in apis],
                    "bindings": {"TEST": {a: "old_backend" for a in apis[:120]}}}],
    })
    group = derived_id("group", "big")
    calls: list[tuple[str, int]] = []
    for method in ("set_signature_apis", "remove_signature_apis"):
        real = getattr(state, method)

        def counting(*args: Any, real: Any = real, method: str = method) -> Any:
            calls.append((f"{method}:{args[2]}", len(args[3])))
            return real(*args)

        setattr(state, method, counting)
    manifest = tmp_path / "big.yaml"
    manifest.write_text(
        "region: cn-hangzhou\nprune: true\nsignatures:\n"
        "  - {name: new_backend, key: newKey01, secret: newSecret01}\n"
        f"bindings:\n  - {{group: {group}, stage: RELEASE, signature: new_backend, apis: [{', '.join(apis)}]}}\n"
        f"  - {{group: {group}, stage: TEST, signature: new_backend, apis: [{', '.join(apis[100:120])}]}}\n")
    with running_emulator(state) as emulator:
        result = cli("apply", str(manifest), "--endpoint", emulator.url, "-q", "--auto-approve", env=CREDENTIALS)
        assert result.code == 0, result.err
        log = log_lines(result.out)
        # One line per scope with the total, though it took three calls.
        assert f"bound 250 APIs of group {group} stage RELEASE to new_backend" in log
        assert f"rebound 20 APIs of group {group} stage TEST from old_backend to new_backend" in log
        assert f"unbound 100 APIs of group {group} stage TEST from old_backend" in log
        assert log[-2] == "old_backend: deleted (id " + derived_id("signature", "old_backend") + ")"
        assert sorted(calls) == sorted([
            ("set_signature_apis:RELEASE", 100), ("set_signature_apis:RELEASE", 100),
            ("set_signature_apis:RELEASE", 50), ("remove_signature_apis:TEST", 20),
            ("set_signature_apis:TEST", 20), ("remove_signature_apis:TEST", 100)])
        assert cli("plan", str(manifest), "--endpoint", emulator.url, "-q", "--detailed-exitcode",
                   env=CREDENTIALS).code == 0
        assert state.signature_by_name("old_backend") is None


def test_emulator_save_keeps_what_apply_wrote(tmp_path: Path, prewarmed: Prewarmed) -> None:
    state_file = tmp_path / "state.yaml"
    shutil.copy(DEMO_STATE, state_file)
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "emulator", "--state", str(state_file), "--port", "0", "--save"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip().removeprefix("Emulator listening on ")
        env = {**CREDENTIALS, "PATH": "/usr/bin:/bin"}
        applied = prewarmed.run(["apply", str(MANIFESTS), "--env-file", str(DEMO_ENV), "--endpoint", url,
                                 "--auto-approve", "-q"], env=env, cwd=Path.cwd(), timeout=30)
        assert applied.returncode == 0, applied.stderr
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=15)
    assert process.returncode == 0, err
    assert out == f"Emulator state saved to {state_file}\n"
    saved = EmulatorState.from_file(state_file)
    assert bindings_of(saved, PAYMENTS, "RELEASE")["payments_stock_hold"] == "inventory_backend"
    assert saved.signature_by_name("payments_backend").key == "paymentsKey2026"  # type: ignore[union-attr]


def test_apply_with_the_embedded_emulator_says_the_changes_are_gone(cli: Cli) -> None:
    result = cli("apply", str(MANIFESTS), "--env-file", str(DEMO_ENV), "--emulator", str(DEMO_STATE), "-q",
                 "--auto-approve")
    assert result.code == 0
    assert result.out.endswith(DEMO_LOG[-1] + "\n")
    assert result.err == (f"Note: the changes go to an embedded emulator and are gone when this command ends; to "
                          f"keep them, serve {DEMO_STATE} with `reconciler emulator --save` and use --endpoint.\n")
