"""Output for CI and people: one line per change, a subset by --target, a markdown comment that always fits
GitHub's limit, annotations on the manifest line in GitHub Actions, several regions in one run, shell
completion and editor support."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from reconciler.manifest import manifest_json_schema
from reconciler.plan import Action, BindingChange, BindingValues, Plan, Resource, summarize
from reconciler.render.common import GITHUB_COMMENT_LIMIT
from reconciler.render.plan import render_markdown
from tests.support.cli import CliResult
from tests.support.demo import DEMO_MANIFEST, DEMO_SECRETS, ORDERS, api_id, demo_snapshot
from tests.support.paths import ROOT
from tests.support.prewarmed import Prewarmed
from tests.support.snapshots import write_snapshot

STATE = ROOT / "examples" / "emulator-state.yaml"
DEMO_ENV = str(ROOT / "examples" / "demo.env")
BINDING = f"binding.cn-hangzhou.{ORDERS}.RELEASE"

Cli = Callable[..., CliResult]


@pytest.fixture
def files(write: Callable[[str, str], Path]) -> tuple[str, str]:
    manifest = write("manifests/m.yaml", DEMO_MANIFEST)
    snapshot = write("snapshot.json", "")
    write_snapshot(demo_snapshot(), snapshot)
    return str(manifest), str(snapshot)


def test_compact_is_one_line_per_change(cli: Cli, files: tuple[str, str]) -> None:
    manifest, snapshot = files
    result = cli("plan", manifest, "--snapshot", snapshot, "--compact", "--detailed-exitcode", env=DEMO_SECRETS)
    assert result.code == 2
    assert result.out == f"""\
+ create    signature.cn-hangzhou.inventory_backend
? unmanaged signature.cn-hangzhou.manual_debug
~ update    signature.cn-hangzhou.payments_backend (key, secret)
+ bind      {BINDING}.{api_id(3)} orders_create -> orders_backend
- unbind    {BINDING}.{api_id(4)} orders_delete from orders_backend
~ rebind    {BINDING}.{api_id(2)} orders_get: payments_backend -> orders_backend

