"""`plan --changed-only`: a pull request's plan reads only what its change can affect, labelled as without it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest

from reconciler.render.plan import CHANGED_ONLY
from reconciler.review import plan_json_schema
from tests.support.cli import CliResult
from tests.support.emulator_actions import record_actions
from tests.support.paths import ROOT

STATE = str(ROOT / "examples" / "emulator-state.yaml")
DEMO_ENV = str(ROOT / "examples" / "demo.env")
DEMO = (ROOT / "manifests" / "hangzhou.yaml").read_text()
ORDERS_RELEASE = "apis: [orders_list, orders_get, orders_create, 46fbb52840d146f186e38e8e70fc8c94]"
ORDERS = "binding.cn-hangzhou.0009db9c828549768a200320714b8930.RELEASE"

Cli = Callable[..., CliResult]


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository whose `main` holds the demo manifests; the working tree is the pull request."""
    root = tmp_path / "repo"
    (root / "manifests").mkdir(parents=True)
    (root / "manifests" / "hangzhou.yaml").write_text(DEMO)
    for args in (("init", "-q", "-b", "main"), ("add", "."), ("commit", "-q", "-m", "base")):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=root, check=True,
                       capture_output=True)
    monkeypatch.chdir(root)
    return root


def plan(cli: Cli, *extra: str) -> CliResult:
    return cli("plan", "manifests/", "--base-ref", "main", "--emulator", STATE, "--env-file", DEMO_ENV, *extra)


def labels(result: CliResult) -> dict[str, tuple[str, str]]:
    document = json.loads(result.out)
    jsonschema.validate(document, plan_json_schema())
    return {c["address"]: (c["action"], c["label"]) for c in document["changes"]}


