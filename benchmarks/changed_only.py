"""A pull request that changes one binding of one group: `plan --base PATH` with and without `--changed-only`.

Usage (from the repository root)::

    .venv/bin/python -m benchmarks.changed_only [--groups 1000] [--latency-ms 50] [--tree PATH ...] [--python PATH]

The tenant is the benchmark's (`workload.py`: 1,000 groups x 2 stages x 100 bindings, 500 signatures, 25
APIs to a manifest entry), served by one emulator process at 50 ms latency. The base is the manifests as
written; the pull request moves one API of group 0, stage RELEASE, from its entry to the next one (one
binding changes signature). Each plan runs once as a child process against the same emulator state:
`--base PATH` and `--base-ref` (the base committed in a git repository whose working tree is the pull
request, as in CI), each with and without `--changed-only`. Figures are the requests the emulator
counted, the process's wall and CPU time, and the labels of the changes it printed.

`--python PATH` runs the plans with another interpreter (for example one whose virtual environment holds
only the hash-locked runtime dependencies, as users install them; the dev environment's extras, such as
rich, change what httpx imports). `--tree PATH` (repeatable) runs each plan with the `reconciler`
package of that source tree (for example a `git archive` of another commit), one tree right after the
other, to compare them side by side in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.plan_benchmark import emulator, run_plan
from benchmarks.report import RESULTS, publish
from benchmarks.workload import Size, hex_id, write_tenant


def change_one_binding(base: Path, head: Path) -> str:
    """Copy `base` to `head` and move the first API of group 0's first RELEASE entry to its second entry."""
    shutil.copytree(base, head)
    manifest = head / "bindings-00000.yaml"
    text = manifest.read_text(encoding="utf-8")
    api = hex_id("api", 0, 0)
    moved = text.replace(f"apis: [{api}, ", "apis: [", 1)
    second = hex_id("api", 0, 25)
    moved = moved.replace(f"apis: [{second}, ", f"apis: [{api}, {second}, ", 1)
    assert moved != text and moved.count(api) == text.count(api), "the workload's layout changed"
    manifest.write_text(moved, encoding="utf-8")
    return api


def git_checkout(base: Path, head: Path, repository: Path) -> Path:
    """A git repository whose last commit holds `base` and whose working tree holds `head`; its manifest folder."""
    manifests = repository / "manifests"
    shutil.copytree(base, manifests)
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "base"]):
        subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com", *args],
                       cwd=repository, check=True, capture_output=True)
    shutil.rmtree(manifests)
    shutil.copytree(head, manifests)
    return manifests


def labels(plan_file: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for change in json.loads(plan_file.read_text(encoding="utf-8"))["changes"]:
        counts[change["label"]] = counts.get(change["label"], 0) + 1
    return counts


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    size = Size(groups=args.groups)
    report: dict[str, Any] = {"size": size.describe(), "latency_ms": args.latency_ms, "cpus": os.cpu_count(),
                              "concurrency": args.concurrency, "python": args.python, "runs": {}}
    with tempfile.TemporaryDirectory() as scratch:
        state, base, env = write_tenant(size, Path(scratch) / "tenant")
        head = Path(scratch) / "head"
        report["moved_api"] = change_one_binding(base, head)
        checkout = git_checkout(base, head, Path(scratch) / "repository")
        variants = (("--base", head, ("--base", str(base))),
                    ("--base --changed-only", head, ("--base", str(base), "--changed-only")),
                    ("--base-ref", checkout, ("--base-ref", "main")),
                    ("--base-ref --changed-only", checkout, ("--base-ref", "main", "--changed-only")))
        trees = args.tree or [Path.cwd()]
        with emulator(state, args.latency_ms) as server:
            for name, manifests, extra in variants:
                for tree in trees:
                    out = Path(scratch) / "plan.json"
                    with working_folder(tree):  # `python -m reconciler` imports the package of its folder first
                        run = run_plan(manifests, env, server, args.concurrency,
                                       ("-o", "json", "--out", str(out), *extra), args.python)
                    shown = name if len(trees) == 1 else f"{name} [{tree}]"
                    report["runs"][shown] = {"requests": run.requests, "process_seconds": run.process_seconds,
                                             "cpu_seconds": run.cpu_seconds, "fetch_seconds": run.fetch_seconds,
                                             "labels": labels(out)}
    return report


@contextmanager
def working_folder(folder: Path) -> Iterator[None]:
    before = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def table(report: dict[str, Any]) -> str:
    width = max(map(len, report["runs"])) + 2
    lines = [f"{report['size']}, {report['latency_ms']:g} ms latency, concurrency {report['concurrency']}; "
             f"a pull request that rebinds one API ({report['moved_api']}) of one group", "",
             f"{'plan':<{width}}{'requests':>9}{'wall s':>8}{'CPU s':>8}  labels"]
    for name, r in report["runs"].items():
        shown = ", ".join(f"{count} {label}" for label, count in sorted(r["labels"].items()))
        lines.append(f"{name:<{width}}{r['requests']:>9}{r['process_seconds']:>8.2f}{r['cpu_seconds']:>8.2f}  {shown}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--groups", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--tree", type=Path, action="append", help="a source tree whose reconciler to run "
                                                                     "(repeatable; default: the current folder)")
    parser.add_argument("--python", default=sys.executable,
                        help="the interpreter that runs the plans (default: this one); a virtual environment "
                             "installed from examples/requirements/reconciler.txt holds only what users install")
    parser.add_argument("--out", type=Path, default=RESULTS / "changed_only.json")
    args = parser.parse_args()
    report = benchmark(args)
    publish(report, table(report), args.out)


if __name__ == "__main__":
    main()
