"""`reconciler plan --concurrency 32` side by side with the vendor's SDK reading the same pages with 32 threads.

Usage (from the repository root)::

    .venv/bin/python -m benchmarks.sdk_side_by_side [--groups 200] [--latency-ms 50] [--python PATH]

The tenant: 200 groups x 2 stages x 100 APIs, each API its own signature (20,000 signatures and 40,000
binding entries in the manifests, one entry per API, the bindings in one 4.9 MB file). One emulator
process serves one state at 50 ms latency; against it run, one after the other, once each:

- `reconciler plan MANIFESTS --concurrency 32` (a child process: start-up, loading and validating the
  manifests, the fetch, the diff, the rendered plan);
- `benchmarks/sdk_reader.py` (a child process: the SDK's client in 32 threads sending the same requests
  and keeping the items; no manifest, no comparison).

Figures: each process's wall time and CPU time (user + system, from wait4), the requests the emulator
counted for each and the CPU the emulator's own process spent serving them (not part of either
figure, but on two cores it competes with both), and the ratios SDK / plan (above 1: plan is ahead).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.plan_benchmark import Emulator, emulator, run_plan
from benchmarks.report import RESULTS, publish
from benchmarks.workload import Size, hex_id, write_tenant

ROOT = Path(__file__).parent.parent


def run_sdk(server: Emulator, scopes: Path, threads: int) -> dict[str, Any]:
    before = server.stats()
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "benchmarks.sdk_reader", server.url, str(scopes),
                                "--threads", str(threads)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    assert process.stdout is not None
    out = process.stdout.read()
    process.stdout.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError("the SDK reader failed")
    after = server.stats()
    return {"process_seconds": elapsed, "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "requests": after["requests"] - before["requests"], "fetch_seconds": after["span_seconds"],
            "emulator_cpu_seconds": after["cpu_seconds"] - before["cpu_seconds"],
            "items": json.loads(out.strip().splitlines()[-1])}


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    size = Size(groups=args.groups, apis=args.apis, signatures=args.groups * args.apis, signature_run=1)
    report: dict[str, Any] = {"size": size.describe(), "entries": size.bindings, "latency_ms": args.latency_ms,
                              "concurrency": args.concurrency, "cpus": os.cpu_count(),
                              "python": args.python}
    with tempfile.TemporaryDirectory() as scratch:
        state, manifests, env = write_tenant(size, Path(scratch) / "tenant", groups_per_manifest=size.groups)
        scopes = Path(scratch) / "scopes.json"
        scopes.write_text(json.dumps({"groups": [hex_id("group", g) for g in range(size.groups)],
                                      "stages": list(size.stages)}), encoding="utf-8")
        with emulator(state, args.latency_ms) as server:
            plan = run_plan(manifests, env, server, args.concurrency, python=args.python)
            sdk = run_sdk(server, scopes, args.concurrency)
    report["plan"] = {"process_seconds": plan.process_seconds, "cpu_seconds": plan.cpu_seconds,
                      "requests": plan.requests, "fetch_seconds": plan.fetch_seconds,
                      "emulator_cpu_seconds": plan.emulator_cpu_seconds}
    report["sdk"] = sdk
    report["wall_ratio_sdk_over_plan"] = sdk["process_seconds"] / plan.process_seconds
    report["cpu_ratio_sdk_over_plan"] = sdk["cpu_seconds"] / plan.cpu_seconds
    return report


def table(report: dict[str, Any]) -> str:
    lines = [f"{report['size']} ({report['entries']} manifest entries), {report['latency_ms']:g} ms latency, "
             f"{report['concurrency']} in flight, {report['cpus']} CPUs", "",
             f"{'':<26}{'requests':>9}{'fetch s':>9}{'wall s':>8}{'CPU s':>8}{'emulator CPU s':>16}"]
    for name, key in (("reconciler plan", "plan"), ("SDK, 32 threads", "sdk")):
        r = report[key]
        lines.append(f"{name:<26}{r['requests']:>9}{r['fetch_seconds']:>9.2f}{r['process_seconds']:>8.2f}"
                     f"{r['cpu_seconds']:>8.2f}{r['emulator_cpu_seconds']:>16.2f}")
    lines.append(f"\nSDK / plan: wall {report['wall_ratio_sdk_over_plan']:.2f}x, "
                 f"CPU {report['cpu_ratio_sdk_over_plan']:.2f}x (above 1: plan is ahead)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--groups", type=int, default=200)
    parser.add_argument("--apis", type=int, default=100)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--python", default=sys.executable,
                        help="the interpreter that runs the plan (default: this one); the SDK runs in this one")
    parser.add_argument("--out", type=Path, default=RESULTS / "sdk_side_by_side.json")
    args = parser.parse_args()
    report = benchmark(args)
    publish(report, table(report), args.out)


if __name__ == "__main__":
    main()
