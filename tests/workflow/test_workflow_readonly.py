"""The read-only guarantee a scheduled job's RAM policy relies on: `plan`, `export` and `validate` send
nothing but Describe* requests, as the emulator sees them (and `apply`, the control, does send writes)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.cli import CliResult
from tests.support.emulator_actions import record_actions
from tests.support.paths import ROOT

STATE = str(ROOT / "examples" / "emulator-state.yaml")
DEMO_ENV = str(ROOT / "examples" / "demo.env")
MANIFESTS = str(ROOT / "manifests")
# The actions the read-only RAM policy in the README grants, and nothing else.
POLICY_ACTIONS = {"DescribeSignatures", "DescribeApiSignatures", "DescribeApis", "DescribeApiGroups",
                  "DescribeApisBySignature", "DescribeRegions"}

Cli = Callable[..., CliResult]


@pytest.mark.parametrize("args", [
    ("plan", MANIFESTS, "--env-file", DEMO_ENV, "--emulator", STATE),
    ("plan", MANIFESTS, "--skip-secrets", "--emulator", STATE, "--signature-version", "v1", "-o", "json"),
    ("plan", MANIFESTS, "--env-file", DEMO_ENV, "--emulator", STATE, "--base", MANIFESTS, "-o", "markdown"),
    ("export", "--region", "cn-hangzhou", "--all-groups", "--emulator", STATE),
    ("scan", MANIFESTS, "--emulator", STATE),
], ids=["plan", "plan-v1-skip-secrets", "plan-with-base", "export", "scan"])
def test_reading_commands_send_only_describe_requests(cli: Cli, monkeypatch: pytest.MonkeyPatch,
                                                      args: tuple[str, ...]) -> None:
    actions = record_actions(monkeypatch)
    result = cli(*args)
    assert result.code in (0, 2), result.err
    assert actions, "nothing reached the emulator: the test would prove nothing"
    assert set(actions) <= POLICY_ACTIONS


def test_a_plan_that_deletes_asks_where_the_key_is_bound_and_still_only_reads(
        cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    manifest = tmp_path / "hangzhou.yaml"
    manifest.write_text((ROOT / "manifests" / "hangzhou.yaml").read_text().replace("prune: false", "prune: true", 1))
    actions = record_actions(monkeypatch)
    result = cli("plan", str(manifest), "--env-file", DEMO_ENV, "--emulator", STATE)
    assert result.code == 0, result.err
    assert "DescribeApisBySignature" in actions
    assert set(actions) <= POLICY_ACTIONS


def test_validate_sends_nothing(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    actions = record_actions(monkeypatch)
    assert cli("validate", MANIFESTS, "--env-file", DEMO_ENV).code == 0
    assert actions == []


def test_apply_is_the_one_command_that_writes(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    actions = record_actions(monkeypatch)
    result = cli("apply", MANIFESTS, "--env-file", DEMO_ENV, "--emulator", STATE, "--auto-approve", "--quiet")
    assert result.code == 0, result.err
    assert {"CreateSignature", "ModifySignature", "SetSignatureApis", "RemoveSignatureApis"} <= set(actions)


def test_the_documented_policy_grants_exactly_these_actions() -> None:
    block = re.search(r"```json\n( *\{.*?\n *\})\n *```", (ROOT / "README.md").read_text(), re.S)
    assert block is not None
    policy = json.loads(block.group(1))
    [statement] = policy["Statement"]
    assert statement["Effect"] == "Allow"
    assert set(statement["Action"]) == {f"apigateway:{action}" for action in POLICY_ACTIONS}
