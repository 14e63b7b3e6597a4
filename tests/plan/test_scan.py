"""`reconciler scan` and the signature policy: the README demo, exit codes, the JSON format and its schema,
the drift-issue markdown (rendered with GitHub's renderer), inert outside text, manifest errors, the policy
in `plan`, and the request count."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import cmarkgfm
import jsonschema
import pytest

from benchmarks.scan_benchmark import minimum_scan_requests, write_scan_tenant
from benchmarks.workload import Size
from reconciler.manifest import load_desired_state
from reconciler.render.scan import MARKDOWN_MAX_CHARS, render_markdown, render_text
from reconciler.scan import ApiRef, Coverage, RegionScan, Scan, ScanSummary, build_scan, scan_json_schema
from reconciler.snapshot import BindingScope, LiveApi, LiveGroup, LiveSignature, Snapshot
from tests.support.cli import CliResult
from tests.support.emulator_actions import record_actions
from tests.support.paths import ROOT

STATE = str(ROOT / "examples" / "emulator-state.yaml")
SHANGHAI = str(ROOT / "examples" / "emulator-state-shanghai.yaml")
DEMO_ENV = str(ROOT / "examples" / "demo.env")
MANIFESTS = str(ROOT / "manifests")
ORDERS = "0009db9c828549768a200320714b8930"
INTERNAL = "7c2e4a6b8d0f1e3a5c7b9d1f3e5a7c90"

Cli = Callable[..., CliResult]


def readme_block(after: str) -> str:
    """The first fenced block after the line `after` in the README."""
    text = (ROOT / "README.md").read_text()
    found = re.search(re.escape(after) + r".*?\n```[a-z]*\n(.*?)\n```", text, re.S)
    assert found is not None, f"README lost the block after {after!r}"
    return found.group(1)


def test_the_readme_scan_demo_finds_the_unsigned_api_and_the_key_in_the_undeclared_region(cli: Cli) -> None:
    command = readme_block("Run the scan demo:")
    assert command == ("reconciler scan manifests/ --emulator examples/emulator-state.yaml "
                       "--emulator examples/emulator-state-shanghai.yaml --detailed-exitcode")
    result = cli("scan", MANIFESTS, "--emulator", STATE, "--emulator", SHANGHAI, "--detailed-exitcode")
    assert (result.code, result.err) == (2, "")
    assert result.out == readme_block("The scan prints, and exits 2:") + "\n"
    lines = result.out.splitlines()
    assert "Region cn-shanghai (in no manifest):" in lines
    assert "    ? partner_sh_key (fa034846ab3ccba857f160e4ed45c185)" in lines
    assert (f"    ! reports_export (7c2e4a6b8d0f1e3a5c7b9d1f3e5a7c91) in group {INTERNAL} (internal), "
            "stage RELEASE") in lines
    assert f"    {INTERNAL} (internal)  RELEASE*       0          1      0.0%" in lines
    assert lines[-1] == ("Scan: 2 region(s) (1 in no manifest), 2 signature(s) in no manifest, 9 of 13 published "
                         "APIs signed (69.2%), 3 policy violation(s).")


def test_scan_exits_0_without_detailed_exitcode_and_0_when_nothing_is_found(cli: Cli, tmp_path: Path) -> None:
    assert cli("scan", MANIFESTS, "--emulator", STATE, "--emulator", SHANGHAI, "-q").code == 0
    state = tmp_path / "clean.yaml"
    state.write_text("region: cn-hangzhou\nsignatures:\n  - {name: only_key, key: onlyKey01, secret: onlySecret01}\n"
                     "groups:\n  - name: shop\n    apis: [{name: cart, deployed: [RELEASE]}]\n"
                     "    bindings: {RELEASE: {cart: only_key}}\n")
    manifest = tmp_path / "m.yaml"
    manifest.write_text("region: cn-hangzhou\nrequire_signature: [RELEASE]\nsignatures:\n"
                        "  - {name: only_key, key: onlyKey01, secret: '${env:ONLY}'}\n")
    result = cli("scan", str(manifest), "--emulator", str(state), "--detailed-exitcode")
    assert (result.code, result.err) == (0, "")
    assert result.out.splitlines()[-1] == ("Scan: 1 region(s) (0 in no manifest), 0 signature(s) in no manifest, "
                                           "1 of 1 published APIs signed (100.0%), 0 policy violation(s).")


def test_scan_json_validates_against_the_committed_schema(cli: Cli, tmp_path: Path) -> None:
    result = cli("scan", MANIFESTS, "--emulator", STATE, "--emulator", SHANGHAI, "-o", "json")
    document = json.loads(result.out)
    # The drift job's one read: markdown for the issue, JSON for the artifact.
    saved = cli("scan", MANIFESTS, "--emulator", STATE, "--emulator", SHANGHAI, "-o", "markdown",
                "--out", str(tmp_path / "scan.md"), "--save-json", str(tmp_path / "scan.json"), "-q")
    assert (saved.code, saved.out) == (0, "")
    assert json.loads((tmp_path / "scan.json").read_text())["summary"] == document["summary"]
    assert (tmp_path / "scan.md").read_text().startswith("### reconciler scan\n")
    committed = json.loads((ROOT / "docs" / "scan.schema.json").read_text())
    assert committed == scan_json_schema() == json.loads(cli("schema", "--scan").out)
    jsonschema.validate(document, committed)
    assert document["format_version"] == "1"
    assert document["summary"] == {"regions": 2, "undeclared_regions": 1, "unmanaged_signatures": 2,
                                   "published": 13, "signed": 9, "percent": 69.2, "violations": 3}
    assert [v["address"] for v in document["violations"]] == [
        f"policy.cn-hangzhou.{ORDERS}.RELEASE.46fbb52840d146f186e38e8e70fc8c92",
        "policy.cn-hangzhou.5d1f3e0a7b8c4d2e9f6a1b3c5d7e9f01.RELEASE.9a7e2c4b6d8f0a1c3e5b7d9f1a3c5e72",
        f"policy.cn-hangzhou.{INTERNAL}.RELEASE.7c2e4a6b8d0f1e3a5c7b9d1f3e5a7c91"]
    assert {v["source"] for v in document["violations"]} == {f"{MANIFESTS}/policy.yaml:7"}
    [shanghai] = [r for r in document["regions"] if r["region"] == "cn-shanghai"]
    assert (shanghai["declared"], [s["name"] for s in shanghai["unmanaged_signatures"]]) == (False, ["partner_sh_key"])


def test_scan_markdown_is_a_coverage_table_per_region_and_stage_with_unsigned_apis_first(cli: Cli) -> None:
    result = cli("scan", MANIFESTS, "--emulator", STATE, "--emulator", SHANGHAI, "-o", "markdown")
    text = result.out
    assert text.index("required by the signature policy") < text.index("Coverage in RELEASE")
    html = cmarkgfm.github_flavored_markdown_to_html(text)
    assert "<h4>Region <code>cn-shanghai</code> (in no manifest)</h4>" in html
    assert "<td><code>reports_export</code></td>" in html
    assert "<td><code>internal</code></td>\n<td align=\"right\">0</td>\n<td align=\"right\">1</td>" in html
    assert "<li><code>partner_sh_key</code> (<code>fa034846ab3ccba857f160e4ed45c185</code>)</li>" in html


HOSTILE = "x\x1b[2J`@org/team <img src=x> [a](http://e) \u202e\n/approve"


def hostile_scan() -> Scan:
    snapshot = Snapshot(
        region="cn-hangzhou", signatures=(LiveSignature(id="s" * 32, name=HOSTILE, key="k"),),
        groups=(LiveGroup(id="a" * 32, name=HOSTILE,
                          apis=(LiveApi(id="b" * 32, name=HOSTILE, deployed=("RELEASE",)),)),),
        scopes=(BindingScope(group="a" * 32, stage="RELEASE"),))
    desired = load_desired_state([], env=None)
    return build_scan(desired, {"cn-hangzhou": snapshot})


def test_outside_text_stays_inert_in_text_and_markdown() -> None:
    scan = hostile_scan()
    text = render_text(scan)
    assert "\x1b" not in text and "\u202e" not in text
    assert "x\\x1b[2J" in text and "\\u202e\\n/approve" in text
    markdown = render_markdown(scan)
    assert not any(line.startswith("/") for line in markdown.splitlines())
    html = cmarkgfm.github_flavored_markdown_to_html(markdown)
    assert "<img" not in html and "<a " not in html and "\x1b" not in html
    assert html.count("&lt;img src=x&gt;") == 4  # signature, API name, group name in two tables: all in code


def test_markdown_stays_under_the_comment_limit_and_says_what_it_left_out() -> None:
    rows = tuple(Coverage(group=f"{g:032x}", group_name=f"group{g}", stage="RELEASE", published=100, signed=0,
                          percent=0.0, required=False,
                          unsigned=tuple(ApiRef(api_id=f"{g:016x}{a:016x}", api_name=f"api_{g}_{a}")
                                         for a in range(20)))
                 for g in range(400))
    region = RegionScan(region="cn-hangzhou", declared=True, signatures=0, unmanaged_signatures=(), groups=400,
                        published=40_000, signed=0, coverage=rows)
    scan = Scan(regions=(region,), violations=(), summary=ScanSummary(
        regions=1, undeclared_regions=0, unmanaged_signatures=0, published=40_000, signed=0, percent=0.0,
        violations=0))
    markdown = render_markdown(scan)
    assert len(markdown) <= MARKDOWN_MAX_CHARS
    assert "row(s) are left out" in markdown
    assert "Coverage in RELEASE" not in markdown  # coverage rows go first, the unsigned APIs stay
    assert "| `api_0_0` |" in markdown


def test_policy_errors_name_file_line_and_field(cli: Cli, tmp_path: Path) -> None:
    def error(text: str, other: str | None = None) -> str:
        folder = tmp_path / str(len(list(tmp_path.iterdir())))
        folder.mkdir()
        (folder / "a.yaml").write_text(text)
        if other is not None:
            (folder / "b.yaml").write_text(other)
        result = cli("validate", str(folder), "--skip-secrets")
        assert result.code == 1
        return result.err.strip().replace(str(folder) + "/", "")

    assert error("region: cn-hangzhou\nrequire_signature: [RELEASE, LIVE]\n") == (
        "Error: a.yaml:2: require_signature[1]: must be RELEASE or TEST (got 'LIVE')")
    assert error("region: cn-hangzhou\nrequire_signature:\n  - TEST\n  - TEST\n") == (
        "Error: a.yaml:4: require_signature[1]: stage TEST is listed twice")
    assert error("region: cn-hangzhou\nrequire_signature: [RELEASE, PRE]\n") == (
        "Error: a.yaml:2: require_signature[1]: stage PRE cannot be required: the vendor documents reading "
        "(DescribeApiSignatures) and removing (RemoveSignatureApis) bindings only for RELEASE and TEST")
    assert error("region: cn-hangzhou\nrequire_signature_by_group:\n  orders: [RELEASE]\n") == (
        "Error: a.yaml:3: require_signature_by_group: a key must be an API group id (32 lowercase hex characters)")
    assert error("region: cn-hangzhou\nrequire_signature: [RELEASE]\n",
                 "region: cn-hangzhou\nrequire_signature: [TEST]\n") == (
        "Error: b.yaml:2: require_signature: [TEST] conflicts with [RELEASE] in a.yaml:2 (same region)")
    assert error(f"region: cn-hangzhou\nrequire_signature_by_group:\n  {ORDERS}: []\n",
                 f"region: cn-hangzhou\nrequire_signature_by_group:\n  {ORDERS}: [TEST]\n") == (
        f"Error: b.yaml:3: require_signature_by_group.{ORDERS}: group {ORDERS} is already given a policy at "
        "a.yaml:3")


def test_plan_reports_a_published_api_its_changes_leave_unsigned_and_exits_2(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "manifests"
    folder.mkdir()
    demo = (ROOT / "manifests" / "hangzhou.yaml").read_text()
    # The pull request drops orders_update (published in RELEASE) from the orders binding: an unbind.
    (folder / "hangzhou.yaml").write_text(demo.replace(", 46fbb52840d146f186e38e8e70fc8c94]", "]"))
    (folder / "policy.yaml").write_text((ROOT / "manifests" / "policy.yaml").read_text())
    result = cli("plan", str(folder), "--emulator", STATE, "--env-file", DEMO_ENV, "--detailed-exitcode")
    assert result.code == 2
    compact = cli("plan", str(folder), "--emulator", STATE, "--env-file", DEMO_ENV, "--compact").out.splitlines()
    assert f"! violation policy.cn-hangzhou.{ORDERS}.RELEASE.46fbb52840d146f186e38e8e70fc8c94" in compact
    # Judged on the whole plan: a --target view that leaves the orders group out still reports it.
    targeted = cli("plan", str(folder), "--emulator", STATE, "--env-file", DEMO_ENV, "--detailed-exitcode",
                   "--target", "signature=inventory_backend")
    assert targeted.code == 2 and "  ! orders_update (46fbb52840d146f186e38e8e70fc8c94)" in targeted.out
    lines = result.out.splitlines()
    assert lines[-6:] == [
        "Signature policy violations (reported, never applied):",
        f"  ! orders_update (46fbb52840d146f186e38e8e70fc8c94) in group {ORDERS}, stage RELEASE: published, no "
        f"backend signature  ({folder}/policy.yaml:7)",
        "",
        "Signature policy: 1 published API(s) without a backend signature in a required stage.",
        "",
        "Plan: 1 to create, 1 to update, 0 to delete, 2 to bind, 2 to unbind, 1 to rebind, 1 unmanaged.",
    ]
    document = json.loads(cli("plan", str(folder), "--emulator", STATE, "--env-file", DEMO_ENV, "-o", "json").out)
    assert [v["api_name"] for v in document["violations"]] == ["orders_update"]
    markdown = cli("plan", str(folder), "--emulator", STATE, "--env-file", DEMO_ENV, "-o", "markdown").out
    assert "> [!IMPORTANT]" in markdown and "`orders_update`" in markdown


def test_plan_with_only_a_violation_exits_2_and_applies_nothing_for_it(cli: Cli, tmp_path: Path) -> None:
    state = tmp_path / "state.yaml"
    state.write_text("region: cn-hangzhou\nsignatures:\n  - {name: only_key, key: onlyKey01, secret: onlySecret01}\n"
                     f"groups:\n  - name: shop\n    id: {ORDERS}\n"
                     "    apis: [{name: cart, deployed: [RELEASE]}, {name: cart_put, deployed: [RELEASE]}]\n"
                     "    bindings: {RELEASE: {cart: only_key}}\n")
    manifest = tmp_path / "m.yaml"
    manifest.write_text("region: cn-hangzhou\nrequire_signature: [RELEASE]\nsignatures:\n"
                        "  - {name: only_key, key: onlyKey01, secret: onlySecret01}\n"
                        f"bindings:\n  - {{group: {ORDERS}, stage: RELEASE, signature: only_key, apis: [cart]}}\n")
    result = cli("plan", str(manifest), "--emulator", str(state), "--detailed-exitcode")
    assert result.code == 2
    assert result.out.splitlines()[-1] == "No changes. Live state matches the manifests."
    applied = cli("apply", str(manifest), "--emulator", str(state), "--auto-approve")
    assert (applied.code, applied.out) == (0, "No changes. Live state matches the manifests.\n")


def test_scan_of_a_small_tenant_makes_exactly_the_minimum_requests(cli: Cli, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    size = Size(groups=60, apis=100, signatures=150)
    state = write_scan_tenant(size, tmp_path)
    actions = record_actions(monkeypatch)
    result = cli("scan", "--emulator", str(state), "-q", "-o", "json")
    assert result.code == 0, result.err
    # 1 DescribeRegions + 2 signature pages read twice + 2 group pages read twice + 60 API lists + 90 scopes
    # (every group published in RELEASE, every other one in TEST too).
    assert len(actions) == minimum_scan_requests(size) == 1 + 4 + 4 + 60 + 90
    assert actions.count("DescribeApiSignatures") == 90
    assert json.loads(result.out)["summary"]["published"] == 9_000


def test_scan_through_a_standalone_emulator_reads_its_one_region(cli: Cli, tmp_path: Path) -> None:
    from reconciler.emulator.server import running_emulator
    with running_emulator(Path(SHANGHAI)) as emulator:
        result = cli("scan", "--endpoint", emulator.url, "-q", "-o", "json",
                     env={"ALIBABA_CLOUD_ACCESS_KEY_ID": emulator.access_key_id,
                          "ALIBABA_CLOUD_ACCESS_KEY_SECRET": emulator.access_key_secret})
    assert result.code == 0, result.err
    document = json.loads(result.out)
    assert [(r["region"], r["declared"]) for r in document["regions"]] == [("cn-shanghai", False)]


def test_an_api_published_only_in_pre_is_not_counted_and_pre_bindings_are_not_read(
        cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "state.yaml"
    state.write_text("region: cn-hangzhou\ngroups:\n  - name: shop\n"
                     "    apis: [{name: cart, deployed: [PRE]}, {name: cart_put, deployed: [TEST, PRE]}]\n")
    actions = record_actions(monkeypatch)
    result = cli("scan", "--emulator", str(state), "-q", "-o", "json")
    document = json.loads(result.out)
    [row] = document["regions"][0]["coverage"]
    assert (row["stage"], row["published"], [a["api_name"] for a in row["unsigned"]]) == ("TEST", 1, ["cart_put"])
    assert actions.count("DescribeApiSignatures") == 1


@pytest.mark.parametrize(("regions", "expected"), [
    (("cn-hangzhou", "cn-shanghai"), "Error: --endpoint serves one region; the account has cn-hangzhou, cn-shanghai: "
                                     "scan without --endpoint\n"),
    (("cn-hangzhou", "x\x1b[2J\nEvil"), "Error: DescribeRegions listed 'x\\x1b[2J\\nEvil', which is not a region id\n"),
], ids=["several-regions", "hostile-region-id"])
def test_scan_fails_in_one_inert_line_on_what_it_cannot_read(cli: Cli, regions: tuple[str, ...], expected: str) -> None:
    from reconciler.emulator.server import running_emulator
    from reconciler.emulator.state import EmulatorState
    state = EmulatorState.from_file(Path(STATE))
    state.account_regions = regions
    with running_emulator(state) as emulator:
        result = cli("scan", "--endpoint", emulator.url, "-q",
                     env={"ALIBABA_CLOUD_ACCESS_KEY_ID": emulator.access_key_id,
                          "ALIBABA_CLOUD_ACCESS_KEY_SECRET": emulator.access_key_secret})
    assert (result.code, result.out, result.err) == (1, "", expected)


def test_a_hostile_live_api_name_stays_inert_in_the_plan_s_policy_section(cli: Cli, tmp_path: Path) -> None:
    name = "x`@org/team<img_src=x>[a](http://e)"
    state = tmp_path / "state.yaml"
    state.write_text("region: cn-hangzhou\nsignatures:\n  - {name: only_key, key: onlyKey01, secret: onlySecret01}\n"
                     f"groups:\n  - name: shop\n    id: {ORDERS}\n"
                     f"    apis: [{{name: cart, deployed: [RELEASE]}}, {{name: '{name}', deployed: [RELEASE]}}]\n")
    manifest = tmp_path / "m.yaml"
    manifest.write_text("region: cn-hangzhou\nrequire_signature: [RELEASE]\nsignatures:\n"
                        "  - {name: only_key, key: onlyKey01, secret: onlySecret01}\n"
                        f"bindings:\n  - {{group: {ORDERS}, stage: RELEASE, signature: only_key, apis: [cart]}}\n")
    result = cli("plan", str(manifest), "--emulator", str(state), "-o", "markdown", "--detailed-exitcode")
    assert result.code == 2
    html = cmarkgfm.github_flavored_markdown_to_html(result.out)
    assert "<img" not in html and "<a " not in html
    assert "<code>x`@org/team&lt;img_src=x&gt;[a](http://e)</code>" in html


def test_a_snapshot_keeps_published_stages_only_where_they_were_read(cli: Cli, tmp_path: Path) -> None:
    cli("plan", MANIFESTS, "--emulator", STATE, "--env-file", DEMO_ENV, "--save-snapshot", str(tmp_path / "s.json"))
    [snapshot] = json.loads((tmp_path / "s.json").read_text())
    apis = {a["name"]: a.get("deployed") for g in snapshot["groups"] for a in g["apis"]}
    # The demo's policy makes plan read them; an API published nowhere has no key, as before policies.
    assert (apis["orders_list"], apis["orders_delete"]) == (["RELEASE", "TEST"], None)
    # Read back offline, the snapshot lets plan judge the policy: a change that unbinds a published API is one.
    folder = tmp_path / "manifests"
    folder.mkdir()
    demo = (ROOT / "manifests" / "hangzhou.yaml").read_text()
    (folder / "hangzhou.yaml").write_text(demo.replace(", 46fbb52840d146f186e38e8e70fc8c94]", "]"))
    (folder / "policy.yaml").write_text((ROOT / "manifests" / "policy.yaml").read_text())
    offline = cli("plan", str(folder), "--snapshot", str(tmp_path / "s.json"), "--env-file", DEMO_ENV, "-o", "json")
    assert [v["api_name"] for v in json.loads(offline.out)["violations"]] == ["orders_update"]