Plan: 1 to create, 1 to update, 0 to delete, 1 to bind, 1 to unbind, 1 to rebind, 1 unmanaged.
"""
    refused = cli("plan", manifest, "--snapshot", snapshot, "--compact", "-o", "json", env=DEMO_SECRETS)
    assert (refused.code, refused.err) == (1, "Error: --compact is a text view; it does not go with -o json\n")


def test_target_selects_a_signature_and_its_bindings(cli: Cli, files: tuple[str, str]) -> None:
    manifest, snapshot = files
    result = cli("plan", manifest, "--snapshot", snapshot, "--target", "signature=payments_*", "-o", "json",
                 env=DEMO_SECRETS)
    document = json.loads(result.out)
    assert [(c["action"], c["address"]) for c in document["changes"]] == [
        ("update", "signature.cn-hangzhou.payments_backend"),
        ("rebind", f"{BINDING}.{api_id(2)}"),  # bound to payments_backend live
    ]
    assert document["targets"] == ["signature=payments_*"]
    assert (document["summary"]["update"], document["summary"]["rebind"], document["summary"]["create"]) == (1, 1, 0)


def test_target_by_group_and_its_note(cli: Cli, files: tuple[str, str]) -> None:
    manifest, snapshot = files
    result = cli("plan", manifest, "--snapshot", snapshot, "--target", f"group={ORDERS}", "--compact", env=DEMO_SECRETS)
    assert result.out.splitlines()[:3] == [
        f"+ bind      {BINDING}.{api_id(3)} orders_create -> orders_backend",
        f"- unbind    {BINDING}.{api_id(4)} orders_delete from orders_backend",
        f"~ rebind    {BINDING}.{api_id(2)} orders_get: payments_backend -> orders_backend",
    ]
    assert f"Only changes to group={ORDERS} are shown (--target); other changes may be pending." in result.out


@pytest.mark.parametrize(("target", "error"), [
    ("signature=orders_bakend", "--target signature=orders_bakend: no signature of the manifests or of the plan "
                                "matches"),
    ("api=orders_list", "--target 'api=orders_list': expected signature=NAME or group=ID"),
])
def test_a_target_that_matches_nothing_is_an_error(cli: Cli, files: tuple[str, str], target: str, error: str) -> None:
    manifest, snapshot = files
    result = cli("plan", manifest, "--snapshot", snapshot, "--target", target, env=DEMO_SECRETS)
    assert (result.code, result.out, result.err) == (1, "", f"Error: {error}\n")


def _unbinds(count: int) -> Plan:
    changes = tuple(
        BindingChange(action=Action.UNBIND, resource=Resource.BINDING, address=f"{BINDING}.{api_id(n)}",
                      region="cn-hangzhou",
                      before=BindingValues(group=ORDERS, stage="RELEASE", api_id=api_id(n), api_name=f"api_{n:05d}",
                                           signature="orders_backend"), after=None)
        for n in range(count))
    return Plan(regions=("cn-hangzhou",), secrets_checked=True, changes=changes, summary=summarize(changes, 0))


def test_markdown_of_a_huge_plan_fits_one_comment_and_says_what_it_left_out() -> None:
    text = render_markdown(_unbinds(5000))
    assert len(text) < GITHUB_COMMENT_LIMIT - 1000  # room for the workflow's marker
    assert "<details>" not in text
    rows = [line for line in text.splitlines() if line.startswith("| **unbind**")]
    assert 100 < len(rows) < 5000
    assert text.endswith(f"> The plan is too long for one comment: the full text plan is left out and {len(rows)} of "
                         "5000 changes are listed above. Run `reconciler plan` (or `-o json`) to see all of it.\n")
    # Still first: what the plan takes away, capped.
    lines = text.splitlines()
    assert lines[4:7] == ["> [!CAUTION]", "> **This plan unbinds 5000 API(s):**",
                          f"> - unbind `api_00000 ({api_id(0)})` from `orders_backend` (group `{ORDERS}`, RELEASE, "
                          "cn-hangzhou)"]
    assert "> - ... and 4980 more, listed below" in lines


def test_markdown_drops_the_folded_plan_first() -> None:
    plan = _unbinds(200)
    full = render_markdown(plan, max_chars=10**6)
    assert "<details><summary>Full plan</summary>" in full
    table_only = render_markdown(plan, max_chars=full.index("<details>") + 400)
    assert "<details>" not in table_only
    assert sum(line.startswith("| **unbind**") for line in table_only.splitlines()) == 200
    assert "the full text plan is left out and every change is listed above." in table_only


# ------------------------------------------------------------------------------------------ annotations

BROKEN = "region: cn-hangzhou\nsignatures:\n  - name: orders_backend\n    key: k\n    secret: ${env:X}\n"


def test_github_annotation_for_a_validation_error(cli: Cli, write: Callable[[str, str], Path], tmp_path: Path) -> None:
    manifest = write("manifests/m.yaml", BROKEN)
    plain = cli("validate", str(manifest))
    assert (plain.code, plain.out) == (1, "")
    reason = "key 'k' breaks the vendor's rule: 6-20 characters: letters, digits or '_', starting with a letter"
    assert plain.err == f"Error: {manifest}:4: signatures[0].key: {reason}\n"
    annotated = cli("validate", str(manifest), env={"GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(tmp_path)})
    assert annotated.err == plain.err  # the one line, as always
    assert annotated.out == f"::error file=manifests/m.yaml,line=4,title=reconciler%3A signatures[0].key::{reason}\n"


def test_no_annotation_for_errors_without_a_file(cli: Cli, files: tuple[str, str]) -> None:
    manifest, _ = files
    result = cli("plan", manifest, "--snapshot", "missing.json", env={**DEMO_SECRETS, "GITHUB_ACTIONS": "true"})
    assert (result.code, result.out) == (1, "")


# ------------------------------------------------------------------------------------------ several regions

SHANGHAI_STATE = """\
region: cn-shanghai
signatures:
  - {name: web_backend, key: webKey01, secret: webSecret01}
groups:
  - id: 7e57c0de7e57c0de7e57c0de7e57c0de
    name: web
    apis: [{id: 7e57c0de7e57c0de7e57c0de7e57c001, name: web_home}]
    bindings: {RELEASE: {web_home: web_backend}}
"""
SHANGHAI = """\
region: cn-shanghai
signatures:
  - {name: web_backend, key: webKey01, secret: "${env:WEB_SECRET}"}
bindings:
  - {group: 7e57c0de7e57c0de7e57c0de7e57c0de, stage: RELEASE, signature: web_backend, apis: [web_home]}
