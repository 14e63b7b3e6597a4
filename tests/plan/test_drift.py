"""`plan --base-ref` / `--base`: changes a pull request introduces, told apart from drift that was already
pending on its base, from one read of the live state (the demo emulator over HTTP)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest

from reconciler.review import plan_json_schema
from tests.support.cli import CliResult
from tests.support.emulator_actions import record_actions
from tests.support.paths import ROOT

STATE = str(ROOT / "examples" / "emulator-state.yaml")
DEMO_ENV = str(ROOT / "examples" / "demo.env")
DEMO = (ROOT / "manifests" / "hangzhou.yaml").read_text()
ORDERS_RELEASE = "apis: [orders_list, orders_get, orders_create, 46fbb52840d146f186e38e8e70fc8c94]"
BINDING = "binding.cn-hangzhou.0009db9c828549768a200320714b8930"

Cli = Callable[..., CliResult]


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=cwd,
                          check=True, capture_output=True, text=True)
    return done.stdout


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository whose `main` holds the demo manifests; the working tree is the pull request."""
    root = tmp_path / "repo"
    (root / "manifests").mkdir(parents=True)
    (root / "manifests" / "hangzhou.yaml").write_text(DEMO)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "base")
    monkeypatch.chdir(root)
    return root


def labels(result: CliResult) -> dict[str, tuple[str, str]]:
    document = json.loads(result.out)
    jsonschema.validate(document, plan_json_schema())
    return {c["address"]: (c["action"], c["label"]) for c in document["changes"]}


DEMO_LABELS = {
    "signature.cn-hangzhou.debug_temp_key": ("unmanaged", "drift"),
    "signature.cn-hangzhou.inventory_backend": ("create", "drift"),
    "signature.cn-hangzhou.payments_backend": ("update", "drift"),
    f"{BINDING}.RELEASE.46fbb52840d146f186e38e8e70fc8c91": ("rebind", "drift"),
    f"{BINDING}.RELEASE.46fbb52840d146f186e38e8e70fc8c92": ("bind", "drift"),
    f"{BINDING}.RELEASE.46fbb52840d146f186e38e8e70fc8c93": ("unbind", "drift"),
    "binding.cn-hangzhou.5d1f3e0a7b8c4d2e9f6a1b3c5d7e9f01.RELEASE.9a7e2c4b6d8f0a1c3e5b7d9f1a3c5e72": ("bind", "drift"),
}


def test_base_ref_labels_introduced_drift_and_resolved(cli: Cli, repo: Path) -> None:
    manifest = repo / "manifests" / "hangzhou.yaml"
    manifest.write_text(DEMO.replace(ORDERS_RELEASE, "apis: [orders_list, orders_get, orders_delete]"))
    result = cli("plan", "manifests/", "--base-ref", "main", "--emulator", STATE, "--env-file", DEMO_ENV,
                 "-o", "json", "--detailed-exitcode")
    assert (result.code, result.err) == (2, "")
    assert labels(result) == {
        **DEMO_LABELS,
        f"{BINDING}.RELEASE.46fbb52840d146f186e38e8e70fc8c92": ("bind", "resolved"),
        f"{BINDING}.RELEASE.46fbb52840d146f186e38e8e70fc8c93": ("unbind", "resolved"),
        f"{BINDING}.RELEASE.46fbb52840d146f186e38e8e70fc8c94": ("unbind", "introduced"),
    }
    document = json.loads(result.out)
    assert document["base"] == "main"
    # Resolved changes are not this plan's: the summary counts one unbind (introduced) and one bind (drift).
    assert (document["summary"]["bind"], document["summary"]["unbind"]) == (1, 1)


