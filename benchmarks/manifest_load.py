"""Loading 40,000 binding entries: the candidate YAML readers side by side, and what `validate` costs.

Usage (from the repository root)::

    .venv/bin/pip install ryaml rapidyaml        # optional candidates; skipped when absent
    .venv/bin/python -m benchmarks.manifest_load [--repeat 3]

The tenant is the one where each API has its own signature (200 groups x 2 stages x 100 APIs: 20,000
signatures in `signatures.yaml`, 40,000 binding entries), written twice: the bindings in one 4.9 MB
file, and split over 200 files (one a group). Every candidate runs in its own child process, `--repeat`
times, interleaved with the others; the figures are the least CPU time (user + system: a busy
neighbour on a shared machine inflates wall time far more) and the peak RSS of that process.

Candidates (the reading only, without validation, unless said):
- `pyyaml CSafeLoader`: `yaml.load(text, CSafeLoader)`; libyaml parses, PyYAML constructs in Python;
  no positions;
- `pyyaml exact (nodes + lines)`: what reconciler did before: libyaml composes PyYAML's node tree (with
  positions), checked and constructed (`yamlsource.read_exact`);
- `yaml_rs whole file` / `ryaml` / `rapidyaml tree` / `rapidyaml tree + walk`: Rust and C++ parsers;
  none reports positions to Python (rapidyaml only in its error messages);
- `fast reading`: `yamlsource.read_fast`, yaml_rs in slices with the checks that decide it may be used;
- `load_desired_state`: reading, validation with pydantic and the desired state with every binding built
  (they are built when first asked for), in process (the target: <= 0.6 s, <= 120 MB);
- `reconciler validate` (process): the whole command, start-up included.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.report import RESULTS, publish
from benchmarks.workload import Size, secret_variable, write_tenant

ROOT = Path(__file__).parent.parent
SIZE = Size(groups=200, apis=100, signatures=20_000, signature_run=1)

# Each snippet reads FILES (a list of paths) and prints JSON {"cpu": seconds, "rss": MB}. The peak RSS is
# the process's own high-water mark (VmHWM): ru_maxrss of a child counts the forking parent's memory too.
_PEAK = "int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]) / 1024"
_TIMED = """
import json, sys, time
from pathlib import Path
FILES = [Path(p) for p in sys.argv[1:]]
TEXTS = [p.read_text(encoding="utf-8") for p in FILES]
{setup}
started = time.process_time()
{body}
print(json.dumps({{"cpu": time.process_time() - started, "rss": PEAK}}))
""".replace("PEAK", _PEAK)
# `reconciler validate` as run from the shell, reporting its own peak RSS on stderr when it exits.
_VALIDATE = f"""
import atexit, runpy, sys
atexit.register(lambda: print("PEAK", {_PEAK}, file=sys.stderr))
sys.argv = ["reconciler", "validate", *sys.argv[1:]]
runpy.run_module("reconciler", run_name="__main__")
"""

CANDIDATES: dict[str, tuple[str, str, str | None]] = {
    # name: (setup, body, module that must be importable)
    "pyyaml CSafeLoader": ("import yaml", "for t in TEXTS: yaml.load(t, Loader=yaml.CSafeLoader)", None),
    "pyyaml exact (nodes + lines)": ("from reconciler.yamlsource import read_exact",
                                     "for p, t in zip(FILES, TEXTS): read_exact(str(p), t)", None),
    "yaml_rs whole file": ("import yaml_rs", "for t in TEXTS: yaml_rs.loads(t, parse_datetime=False)", "yaml_rs"),
    "ryaml": ("import ryaml", "for t in TEXTS: ryaml.loads(t)", "ryaml"),
    "rapidyaml tree": ("import ryml", "for t in TEXTS: ryml.parse_in_arena(t.encode())", "ryml"),
    "rapidyaml tree + walk": ("""import ryml
