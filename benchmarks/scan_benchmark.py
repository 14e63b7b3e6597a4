"""`reconciler scan` against an emulator in its own process: its request count against the minimum, and time.

    .venv/bin/python -m benchmarks.scan_benchmark [--groups 1000] [--latency-ms 50] [--concurrency 16]

Tenant: the plan benchmark's (`workload.emulator_state`: `groups` groups of 100 APIs, bound in RELEASE and
TEST, 505 signatures), with every API published in RELEASE and the APIs of every other group also in TEST,
so that a stage with no published API (whose bindings scan does not read) is part of the workload.

The minimum (pages of 100, 50 for groups; a listing of several pages counts twice, as the fetcher reads it
twice to accept it): DescribeRegions once, the signatures, the group list, one API list per group, and the
bindings of each (group, published stage). The scan reads one region: the emulator serves one.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.plan_benchmark import Emulator, emulator
from benchmarks.workload import UNMANAGED, Size, emulator_state
from reconciler.emulator.server import DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET
from reconciler.vendor_rules import MAX_GROUP_PAGE_SIZE, MAX_PAGE_SIZE


def published_stages(group: int) -> list[str]:
    return ["RELEASE", "TEST"] if group % 2 == 0 else ["RELEASE"]


def scan_state(size: Size) -> dict[str, Any]:
    state = emulator_state(size)
    for index, group in enumerate(state["groups"]):
        for api in group["apis"]:
            api["deployed"] = published_stages(index)
    return state


def write_scan_tenant(size: Size, folder: Path) -> Path:
    path = folder / "scan-state.json"
    path.write_text(json.dumps(scan_state(size)))
    return path


def _listing(items: int, page_size: int) -> int:
    pages = max(1, math.ceil(items / page_size))
    return pages if pages == 1 else 2 * pages


def minimum_scan_requests(size: Size) -> int:
    """The least requests a complete scan of the tenant can make (see the module docstring). Bindings per
    (group, stage) are at most `size.apis` (100): one page each."""
    published_scopes = sum(len(published_stages(g)) for g in range(size.groups))
    return (1 + _listing(size.signatures + UNMANAGED, MAX_PAGE_SIZE) + _listing(size.groups, MAX_GROUP_PAGE_SIZE)
            + size.groups * _listing(size.apis, MAX_PAGE_SIZE) + published_scopes * _listing(size.apis, MAX_PAGE_SIZE))


def run_scan(server: Emulator, concurrency: int) -> dict[str, Any]:
    """One `reconciler scan -o json` child process; its request count (from the emulator) and times."""
    before = server.stats()
    env = {**os.environ, "ALIBABA_CLOUD_ACCESS_KEY_ID": DEFAULT_ACCESS_KEY_ID,
           "ALIBABA_CLOUD_ACCESS_KEY_SECRET": DEFAULT_ACCESS_KEY_SECRET}
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "scan.json"
        command = [sys.executable, "-m", "reconciler", "scan", "--endpoint", server.url, "--concurrency",
                   str(concurrency), "-q", "-o", "json", "--out", str(out)]
        started = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"scan failed ({done.returncode}): {done.stderr.strip()}")
        summary = json.loads(out.read_text())["summary"]
    after = server.stats()
    return {"requests": after["requests"] - before["requests"], "process_seconds": round(elapsed, 2),
            "fetch_seconds": round(after["span_seconds"], 2), "published": summary["published"],
            "signed": summary["signed"]}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, default=16)
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    size = Size(groups=args.groups)
    with tempfile.TemporaryDirectory() as folder:
        state = write_scan_tenant(size, Path(folder))
        with emulator(state, args.latency_ms) as server:
            run = run_scan(server, args.concurrency)
    minimum = minimum_scan_requests(size)
    bound = run["requests"] * args.latency_ms / 1000 / args.concurrency
    print(f"scan of {size.groups} groups x {size.apis} APIs, {args.latency_ms:g} ms latency, "
          f"concurrency {args.concurrency}")
    print(f"  requests {run['requests']} (minimum {minimum}, ratio {run['requests'] / minimum:.3f})")
    print(f"  fetch {run['fetch_seconds']} s (bound {bound:.2f} s), process {run['process_seconds']} s")
    print(f"  published {run['published']}, signed {run['signed']}")


if __name__ == "__main__":
    main()
