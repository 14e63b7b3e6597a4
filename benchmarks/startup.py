"""Start-up cost of `reconciler --version` and `reconciler validate` over a bare interpreter.

Usage (from the repository root)::

    .venv/bin/python -m benchmarks.startup [--runs 30]

The baseline is an interpreter that imports pydantic, yaml and click and does nothing else. Each
command runs `--runs` times, the commands interleaved (so a busy neighbour slows them all alike), and
the figure is the median of the CPU time (user + system) of the child processes, which another
process's load moves far less than wall time; the median wall time is printed beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.report import RESULTS

ROOT = Path(__file__).parent.parent

COMMANDS = {
    "baseline (import pydantic, yaml, click)": [sys.executable, "-c", "import pydantic, yaml, click"],
    "reconciler --version": [sys.executable, "-m", "reconciler", "--version"],
    "reconciler validate manifests/": [sys.executable, "-m", "reconciler", "validate", "manifests/",
                                       "--env-file", "examples/demo.env"],
}


def one_run(command: list[str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one child process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command)} failed")
    return usage.ru_utime + usage.ru_stime, time.perf_counter() - started


def measure(runs: int) -> dict[str, dict[str, float]]:
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in COMMANDS}
    for command in COMMANDS.values():  # warm the file cache and the bytecode
        one_run(command)
    for _ in range(runs):
        for name, command in COMMANDS.items():
            samples[name].append(one_run(command))
    return {name: {"cpu_ms": 1000 * statistics.median(c for c, _ in runs_),
                   "wall_ms": 1000 * statistics.median(w for _, w in runs_)}
            for name, runs_ in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--out", type=Path, default=RESULTS / "startup.json")
    args = parser.parse_args()
    figures = measure(args.runs)
    base = figures[next(iter(COMMANDS))]
    print(f"{'command':<42}{'CPU ms':>8}{'over base':>11}{'wall ms':>9}{'over base':>11}")
    for name, f in figures.items():
        print(f"{name:<42}{f['cpu_ms']:>8.0f}{f['cpu_ms'] - base['cpu_ms']:>+11.0f}{f['wall_ms']:>9.0f}"
              f"{f['wall_ms'] - base['wall_ms']:>+11.0f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"runs": args.runs, "median": figures}, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
