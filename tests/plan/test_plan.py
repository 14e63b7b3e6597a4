"""`reconciler plan` against a snapshot file: every action, the three renderers, exit codes, secrets."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest

from reconciler.review import plan_json_schema
from reconciler.snapshot import Snapshot
from tests.support.cli import CliResult
from tests.support.demo import DEMO_MANIFEST, DEMO_SECRETS, ORDERS, demo_snapshot
from tests.support.paths import GOLDEN, ROOT
from tests.support.snapshots import write_snapshot

LIVE_SECRETS = ["ordersSecret01", "paymentsSecret01", "manualSecret01", "legacySecret01"]


@pytest.fixture
def files(write: Callable[[str, str], Path]) -> tuple[Path, Path]:
    manifest = write("manifests/m.yaml", DEMO_MANIFEST)
    snapshot = write("snapshot.json", "")
    write_snapshot(demo_snapshot(), snapshot)
    return manifest, snapshot


def _golden(name: str, text: str, root: Path) -> str:
    """Golden files are written with the path `manifests/m.yaml`; the test's temp path is put back."""
    return text.replace(str(root) + os.sep, "")


@pytest.mark.parametrize("fmt", ["text", "markdown", "json"])
def test_every_action_rendered(cli: Callable[..., CliResult], files: tuple[Path, Path], fmt: str) -> None:
    manifest, snapshot = files
    result = cli("plan", str(manifest), "--snapshot", str(snapshot), "-o", fmt, "--detailed-exitcode", env=DEMO_SECRETS)
    assert (result.code, result.err) == (2, "")
    suffix = {"text": "txt", "markdown": "md", "json": "json"}[fmt]
    expected = (GOLDEN / f"plan-every-action.{suffix}").read_text()
    assert _golden(fmt, result.out, manifest.parent.parent) == expected


def test_text_summary_line(cli: Callable[..., CliResult], files: tuple[Path, Path]) -> None:
    manifest, snapshot = files
    result = cli("plan", str(manifest), "--snapshot", str(snapshot), env=DEMO_SECRETS)
    assert result.code == 0
    assert result.out.splitlines()[-1] == (
        "Plan: 1 to create, 1 to update, 0 to delete, 1 to bind, 1 to unbind, 1 to rebind, 1 unmanaged.")


def test_json_matches_its_schema_and_the_committed_schema(cli: Callable[..., CliResult],
                                                          files: tuple[Path, Path]) -> None:
    manifest, snapshot = files
    result = cli("plan", str(manifest), "--snapshot", str(snapshot), "-o", "json", env=DEMO_SECRETS)
    document = json.loads(result.out)
    jsonschema.validate(document, plan_json_schema())
    committed = json.loads((ROOT / "docs" / "plan.schema.json").read_text())
    assert committed == plan_json_schema(), "docs/plan.schema.json is stale: run `reconciler schema --plan`"
    assert document["format_version"] == "1"
    # Optional fields within format "1" (--base, --target, --changed-only) are absent when not asked for.
    assert not {"base", "targets", "changed_only"} & document.keys()
    assert not {"base", "targets", "changed_only"} & set(plan_json_schema()["required"])
    assert plan_json_schema()["properties"]["changed_only"]["anyOf"] == [{"type": "boolean"}, {"type": "null"}]
    assert document["summary"] == {"create": 1, "update": 1, "delete": 0, "bind": 1, "unbind": 1, "rebind": 1,
                                   "unmanaged": 1, "no_op": 2}
    update = next(c for c in document["changes"] if c["action"] == "update")
    assert update["changed"] == ["key", "secret"]
    assert update["after"]["secret"] == "(sensitive value)"


def test_prune_turns_unmanaged_into_delete(cli: Callable[..., CliResult], write: Callable[[str, str], Path],
                                           files: tuple[Path, Path]) -> None:
    _, snapshot = files
    manifest = write("pruned.yaml", "prune: true\n" + DEMO_MANIFEST)
    result = cli("plan", str(manifest), "--snapshot", str(snapshot), "--no-color", env=DEMO_SECRETS)
    assert '  - signature "manual_debug" {' in result.out.splitlines()
    assert "legacy_partner" not in result.out  # ignored: neither deleted nor its binding unbound
    assert result.out.splitlines()[-1] == (
        "Plan: 1 to create, 1 to update, 1 to delete, 1 to bind, 1 to unbind, 1 to rebind.")