def test_one_binding_changed_reads_its_scope_and_group_only(cli: Cli, repo: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    (repo / "manifests" / "hangzhou.yaml").write_text(
        DEMO.replace(ORDERS_RELEASE, "apis: [orders_list, orders_get, orders_create]"))
    actions = record_actions(monkeypatch)
    result = plan(cli, "--changed-only", "-o", "json")
    assert (result.code, result.err) == (0, "")
    assert sorted(actions) == ["DescribeApiSignatures", "DescribeApis"]
    # The scope's drift keeps its label; signatures and the other scopes are not read, so not shown.
    assert labels(result) == {
        f"{ORDERS}.46fbb52840d146f186e38e8e70fc8c91": ("rebind", "drift"),
        f"{ORDERS}.46fbb52840d146f186e38e8e70fc8c92": ("bind", "drift"),
        f"{ORDERS}.46fbb52840d146f186e38e8e70fc8c93": ("unbind", "drift"),
        f"{ORDERS}.46fbb52840d146f186e38e8e70fc8c94": ("unbind", "introduced"),
    }
    assert json.loads(result.out)["changed_only"] is True


def test_the_same_change_without_the_flag_reads_everything_as_before(cli: Cli, repo: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    (repo / "manifests" / "hangzhou.yaml").write_text(
        DEMO.replace(ORDERS_RELEASE, "apis: [orders_list, orders_get, orders_create]"))
    actions = record_actions(monkeypatch)
    result = plan(cli, "-o", "json")
    assert result.code == 0
    assert sorted(set(actions)) == ["DescribeApiSignatures", "DescribeApis", "DescribeSignatures"]
    assert len(actions) > 2
    assert "changed_only" not in json.loads(result.out)
    assert len(labels(result)) == 8


def test_a_changed_key_reads_that_signature_by_name(cli: Cli, repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (repo / "manifests" / "hangzhou.yaml").write_text(DEMO.replace("paymentsKey2026", "paymentsKey2027"))
    actions = record_actions(monkeypatch)
    result = plan(cli, "--changed-only", "-o", "json")
    assert result.code == 0
    assert actions == ["DescribeSignatures"]
    assert labels(result) == {"signature.cn-hangzhou.payments_backend": ("update", "introduced")}


def test_text_and_markdown_say_that_drift_elsewhere_is_not_shown(cli: Cli, repo: Path) -> None:
    (repo / "manifests" / "hangzhou.yaml").write_text(
        DEMO.replace(ORDERS_RELEASE, "apis: [orders_list, orders_get, orders_create]"))
    text = plan(cli, "--changed-only", "--no-color")
    assert f"\n{CHANGED_ONLY}\n" in text.out
    assert "drift job" in CHANGED_ONLY
    markdown = plan(cli, "--changed-only", "-o", "markdown")
    assert f"> [!NOTE]\n> {CHANGED_ONLY}\n" in markdown.out


def test_nothing_changed_reads_nothing(cli: Cli, repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    actions = record_actions(monkeypatch)
    result = plan(cli, "--changed-only", "--detailed-exitcode")
    assert (result.code, actions) == (0, [])
    assert result.out.endswith("No changes. Live state matches the manifests.\n")


def test_a_changed_prune_reads_the_region_whole(cli: Cli, repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (repo / "manifests" / "hangzhou.yaml").write_text(DEMO.replace("prune: false", "prune: true"))
    actions = record_actions(monkeypatch)
    result = plan(cli, "--changed-only", "-o", "json")
    assert result.code == 0
    assert "DescribeSignatures" in actions
    assert labels(result)["signature.cn-hangzhou.debug_temp_key"] == ("delete", "introduced")


def test_a_changed_ignore_plans_the_region_whole_shared_files_included(cli: Cli, repo: Path) -> None:
    # hangzhou.yaml is the same on both sides (loaded once); the pull request adds an ignore pattern in a
    # file of its own, which changes how every live signature and binding of the region is reported.
    (repo / "manifests" / "ignore.yaml").write_text("region: cn-hangzhou\nignore: [debug_*]\n")
    whole = labels(plan(cli, "-o", "json"))
    assert labels(plan(cli, "--changed-only", "-o", "json")) == whole
    assert whole[f"{ORDERS}.46fbb52840d146f186e38e8e70fc8c91"] == ("rebind", "drift")


@pytest.mark.parametrize(("extra", "message"), [
    ((), "Error: --changed-only plans what differs from a base: give --base-ref REF or --base PATH\n"),
    (("--base-ref", "main", "--out-plan", "p.json"),
     "Error: --changed-only reads part of the live state; --out-plan and --save-snapshot need all of it\n"),
])
def test_refused_without_a_base_or_with_a_saved_plan(cli: Cli, repo: Path, extra: tuple[str, ...],
                                                      message: str) -> None:
    result = cli("plan", "manifests/", "--emulator", STATE, "--env-file", DEMO_ENV, "--changed-only", *extra)
    assert (result.code, result.err) == (1, message)


ORDERS_EXTRA = ("region: cn-hangzhou\nbindings:\n  - group: 0009db9c828549768a200320714b8930\n    stage: RELEASE\n"
                "    signature: orders_backend\n    apis: [46fbb52840d146f186e38e8e70fc8c94]\n")


def test_a_scope_split_over_an_unchanged_file_and_a_changed_one(cli: Cli, repo: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # The base declares the orders RELEASE scope in two files; the pull request leaves hangzhou.yaml as it
    # is (parsed once, its bindings left out of the comparison) and drops the other file's binding.
    manifests = repo / "manifests"
    (manifests / "hangzhou.yaml").write_text(
        DEMO.replace(ORDERS_RELEASE, "apis: [orders_list, orders_get, orders_create]"))
    (manifests / "orders.yaml").write_text(ORDERS_EXTRA)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qam", "split"],
                   cwd=repo, check=True, capture_output=True)
    subprocess.run(["git", "add", "orders.yaml"], cwd=manifests, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "split"],
                   cwd=repo, check=True, capture_output=True)
    (manifests / "orders.yaml").write_text("region: cn-hangzhou\n")
    actions = record_actions(monkeypatch)
    result = plan(cli, "--changed-only", "-o", "json")
    assert (result.code, result.err) == (0, "")
    assert sorted(actions) == ["DescribeApiSignatures", "DescribeApis"]
    assert labels(result) == {
        f"{ORDERS}.46fbb52840d146f186e38e8e70fc8c91": ("rebind", "drift"),
        f"{ORDERS}.46fbb52840d146f186e38e8e70fc8c92": ("bind", "drift"),
        f"{ORDERS}.46fbb52840d146f186e38e8e70fc8c93": ("unbind", "drift"),
        f"{ORDERS}.46fbb52840d146f186e38e8e70fc8c94": ("unbind", "introduced"),
    }


def test_a_base_file_the_same_as_the_pull_requests_is_parsed_once(tmp_path: Path) -> None:
    from reconciler.manifest import ParsedFiles, load_desired_state

    head, base = tmp_path / "head", tmp_path / "base"
    for folder, extra in ((head, "region: cn-hangzhou\n"), (base, ORDERS_EXTRA)):
        folder.mkdir()
        (folder / "hangzhou.yaml").write_text(DEMO.replace(ORDERS_RELEASE, "apis: [orders_list]"))
        (folder / "orders.yaml").write_text(extra)
    parsed: ParsedFiles = {}
    load_desired_state([head], env=None, parsed=parsed)
    assert sorted(name for name, _ in parsed) == ["hangzhou.yaml", "orders.yaml"]
    state = load_desired_state([base], env=None, parsed=parsed)
    # The same name and bytes: the pull request's parse is used (its lines are the same).
    assert state.regions["cn-hangzhou"].files == [str(head / "hangzhou.yaml"), str(base / "orders.yaml")]
    assert len(parsed) == 3


def test_a_scope_bound_in_two_reused_files_loads_on_both_sides(tmp_path: Path) -> None:
    """Two files that bind in one scope, loaded once for the pull request and again, reused, for the base."""
    from reconciler.manifest import ParsedFiles, load_desired_state

    head, base = tmp_path / "head", tmp_path / "base"
    for folder in (head, base):
        folder.mkdir()
        (folder / "hangzhou.yaml").write_text(DEMO.replace(ORDERS_RELEASE, "apis: [orders_list]"))
        (folder / "orders.yaml").write_text(ORDERS_EXTRA)
    parsed: ParsedFiles = {}
    states = [load_desired_state([folder], env=None, parsed=parsed) for folder in (head, base)]
    assert len(parsed) == 2
    bound = [[(b.group, b.stage, b.api) for b in state.regions["cn-hangzhou"].bindings] for state in states]
    assert bound[0] == bound[1] and len(bound[0]) == 7


def test_a_duplicate_in_a_reused_file_is_reported_as_without_reuse(tmp_path: Path) -> None:
    from reconciler.errors import ManifestError
    from reconciler.manifest import ParsedFiles, load_desired_state

    head, base = tmp_path / "head", tmp_path / "base"
    for folder, extra in ((head, "region: cn-hangzhou\n"), (base, ORDERS_EXTRA)):
        folder.mkdir()
        (folder / "a.yaml").write_text(extra)  # read first; the base's binds an API z.yaml binds too
        (folder / "hangzhou.yaml").write_text(DEMO.replace(ORDERS_RELEASE, "apis: [orders_list]"))
        (folder / "z.yaml").write_text(ORDERS_EXTRA)
    parsed: ParsedFiles = {}
    load_desired_state([head], env=None, parsed=parsed)
    with pytest.raises(ManifestError) as reused:
        load_desired_state([base], env=None, parsed=parsed)
    with pytest.raises(ManifestError) as fresh:
        load_desired_state([base], env=None)
    message = ("{}/z.yaml:6: bindings[0].apis[0]: API '46fbb52840d146f186e38e8e70fc8c94' in group "
               f"0009db9c828549768a200320714b8930 stage RELEASE is already bound to 'orders_backend' at "
               f"{base}/a.yaml:6")
    # The reused file is named by the pull request's path (the same name and bytes).
    assert (str(reused.value), str(fresh.value)) == (message.format(head), message.format(base))


def test_a_duplicate_late_in_a_reused_file_is_reported_once_as_without_reuse(tmp_path: Path) -> None:
    """The reused file's earlier scopes are taken back before it is read again, so that only the real
    duplicate is reported, not each binding against itself."""
    from reconciler.errors import ManifestError, ManifestErrors
    from reconciler.manifest import ParsedFiles, load_desired_state

    group = "0009db9c828549768a200320714b8930"
    entry = "  - group: {}\n    stage: {}\n    signature: orders_backend\n    apis: [{}]\n"
    other = "a" * 32
    reused_file = ("region: cn-hangzhou\nbindings:\n" + entry.format(other, "TEST", "other_list, other_get")
                   + entry.format(other, "RELEASE", "other_list")
                   + entry.format(group, "RELEASE", "orders_more, 46fbb52840d146f186e38e8e70fc8c94"))
    head, base = tmp_path / "head", tmp_path / "base"
    for folder, extra in ((head, "region: cn-hangzhou\n"), (base, ORDERS_EXTRA)):
        folder.mkdir()
        (folder / "a.yaml").write_text(extra)  # read first; the base's binds the API the last entry binds
        (folder / "hangzhou.yaml").write_text(DEMO.replace(ORDERS_RELEASE, "apis: [orders_list]"))
        (folder / "z.yaml").write_text(reused_file)
    parsed: ParsedFiles = {}
    load_desired_state([head], env=None, parsed=parsed)
    outcomes = []
    for reuse in (parsed, None):
        try:
            load_desired_state([base], env=None, parsed=reuse)
        except ManifestErrors as exc:
            outcomes.append([str(e).replace(str(head), str(base)) for e in exc.errors])
        except ManifestError as exc:  # one error is raised alone
            outcomes.append([str(exc).replace(str(head), str(base))])
    assert outcomes[0] == outcomes[1]
    assert len(outcomes[0]) == 1 and "z.yaml:14: bindings[2].apis[1]:" in outcomes[0][0]


# Reads the pull request of the git repository in the current folder with --base-ref main --changed-only twice:
# as `plan` does, and with another thread running, which leaves every file to be parsed in order; prints both.
READ_BOTH_WAYS = r"""
import functools, json, threading
from pathlib import Path
from reconciler import readahead
from reconciler.cli import load_manifests
from reconciler.planning import read_plan_inputs

forks = []
fork = readahead._Child.fork
readahead._Child.fork = lambda files: forks.append(len(files)) or fork(files)

def described(state, root=None):  # a base read from git is named by its temporary folder: left out
    return {name: {"signatures": sorted(region.signatures),
                   "bindings": [[*b[:5], str(b.location).replace(f"{root}/", "")] for b in region.bindings]}
            for name, region in state.regions.items()}

def read():
    paths = (Path("manifests"),)
    inputs = read_plan_inputs(functools.partial(load_manifests, paths, (), True), paths=paths, env=None,
                              base_ref="main", base_path=None, changed_only=True, saves_live_state=False)
    return {"desired": described(inputs.desired), "base": described(inputs.base.desired, inputs.base.root),
            "scope": {r: sorted(map(list, s.scopes)) for r, s in inputs.change.scope.items()}}

forked = read()
stop = threading.Event()
thread = threading.Thread(target=stop.wait)
thread.start()
try:
    in_order = read()
finally:
    stop.set()
    thread.join()
print(json.dumps({"forks": forks, "forked": forked, "in_order": in_order}))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="manifests are parsed ahead on Linux only")
def test_a_large_pull_request_parsed_ahead_narrows_as_parsed_in_order(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "manifests").mkdir(parents=True)
    group = "0009db9c828549768a200320714b8930"
    for number in range(3):  # about 1.5 MB of bindings
        entries = []
        for entry in range(1200):
            apis = ", ".join(f"a{number:03x}{entry:06x}{api:02x}" + "b" * 20 for api in range(10))
            entries.append(f"  - group: {group}\n    stage: {'RELEASE' if entry % 2 else 'TEST'}\n"
                           f"    signature: orders_backend\n    apis: [{apis}]\n")
        (root / "manifests" / f"part-{number}.yaml").write_text("region: cn-hangzhou\nbindings:\n" + "".join(entries))
    (root / "manifests" / "hangzhou.yaml").write_text(DEMO.replace(ORDERS_RELEASE, "apis: [orders_list]"))
    for args in (("init", "-q", "-b", "main"), ("add", "."), ("commit", "-q", "-m", "base")):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=root, check=True,
                       capture_output=True)
    changed = root / "manifests" / "part-1.yaml"  # one API moves from the first (TEST) entry to the second (RELEASE)
    moved = "a001000000" + "00" + "b" * 20
    changed.write_text(changed.read_text().replace(f"[{moved}, ", "[", 1).replace(
        "apis: [a001000001", f"apis: [{moved}, a001000001", 1))
    done = subprocess.run([sys.executable, "-c", READ_BOTH_WAYS], cwd=root, capture_output=True, text=True,
                          check=False, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["forks"] == [4]  # the pull request's files; the base's changed one is sent later
    assert result["forked"] == result["in_order"]
    assert result["forked"]["scope"] == {"cn-hangzhou": [[group, "RELEASE"], [group, "TEST"]]}
    assert len(result["forked"]["desired"]["cn-hangzhou"]["bindings"]) == 3 * 1200 * 10 + 3  # both scopes, whole


# The pull request's error, then (once it is fixed) the base's, each read while a child parses ahead and a
# thread reads git, then an interruption (Ctrl-C) meanwhile; prints the errors and what is left afterwards.
ERRORS_IN_ORDER = r"""
import functools, glob, json, os, tempfile, threading
from pathlib import Path
from reconciler import readahead
from reconciler.cli import load_manifests
from reconciler.errors import ReconcilerError
from reconciler.planning import read_plan_inputs

forks = []
fork = readahead._Child.fork
readahead._Child.fork = lambda files: forks.append(len(files)) or fork(files)

def error(ref, meanwhile=None):
    paths = (Path("manifests"),)
    try:
        read_plan_inputs(functools.partial(load_manifests, paths, (), True), paths=paths, env=None, base_ref=ref,
                         base_path=None, changed_only=True, saves_live_state=False, meanwhile=meanwhile)
    except ReconcilerError as exc:
        return str(exc)
    except KeyboardInterrupt:
        return "interrupted"

def interrupt(forked):
    raise KeyboardInterrupt

broken = error("no-such-ref")
Path("manifests/hangzhou.yaml").write_text(Path("manifests/hangzhou.yaml").read_text().replace("PROD", "TEST"))
errors = [broken, error("no-such-ref"), error("main", interrupt)]
# A base file too large to read: refused as read from the folder, whether or not the child parses ahead.
too_large = error("large")
stop = threading.Event()
thread = threading.Thread(target=stop.wait)
thread.start()
try:
    errors += [too_large, error("large")]
finally:
    stop.set()
    thread.join()
with open(f"/proc/self/task/{os.getpid()}/children") as children:
    print(json.dumps({"forks": forks, "errors": errors, "threads": threading.active_count(),
                      "children": children.read().split(),
                      "folders": glob.glob(os.path.join(tempfile.gettempdir(), "reconciler-base-*"))}))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="manifests are parsed ahead on Linux only")
def test_errors_and_an_interruption_while_parsing_ahead(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "manifests").mkdir(parents=True)
    apis = ", ".join(f"a{api:07x}" + "b" * 24 for api in range(40))
    # 1 MB of manifests: the same 40 APIs bound in 800 groups.
    entries = "".join(f"  - group: c{group:031x}\n    stage: TEST\n    signature: orders_backend\n    apis: [{apis}]\n"
                      for group in range(800))
    (root / "manifests" / "bulk.yaml").write_text(f"region: cn-hangzhou\nbindings:\n{entries}")
    (root / "manifests" / "hangzhou.yaml").write_text(DEMO.replace("stage: TEST", "stage: PROD"))
    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=root, check=True,
                       capture_output=True)

    git("init", "-q", "-b", "main")
    git("add", ".")
    git("commit", "-q", "-m", "base")
    git("checkout", "-q", "-b", "large")  # a base with a file too large to read
    (root / "manifests" / "large.yaml").write_text("region: cn-hangzhou\n# " + "x" * 6_000_000 + "\n")
    (root / "manifests" / "hangzhou.yaml").write_text(DEMO)
    git("add", ".")
    git("commit", "-q", "-m", "large")
    git("checkout", "-q", "main")
    (tmp_path / "tmp").mkdir()  # its own temporary folder, where the base's files are written and removed
    done = subprocess.run([sys.executable, "-c", ERRORS_IN_ORDER], cwd=root, capture_output=True, text=True,
                          check=False, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path / "tmp")})
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["forks"] == [2, 2, 2, 2]
    large = ("base large: manifests/large.yaml: file is 6000023 bytes; manifests larger than 5242880 bytes are "
             "refused")
    assert result["errors"] == ["manifests/hangzhou.yaml:25: bindings[1].stage: must be RELEASE or TEST (got 'PROD')",
                                f"--base-ref no-such-ref: no such commit in {root.resolve()} (in CI, fetch the base "
                                "branch too, e.g. actions/checkout with fetch-depth: 0)", "interrupted", large, large]
    assert (result["threads"], result["children"], result["folders"]) == (1, [], [])