def test_text_tags_each_change_and_lists_resolved_ones_last(cli: Cli, repo: Path) -> None:
    manifest = repo / "manifests" / "hangzhou.yaml"
    manifest.write_text(DEMO.replace(ORDERS_RELEASE, "apis: [orders_list, orders_get, orders_delete]"))
    result = cli("plan", "manifests/", "--base-ref", "main", "--emulator", STATE, "--env-file", DEMO_ENV)
    lines = result.out.splitlines()
    assert "  - unbind orders_update (46fbb52840d146f186e38e8e70fc8c94) from orders_backend  [introduced]" in lines
    assert '  # signature "payments_backend" will be updated in place  (manifests/hangzhou.yaml:12)  [drift]' in lines
    assert lines[-7:] == [
        "Pending on the base, resolved by these manifests:",
        f"  = bind      {BINDING}.RELEASE.46fbb52840d146f186e38e8e70fc8c92 orders_create -> orders_backend  [resolved]",
        f"  = unbind    {BINDING}.RELEASE.46fbb52840d146f186e38e8e70fc8c93 orders_delete from orders_backend  "
        "[resolved]",
        "",
        "Compared with the base main: 1 introduced, 5 drift (already pending on the base), 2 resolved.",
        "",
        "Plan: 1 to create, 1 to update, 0 to delete, 1 to bind, 1 to unbind, 1 to rebind, 1 unmanaged.",
    ]


def test_unchanged_pull_request_is_all_drift(cli: Cli, repo: Path) -> None:
    result = cli("plan", "manifests/", "--base-ref", "main", "--emulator", STATE, "--env-file", DEMO_ENV, "-o", "json")
    assert labels(result) == DEMO_LABELS


def test_base_folder_and_a_new_secret_value(cli: Cli, tmp_path: Path) -> None:
    """The same create in both plans is introduced when the pull request gives the new key another secret."""
    base = tmp_path / "base"
    base.mkdir()
    (base / "hangzhou.yaml").write_text(DEMO)
    pr = tmp_path / "pr"
    pr.mkdir()
    (pr / "hangzhou.yaml").write_text(DEMO.replace("INVENTORY_BACKEND_SECRET", "INVENTORY_ROTATED_SECRET"))
    args = ("plan", str(pr), "--base", str(base), "--emulator", STATE, "--env-file", DEMO_ENV, "-o", "json")
    rotated = cli(*args, env={"INVENTORY_ROTATED_SECRET": "inventorySecret02"})
    assert labels(rotated)["signature.cn-hangzhou.inventory_backend"] == ("create", "introduced")
    same_value = cli(*args, env={"INVENTORY_ROTATED_SECRET": "inventorySecret01"})
    assert labels(same_value)["signature.cn-hangzhou.inventory_backend"] == ("create", "drift")