def test_no_changes(cli: Callable[..., CliResult], write: Callable[[str, str], Path]) -> None:
    live = demo_snapshot()
    manifest = write("m.yaml", f"""\
region: cn-hangzhou
ignore: [legacy_*, manual_*]
signatures:
  - {{name: orders_backend, key: ordersKey01, secret: "${{env:ORDERS_SECRET}}"}}
  - {{name: payments_backend, key: paymentsOld, secret: "${{env:PAYMENTS_SECRET}}"}}
bindings:
  - {{group: {ORDERS}, stage: RELEASE, signature: orders_backend,
     apis: [orders_list, a0000000000000000000000000000004]}}
  - {{group: {ORDERS}, stage: RELEASE, signature: payments_backend, apis: [orders_get]}}
""")
    snapshot = write("s.json", "")
    write_snapshot(live, snapshot)
    env = {"ORDERS_SECRET": "ordersSecret01", "PAYMENTS_SECRET": "paymentsSecret01"}
    for fmt, expected in [("text", "No changes. Live state matches the manifests.\n"),
                          ("markdown", "### reconciler plan\n\n**No changes.** Live state matches the manifests "
                                       "(cn-hangzhou).\n")]:
        result = cli("plan", str(manifest), "--snapshot", str(snapshot), "-o", fmt, "--detailed-exitcode", env=env)
        assert (result.code, result.out) == (0, expected)