def walk(tree, node):
    if tree.is_map(node):
        out, child = {}, tree.first_child(node)
        while child != ryml.NONE:
            out[bytes(tree.key(child)).decode()] = walk(tree, child)
            child = tree.next_sibling(child)
        return out
    if tree.is_seq(node):
        items, child = [], tree.first_child(node)
        while child != ryml.NONE:
            items.append(walk(tree, child))
            child = tree.next_sibling(child)
        return items
    return bytes(tree.val(node)).decode()""",
                              "for t in TEXTS:\n    tree = ryml.parse_in_arena(t.encode()); walk(tree, tree.root_id())",
                              "ryml"),
    "fast reading (yaml_rs in slices + checks)": ("from reconciler.yamlsource import read_fast",
                                                  "for t in TEXTS: assert read_fast(t) is not None", "yaml_rs"),
    "load_desired_state (read + validate)": (
        "import os\nfrom reconciler.manifest import load_desired_state\nenv = dict(os.environ)",
        "[r.bindings for r in load_desired_state(FILES, env=env).regions.values()]", None),
}


def _child(command: list[str], env: dict[str, str]) -> dict[str, float]:
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    assert process.stdout is not None and process.stderr is not None
    out, err = process.stdout.read(), process.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{command[:4]} failed: {err.strip()[-300:]}")
    figures = {"process_cpu": usage.ru_utime + usage.ru_stime}
    last = out.strip().splitlines()[-1] if out.strip() else ""
    if last.startswith("{"):
        figures.update(json.loads(last))
    peaks = [line.split()[1] for line in err.splitlines() if line.startswith("PEAK ")]
    if peaks:
        figures["rss"] = float(peaks[-1])
    return figures


def _available(module: str | None) -> bool:
    if module is None:
        return True
    done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, check=False)
    return done.returncode == 0


def measure(repeat: int) -> dict[str, Any]:
    report: dict[str, Any] = {"size": SIZE.describe(), "entries": SIZE.bindings, "signatures": SIZE.signatures,
                              "repeat": repeat, "layouts": {}}
    env = {**os.environ, **{secret_variable(i): f"secret{i:05d}" for i in range(SIZE.signatures)}}
    with tempfile.TemporaryDirectory() as scratch:
        layouts = {"one file": write_tenant(SIZE, Path(scratch) / "one", groups_per_manifest=SIZE.groups)[1],
                   "200 files": write_tenant(SIZE, Path(scratch) / "many", groups_per_manifest=1)[1]}
        for layout, folder in layouts.items():
            files = sorted(str(p) for p in folder.glob("*.yaml"))
            sizes = sorted((Path(f).stat().st_size for f in files), reverse=True)
            runs: dict[str, list[dict[str, float]]] = {}
            commands = {name: [sys.executable, "-c", _TIMED.format(setup=setup, body=body), *files]
                        for name, (setup, body, module) in CANDIDATES.items() if _available(module)}
            commands["reconciler validate (process)"] = [sys.executable, "-c", _VALIDATE, str(folder)]
            for _ in range(repeat):
                for name, command in commands.items():
                    runs.setdefault(name, []).append(_child(command, env))
            report["layouts"][layout] = {
                "files": len(files), "largest_bytes": sizes[0], "total_bytes": sum(sizes),
                "candidates": {name: {"cpu_seconds": min(r.get("cpu", r["process_cpu"]) for r in results),
                                      "process_cpu_seconds": min(r["process_cpu"] for r in results),
                                      "peak_rss_mb": min(r["rss"] for r in results)}
                               for name, results in runs.items()}}
    return report


def table(report: dict[str, Any]) -> str:
    lines = [f"{report['size']}: {report['entries']} binding entries, {report['signatures']} signatures; "
             f"least of {report['repeat']} runs, CPU seconds (user + system)"]
    for layout, figures in report["layouts"].items():
        lines += ["", f"{layout} ({figures['files']} files, {figures['total_bytes'] / 1e6:.1f} MB, largest "
                      f"{figures['largest_bytes'] / 1e6:.1f} MB)",
                  f"  {'candidate':<44}{'CPU s':>8}{'process CPU s':>15}{'peak RSS MB':>13}"]
        for name, c in figures["candidates"].items():
            lines.append(f"  {name:<44}{c['cpu_seconds']:>8.2f}{c['process_cpu_seconds']:>15.2f}"
                         f"{c['peak_rss_mb']:>13.0f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS / "manifest_load.json")
    args = parser.parse_args()
    report = measure(args.repeat)
    publish(report, table(report), args.out)


if __name__ == "__main__":
    main()