def test_base_and_pull_request_share_one_read_of_the_live_state(cli: Cli, repo: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The pull request moves a binding to a (group, stage) the base does not mention: both are read, once."""
    actions = record_actions(monkeypatch)
    manifest = repo / "manifests" / "hangzhou.yaml"
    inventory = "stage: RELEASE\n    signature: inventory_backend"
    manifest.write_text(DEMO.replace(inventory, inventory.replace("RELEASE", "TEST")))
    result = cli("plan", "manifests/", "--base-ref", "main", "--emulator", STATE, "--env-file", DEMO_ENV, "-o", "json")
    assert result.code == 0, result.err
    # Signatures once; bindings of orders RELEASE, TEST, payments RELEASE (base), payments TEST (pull request);
    # 2 API lists.
    assert sorted(actions) == ["DescribeApiSignatures"] * 4 + ["DescribeApis"] * 2 + ["DescribeSignatures"]
    payments_test = "binding.cn-hangzhou.5d1f3e0a7b8c4d2e9f6a1b3c5d7e9f01.TEST.9a7e2c4b6d8f0a1c3e5b7d9f1a3c5e72"
    assert labels(result)[payments_test] == ("bind", "introduced")


def test_a_base_without_the_manifests_makes_everything_introduced(cli: Cli, repo: Path) -> None:
    shutil.copytree(repo / "manifests", repo / "new")
    result = cli("plan", "new/", "--base-ref", "main", "--emulator", STATE, "--env-file", DEMO_ENV, "-o", "json")
    assert {label for _, label in labels(result).values()} == {"introduced"}


def test_errors_in_the_base_name_the_base(cli: Cli, repo: Path) -> None:
    (repo / "manifests" / "hangzhou.yaml").write_text(DEMO.replace("stage: TEST", "stage: PROD"))
    git(repo, "commit", "-q", "-am", "broken base")
    (repo / "manifests" / "hangzhou.yaml").write_text(DEMO)
    result = cli("plan", "manifests/", "--base-ref", "HEAD", "--emulator", STATE, "--env-file", DEMO_ENV)
    assert (result.code, result.out) == (1, "")
    assert result.err == ("Error: base HEAD: manifests/hangzhou.yaml:25: bindings[1].stage: must be RELEASE or TEST "
                          "(got 'PROD')\n")


def test_unknown_ref_and_conflicting_options(cli: Cli, repo: Path) -> None:
    result = cli("plan", "manifests/", "--base-ref", "origin/main", "--emulator", STATE, "--env-file", DEMO_ENV)
    assert result.code == 1
    assert result.err == (f"Error: --base-ref origin/main: no such commit in {repo.resolve()} (in CI, fetch the base "
                          "branch too, e.g. actions/checkout with fetch-depth: 0)\n")
    both = cli("plan", "manifests/", "--base-ref", "main", "--base", "manifests/", "--env-file", DEMO_ENV)
    assert (both.code, both.err) == (1, "Error: give --base-ref or --base, not both\n")


def test_manifests_outside_the_repository(cli: Cli, repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "hangzhou.yaml").write_text(DEMO)
    result = cli("plan", str(outside), "--base-ref", "main", "--emulator", STATE, "--env-file", DEMO_ENV)
    assert result.code == 1
    assert result.err.startswith(f"Error: {outside}: not in a git repository (git rev-parse failed: fatal: not a git "
                                 "repository")
    assert result.err.endswith("); give the base's manifests with --base PATH instead\n")


def test_the_base_manifests_are_read_from_git_byte_for_byte(repo: Path, tmp_path: Path) -> None:
    from reconciler.drift import checkout_base_manifests

    files = {"hangzhou.yaml": DEMO.encode(), "same.yaml": DEMO.encode(), "last.yml": b"region: cn-hangzhou",
             "empty.yaml": b"", "binary.yaml": bytes(range(256)) + b"\n\n"}
    for name, content in files.items():
        (repo / "manifests" / name).write_bytes(content)
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "more manifests")
    for name in files:
        (repo / "manifests" / name).write_bytes(b"region: changed-in-the-pull-request\n")
    into = tmp_path / "base"
    assert checkout_base_manifests("main", [repo / "manifests"], into) == [into / "manifests"]
    assert {p.name: p.read_bytes() for p in (into / "manifests").iterdir()} == files


def test_a_broken_pull_request_is_reported_before_a_base_that_cannot_be_read(cli: Cli, repo: Path) -> None:
    # The base is fetched while the manifests load; its errors still come after theirs.
    (repo / "manifests" / "hangzhou.yaml").write_text(DEMO.replace("stage: TEST", "stage: PROD"))
    for base in (("--base-ref", "origin/main"), ("--base-ref", "main", "--base", "manifests/")):
        result = cli("plan", "manifests/", *base, "--emulator", STATE, "--env-file", DEMO_ENV)
        assert (result.code, result.err) == (1, "Error: manifests/hangzhou.yaml:25: bindings[1].stage: must be "
                                                "RELEASE or TEST (got 'PROD')\n")


@pytest.mark.parametrize("object_format", ["sha1", "sha256"])
def test_base_files_the_work_tree_has_unchanged_are_the_committed_bytes(tmp_path: Path, object_format: str) -> None:
    from reconciler.drift import _object_id, checkout_base_manifests

    repo = tmp_path / "repo"
    (repo / "manifests").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main", f"--object-format={object_format}")
    files = {"same.yaml": DEMO.encode(), "crlf.yaml": DEMO.encode(), "changed.yaml": DEMO.encode()}
    for name, content in files.items():
        (repo / "manifests" / name).write_bytes(content)
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "base")
    committed = git(repo, "rev-parse", "main:manifests/same.yaml").strip()
    assert _object_id(DEMO.encode(), len(committed)) == committed  # so the work tree's unchanged files are used
    (repo / "manifests" / "crlf.yaml").write_bytes(DEMO.replace("\n", "\r\n").encode())
    (repo / "manifests" / "changed.yaml").write_bytes(DEMO.replace("TEST", "RELEASE").encode())
    into = tmp_path / "base"
    assert checkout_base_manifests("main", [repo / "manifests"], into) == [into / "manifests"]
    assert {p.name: p.read_bytes() for p in (into / "manifests").iterdir()} == files