"""


@pytest.fixture
def two_regions(write: Callable[[str, str], Path]) -> tuple[str, str, str]:
    """Manifests of the demo region (changes pending) and of cn-shanghai (matching), with a state file each."""
    folder = write("regions/shanghai.yaml", SHANGHAI).parent
    write("regions/hangzhou.yaml", (ROOT / "manifests" / "hangzhou.yaml").read_text())
    return str(folder), str(STATE), str(write("shanghai-state.yaml", SHANGHAI_STATE))


def test_several_regions_in_one_run_grouped_by_region(cli: Cli, two_regions: tuple[str, str, str]) -> None:
    folder, hangzhou, shanghai = two_regions
    env = {"WEB_SECRET": "webSecret01"}
    result = cli("plan", folder, "--env-file", DEMO_ENV, "--emulator", hangzhou, "--emulator", shanghai,
                 "-o", "json", "--detailed-exitcode", env=env)
    assert result.code == 2  # the worst of the two: changes in cn-hangzhou, none in cn-shanghai
    document = json.loads(result.out)
    assert document["regions"] == ["cn-hangzhou", "cn-shanghai"]
    assert document["summary"]["no_op"] == 9  # cn-hangzhou's 7 matches, cn-shanghai's signature and binding

    env["WEB_SECRET"] = "webSecret02"  # now cn-shanghai drifts too
    text = cli("plan", folder, "--env-file", DEMO_ENV, "--emulator", hangzhou, "--emulator", shanghai, "--no-color",
               env=env).out.splitlines()
    assert text.index("Region cn-hangzhou:") < text.index("Region cn-shanghai:")
    assert text[text.index("Region cn-shanghai:") + 2:][:4] == [
        '  # signature "web_backend" will be updated in place  (' + folder + '/shanghai.yaml:3)',
        '  ~ signature "web_backend" {',
        "      ~ secret = (sensitive value changed)",
        "    }",
    ]
    markdown = cli("plan", folder, "--env-file", DEMO_ENV, "--emulator", hangzhou, "--emulator", shanghai,
                   "-o", "markdown", env=env).out
    assert markdown.index("**Region cn-hangzhou**") < markdown.index("**Region cn-shanghai**")


def test_an_error_in_any_region_fails_the_run(cli: Cli, two_regions: tuple[str, str, str],
                                              write: Callable[[str, str], Path]) -> None:
    folder, hangzhou, shanghai = two_regions
    write("regions/shanghai.yaml", SHANGHAI.replace("apis: [web_home]", "apis: [web_away]"))
    result = cli("plan", folder, "--env-file", DEMO_ENV, "--emulator", hangzhou, "--emulator", shanghai,
                 "--detailed-exitcode", env={"WEB_SECRET": "webSecret01"})
    assert (result.code, result.out) == (1, "")
    assert result.err == (f"Error: {folder}/shanghai.yaml:5: apis: API 'web_away' does not exist in group "
                          "7e57c0de7e57c0de7e57c0de7e57c0de\n")


def test_one_emulator_state_per_region(cli: Cli, two_regions: tuple[str, str, str]) -> None:
    folder, hangzhou, _ = two_regions
    missing = cli("plan", folder, "--skip-secrets", "--emulator", hangzhou)
    assert missing.err == f"Error: the emulator state {hangzhou} is region cn-hangzhou; the manifests also declare " \
                          "cn-shanghai\n"
    twice = cli("plan", folder, "--skip-secrets", "--emulator", hangzhou, "--emulator", hangzhou)
    assert twice.err == (f"Error: the emulator states {hangzhou} and {hangzhou} are both region cn-hangzhou; give "
                         "one state file per region\n")


# ------------------------------------------------------------------------------------------ completion, editors


def _complete(prewarmed: Prewarmed, words: str, cword: int) -> list[str]:
    env = {**os.environ, "_RECONCILER_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    done = prewarmed.run([], env=env, cwd=Path.cwd())
    assert done.returncode == 0, done.stderr
    return [line.split(",", 1)[1] for line in done.stdout.splitlines()]


def test_shell_completion_by_clicks_mechanism(prewarmed: Prewarmed) -> None:
    env = {**os.environ, "_RECONCILER_COMPLETE": "bash_source"}
    script = prewarmed.run([], env=env, cwd=Path.cwd())
    assert script.returncode == 0, script.stderr
    assert "complete -o nosort -F _reconciler_completion reconciler" in script.stdout
    assert _complete(prewarmed, "reconciler pl", 1) == ["plan"]
    assert _complete(prewarmed, "reconciler plan -o ", 3) == ["text", "json", "markdown"]
    assert "--base-ref" in _complete(prewarmed, "reconciler plan --base", 2)


def test_editor_support_schema_id_and_the_language_server_comment() -> None:
    committed = json.loads((ROOT / "manifests" / "schema.json").read_text())
    assert committed["$id"] == manifest_json_schema()["$id"]
    assert committed["$id"].startswith("https://")
    exported = sorted((ROOT / "examples" / "export").rglob("*.yaml"))
    assert exported
    for path in [ROOT / "manifests" / "hangzhou.yaml", *exported]:
        first = path.read_text().splitlines()[0]
        assert first.startswith("# yaml-language-server: $schema="), path
        assert yaml.safe_load(path.read_text())["region"] == "cn-hangzhou"