def test_skip_secrets_is_said_in_every_format(cli: Callable[..., CliResult], files: tuple[Path, Path],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    manifest, snapshot = files
    for name in DEMO_SECRETS:
        monkeypatch.delenv(name, raising=False)
    text = cli("plan", str(manifest), "--snapshot", str(snapshot), "--skip-secrets")
    assert ("Note: Secrets were not checked (--skip-secrets): only keys and bindings were compared."
            in text.out.splitlines())
    assert "(sensitive value changed)" not in text.out  # secrets were not compared
    markdown = cli("plan", str(manifest), "--snapshot", str(snapshot), "--skip-secrets", "-o", "markdown")
    assert "> Secrets were not checked (--skip-secrets): only keys and bindings were compared." in markdown.out
    document = json.loads(cli("plan", str(manifest), "--snapshot", str(snapshot), "--skip-secrets", "-o",
                              "json").out)
    assert document["secrets_checked"] is False
    update = next(c for c in document["changes"] if c["action"] == "update")
    assert (update["changed"], update["after"]["secret"]) == (["key"], "(not checked)")


def test_secrets_never_appear_in_any_output(cli: Callable[..., CliResult], write: Callable[[str, str], Path],
                                            tmp_path: Path) -> None:
    literal = "literalSecretXyz9"
    manifest = write("m.yaml", DEMO_MANIFEST.replace("${env:INVENTORY_SECRET}", literal))
    snapshot = tmp_path / "clear.json"
    write_snapshot(demo_snapshot(), snapshot, clear_secrets=True)  # even a snapshot holding clear secrets
    planted = [literal, *DEMO_SECRETS.values(), *LIVE_SECRETS]
    for fmt in ("text", "json", "markdown"):
        out_file = tmp_path / f"plan.{fmt}"
        result = cli("--debug", "plan", str(manifest), "--snapshot", str(snapshot), "-o", fmt, env=DEMO_SECRETS)
        cli("plan", str(manifest), "--snapshot", str(snapshot), "-o", fmt, "--out", str(out_file), env=DEMO_SECRETS)
        for secret in planted:
            assert secret not in result.out + result.err + out_file.read_text(), (fmt, secret)


def test_written_snapshot_keeps_no_clear_secret(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    write_snapshot(demo_snapshot(), path)
    text = path.read_text()
    assert not any(secret in text for secret in LIVE_SECRETS)
    loaded = Snapshot.model_validate_json(text)
    assert loaded.signatures[0].secret_matches("ordersSecret01")
    assert not loaded.signatures[0].secret_matches("ordersSecret02")


def test_unknown_api_name_is_an_error_naming_the_line(cli: Callable[..., CliResult],
                                                      write: Callable[[str, str], Path],
                                                      files: tuple[Path, Path]) -> None:
    _, snapshot = files
    manifest = write("m2.yaml", DEMO_MANIFEST.replace("orders_create]", "orders_craete]"))
    result = cli("plan", str(manifest), "--snapshot", str(snapshot), env=DEMO_SECRETS)
    assert result.code == 1
    assert result.err == (f"Error: {manifest}:17: apis: API 'orders_craete' does not exist in group {ORDERS}\n")


def test_same_api_by_name_and_id_is_an_error(cli: Callable[..., CliResult], write: Callable[[str, str], Path],
                                            files: tuple[Path, Path]) -> None:
    _, snapshot = files
    manifest = write("m3.yaml", DEMO_MANIFEST.replace("orders_create]", "a0000000000000000000000000000001]"))
    result = cli("plan", str(manifest), "--snapshot", str(snapshot), env=DEMO_SECRETS)
    assert result.code == 1
    assert result.err == (f"Error: {manifest}:17: apis: API 'a0000000000000000000000000000001' is the same API "
                          f"(a0000000000000000000000000000001) as 'orders_list' at {manifest}:17; list it once\n")


def test_scope_not_in_snapshot_is_an_error(cli: Callable[..., CliResult], write: Callable[[str, str], Path],
                                           files: tuple[Path, Path]) -> None:
    _, snapshot = files
    manifest = write("m4.yaml", DEMO_MANIFEST.replace("stage: RELEASE", "stage: TEST"))
    result = cli("plan", str(manifest), "--snapshot", str(snapshot), env=DEMO_SECRETS)
    assert result.code == 1
    assert result.err == (f"Error: the live state of region cn-hangzhou does not include the bindings of group "
                          f"{ORDERS} stage TEST, which a manifest mentions\n")


def test_bad_snapshot_file(cli: Callable[..., CliResult], write: Callable[[str, str], Path],
                           files: tuple[Path, Path]) -> None:
    manifest, _ = files
    broken = write("broken.json", '{"region": "cn-hangzhou",\n "signatures": [}')
    result = cli("plan", str(manifest), "--snapshot", str(broken), env=DEMO_SECRETS)
    assert (result.code, result.err) == (1, f"Error: {broken}:2: snapshot is not valid JSON: Expecting value\n")


def test_unmanaged_alone_is_reported_but_is_no_change(cli: Callable[..., CliResult],
                                                      write: Callable[[str, str], Path]) -> None:
    manifest = write("m.yaml", f"""\
region: cn-hangzhou
ignore: [legacy_*]
signatures:
  - {{name: orders_backend, key: ordersKey01, secret: "${{env:ORDERS_SECRET}}"}}
  - {{name: payments_backend, key: paymentsOld, secret: "${{env:PAYMENTS_SECRET}}"}}
bindings:
  - {{group: {ORDERS}, stage: RELEASE, signature: orders_backend,
     apis: [orders_list, a0000000000000000000000000000004]}}
  - {{group: {ORDERS}, stage: RELEASE, signature: payments_backend, apis: [orders_get]}}
""")
    snapshot = write("s.json", "")
    write_snapshot(demo_snapshot(), snapshot)
    env = {"ORDERS_SECRET": "ordersSecret01", "PAYMENTS_SECRET": "paymentsSecret01"}
    result = cli("plan", str(manifest), "--snapshot", str(snapshot), "--detailed-exitcode", env=env)
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[0] == "Nothing to change; reported for information:"
    assert '  ? signature "manual_debug"' in lines
    assert lines[-1] == "Plan: 0 to create, 0 to update, 0 to delete, 0 to bind, 0 to unbind, 0 to rebind, 1 unmanaged."
