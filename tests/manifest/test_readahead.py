"""Manifests parsed ahead in a child process load exactly as parsed in order, and leave no process behind.

The parsing ahead forks only in a process without other threads, and a pytest-xdist worker has one (its
I/O thread): each case runs in a Python process of its own, which loads the same manifests both ways.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reconciler.errors import ManifestError, ManifestErrors
from tests.support.paths import ROOT

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="manifests are parsed ahead on Linux only")

# Loads the manifests of argv[1:] with and without parsing ahead; prints what each gave, whether a child was
# forked, and the children of this process left afterwards.
SCRIPT = r"""
import json, os, sys, threading
from pathlib import Path
from reconciler.errors import ManifestError, ManifestErrors
from reconciler.manifest import load_desired_state
from reconciler.readahead import read_ahead

paths = [Path(p) for p in sys.argv[2:]]

def children():
    with open(f"/proc/self/task/{os.getpid()}/children") as listing:
        return listing.read().split()

def loaded(**kwargs):
    try:
        state = load_desired_state(paths, env=None, **kwargs)
    except (ManifestError, ManifestErrors) as exc:
        return {"errors": [str(e) for e in (exc.errors if isinstance(exc, ManifestErrors) else [exc])]}
    region = state.regions["cn-hangzhou"]
    bindings = region.bindings
    return {"bindings": [list(b[:5]) for b in bindings],
            "lines": [str(b.location) for b in (*bindings[:30], *bindings[-30:])],
            "signatures": {n: [s.key, str(s.location)] for n, s in region.signatures.items()},
            "files": region.files, "warnings": [str(w) for w in state.warnings]}

case = sys.argv[1]
if case == "load":
    with read_ahead(paths) as ahead:
        forked = ahead.forked
        ahead.finish()
        left_by_finish = children()
        ahead_load = loaded(ahead=ahead.outcomes)
    print(json.dumps({"forked": forked, "left_by_finish": left_by_finish, "ahead": ahead_load, "here": loaded()}))
elif case == "interrupted":
    forked = None
    try:
        with read_ahead(paths) as ahead:
            forked = ahead.forked
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    print(json.dumps({"forked": forked, "left": children()}))
elif case == "thread":
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        with read_ahead(paths) as ahead:
            forked = ahead.forked
    finally:
        stop.set()
        thread.join()
    print(json.dumps({"forked": forked}))
"""

GROUP = "0009db9c828549768a200320714b8930"


def large_manifest(number: int, entries: int = 2500) -> str:
    """A manifest of about 1 MB: `entries` binding entries of 10 API ids each."""
    lines = ["region: cn-hangzhou"]
    if number == 0:
        lines += ["signatures:", "  - name: sig_a", "    key: keyA0001", "    secret: literalSecret0001",
                  "  - name: sig_b", "    key: keyB0001", "    secret: ${env:SIG_B_SECRET}"]
    lines.append("bindings:")
    for entry in range(entries):
        apis = ", ".join(f"a{number:03x}{entry:06x}{api:02x}{'b' * 20}" for api in range(10))
        lines += [f"  - group: {GROUP}", f"    stage: {'RELEASE' if entry % 2 else 'TEST'}",
                  f"    signature: {'sig_a' if entry % 3 else 'sig_b'}", f"    apis: [{apis}]"]
    return "\n".join(lines) + "\n"


def load_both_ways(case: str, *paths: Path) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", SCRIPT, case, *map(str, paths)], capture_output=True, text=True,
                          cwd=ROOT, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    folder = tmp_path / "manifests"
    folder.mkdir()
    for number in range(4):
        (folder / f"part-{number}.yaml").write_text(large_manifest(number))
    return folder


def test_manifests_parsed_ahead_load_as_parsed_in_order(manifests: Path) -> None:
    result = load_both_ways("load", manifests)
    assert result["forked"] is True
    assert result["left_by_finish"] == []
    assert result["ahead"] == result["here"]
    assert len(result["here"]["bindings"]) == 4 * 2500 * 10
    assert result["here"]["warnings"] == [f"{manifests}/part-0.yaml:5: signatures[0].secret: literal secret; use "
                                          "${env:VARIABLE} so the secret is not kept in the repository"]


def test_broken_manifests_parsed_ahead_report_what_parsing_in_order_reports(manifests: Path) -> None:
    # A syntax error (found by the exact reading) and a field that breaks a rule, in two files.
    first = manifests / "part-1.yaml"
    first.write_text(first.read_text().replace("    stage: TEST", "    stage: [TEST", 1))
    second = manifests / "part-2.yaml"
    second.write_text(second.read_text().replace("    signature: sig_a", "    signature: 'not a name'", 1))
    result = load_both_ways("load", manifests)
    assert result["forked"] is True
    assert result["ahead"] == result["here"]
    errors = result["here"]["errors"]
    assert [e.split(":")[0].rsplit("/", 1)[1] for e in errors] == ["part-1.yaml", "part-2.yaml"]
    assert "YAML syntax error" in errors[0] and "signature name 'not a name'" in errors[1]


def test_an_api_bound_twice_across_files_parsed_ahead(manifests: Path) -> None:
    third = manifests / "part-3.yaml"
    entry = (manifests / "part-0.yaml").read_text().split("bindings:\n")[1].split("  - group:")[1]
    third.write_text(third.read_text() + "  - group:" + entry)
    result = load_both_ways("load", manifests)
    assert result["forked"] is True
    assert result["ahead"] == result["here"]
    assert len(result["here"]["errors"]) == 10 and "is already bound to" in result["here"]["errors"][0]


def test_no_child_is_left_after_an_interruption(manifests: Path) -> None:
    assert load_both_ways("interrupted", manifests) == {"forked": True, "left": []}


def test_no_child_is_forked_while_another_thread_runs(manifests: Path) -> None:
    assert load_both_ways("thread", manifests) == {"forked": False}


def test_small_manifests_are_parsed_in_order_here(tmp_path: Path) -> None:
    (tmp_path / "small.yaml").write_text(large_manifest(0, entries=100))
    result = load_both_ways("load", tmp_path)
    assert result["forked"] is False
    assert result["ahead"] == result["here"]


def test_manifest_errors_come_back_from_a_child_as_raised() -> None:
    one = ManifestError("manifests/a.yaml", 3, "bindings[0].stage", "must be RELEASE or TEST (got 'PRE')")
    several = ManifestErrors([one, ManifestError("manifests/b.yaml", None, None, "file is empty")])
    back = pickle.loads(pickle.dumps(one))
    assert (type(back), str(back), vars(back)) == (ManifestError, str(one), vars(one))
    all_back = pickle.loads(pickle.dumps(several))
    assert (type(all_back), str(all_back)) == (ManifestErrors, str(several))
    assert [vars(e) for e in all_back.errors] == [vars(e) for e in several.errors]
