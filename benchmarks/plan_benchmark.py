"""How close `reconciler plan` gets to the physical limit: requests x latency / concurrency.

Usage (from the repository root)::

    .venv/bin/python -m benchmarks.plan_benchmark                       # the target size, ~8 minutes
    .venv/bin/python -m benchmarks.plan_benchmark --groups 50 --latency-ms 5 --sequential-groups 50 \\
        --qps-limit 0 --scaling ''                                       # a quick look

One run generates a tenant (`workload.py`), serves it from an emulator in its own process
(`emulator_process.py`), runs `python -m reconciler plan` as a child process at each concurrency and
measures, side by side: requests against the minimum, the fetch's wall time against the bound, the
plan process's CPU and peak RSS, the emulator's CPU per request, the differ and text renderer alone on
a snapshot of that size, the differ at several sizes (its slope), and a run against `--qps-limit`.
It prints a table and writes the figures as JSON (`--out`, default benchmarks/results/latest.json).

Decisions: the fetch's wall time is the span the emulator saw from the first request's arrival to the
last answer (it excludes interpreter start-up and manifest loading, which the bound does not cover);
the whole process's wall time is reported beside it. Concurrency 1 is measured on a smaller tenant
(`--sequential-groups`) and extrapolated per request, as a sequential read of 3,000 requests at 50 ms
alone takes 2.5 minutes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from benchmarks.emulator_process import STATS_PATH
from benchmarks.report import RESULTS, publish
from benchmarks.workload import APIS_PER_SIGNATURE_RUN, UNMANAGED, Size, expected_changes, in_memory, write_tenant
from reconciler.emulator.server import DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET
from reconciler.limits import DEFAULT_CONCURRENCY
from reconciler.vendor_rules import MAX_PAGE_SIZE


@dataclass(frozen=True)
class PlanRun:
    concurrency: int
    requests: int
    throttled: int
    fetch_seconds: float
    process_seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    emulator_cpu_seconds: float
    exit_code: int

    def bound(self, latency_ms: float) -> float:
        """requests x latency / concurrency: the least time these requests can take."""
        return self.requests * latency_ms / 1000 / self.concurrency


def minimum_requests(size: Size, *, with_api_lists: bool = True) -> int:
    """Pages of 100: the signatures (live ones included), each scope's bindings, and each group's API list.

    A listing of more than one page counts twice: the fetcher accepts it only when two consecutive
    reads agree (a shift across a page boundary can otherwise lose an item unseen)."""

    def listing(items: int) -> int:
        pages = max(1, math.ceil(items / MAX_PAGE_SIZE))
        return pages if pages == 1 else 2 * pages

    requests = listing(size.signatures + UNMANAGED) + size.groups * len(size.stages) * listing(size.apis)
    return requests + (size.groups * listing(size.apis) if with_api_lists else 0)


class Emulator:
    def __init__(self, url: str, process: subprocess.Popen[str]) -> None:
        self.url = url
        self.process = process

    def stats(self) -> dict[str, Any]:
        response = httpx.get(self.url + STATS_PATH, timeout=10)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result


@contextmanager
def emulator(state: Path, latency_ms: float, qps_limit: float | None = None) -> Iterator[Emulator]:
    command = [sys.executable, "-m", "benchmarks.emulator_process", str(state), "--latency-ms", str(latency_ms)]
    if qps_limit:
        command += ["--qps-limit", str(qps_limit)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parent.parent)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        if not line.startswith("Emulator listening on "):
            raise RuntimeError(f"the emulator did not start: {line!r}")
        yield Emulator(line.removeprefix("Emulator listening on "), process)
    finally:
        process.terminate()
        process.wait(10)


def run_plan(manifests: Path, env: dict[str, str], server: Emulator, concurrency: int,
             extra: Sequence[str] = (), python: str = sys.executable) -> PlanRun:
    """One `reconciler plan` child process run by `python`; its exit code is 0 (changes pending, no
    --detailed-exitcode)."""
    before = server.stats()
    child_env = {**os.environ, **env, "ALIBABA_CLOUD_ACCESS_KEY_ID": DEFAULT_ACCESS_KEY_ID,
                 "ALIBABA_CLOUD_ACCESS_KEY_SECRET": DEFAULT_ACCESS_KEY_SECRET}
    with tempfile.TemporaryDirectory() as scratch:
        command = [python, "-m", "reconciler", "plan", str(manifests), "--endpoint", server.url,
                   "--concurrency", str(concurrency), "-q", "--no-color", "--out", f"{scratch}/plan.txt", *extra]
        started = time.perf_counter()
        process = subprocess.Popen(command, env=child_env, stderr=subprocess.PIPE, text=True)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        assert process.stderr is not None
        errors = process.stderr.read()
        process.stderr.close()
    if process.returncode != 0:
        raise RuntimeError(f"plan failed ({process.returncode}): {errors.strip()}")
    after = server.stats()
    return PlanRun(concurrency=concurrency, requests=after["requests"] - before["requests"],
                   throttled=after["throttled"] - before["throttled"], fetch_seconds=after["span_seconds"],
                   process_seconds=elapsed, cpu_seconds=usage.ru_utime + usage.ru_stime,
                   peak_rss_mb=usage.ru_maxrss / 1024,
                   emulator_cpu_seconds=after["cpu_seconds"] - before["cpu_seconds"],
                   exit_code=process.returncode)


def diff_alone(groups: int, apis: int, signatures: int, signature_run: int = APIS_PER_SIGNATURE_RUN,
               loaded: bool = False) -> dict[str, float]:
    """In a child process: CPU and memory of diff + text render on a snapshot of that size, no network.

    `signature_run=1` gives each API its own signature and manifest entry (the SDK side by side's tenant);
    `loaded` reads the manifests from YAML files first, so that the diff pays, as in `plan`, for building
    the bindings it needs and finding the lines of its changes."""
    code = ("import json,sys;from benchmarks.plan_benchmark import measure_diff;"
            f"print(json.dumps(measure_diff({groups},{apis},{signatures},{signature_run},{loaded})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).parent.parent)
    result: dict[str, float] = json.loads(done.stdout)
    return result


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure_diff(groups: int, apis: int, signatures: int, signature_run: int = APIS_PER_SIGNATURE_RUN,
                 loaded: bool = False) -> dict[str, float]:
    from reconciler.differ import diff
    from reconciler.manifest import load_desired_state
    from reconciler.render.plan import render_text

    size = Size(groups=groups, apis=apis, signatures=signatures, signature_run=signature_run)
    desired, snapshot = in_memory(size)
    if loaded:
        with tempfile.TemporaryDirectory() as scratch:
            _, manifests, env = write_tenant(size, Path(scratch), groups_per_manifest=groups)
            desired = load_desired_state([manifests], env=env)
    rss_before = _rss_mb()
    started = time.process_time()
    result = diff(desired, {snapshot.region: snapshot})
    diffed = time.process_time()
    text = render_text(result)
    rendered = time.process_time()
    assert len(result.changes) == expected_changes(size), (len(result.changes), expected_changes(size))
    return {"bindings": size.bindings, "changes": len(result.changes), "diff_cpu_seconds": diffed - started,
            "render_cpu_seconds": rendered - diffed, "text_bytes": len(text),
            "state_rss_mb": rss_before, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "diff_rss_growth_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss_before}


def slope(points: Sequence[dict[str, float]]) -> dict[str, float]:
    """Least-squares microseconds of diff CPU per binding, and the log-log exponent (1.0 = linear)."""
    xs = [p["bindings"] for p in points]
    ys = [p["diff_cpu_seconds"] for p in points]
    per_binding = sum(x * y for x, y in zip(xs, ys, strict=True)) / sum(x * x for x in xs)
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    exponent = sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True)) / sum((a - mx) ** 2 for a in lx)
    return {"microseconds_per_binding": per_binding * 1e6, "log_log_exponent": exponent}


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    size = Size(groups=args.groups, apis=args.apis, signatures=args.signatures)
    report: dict[str, Any] = {"size": asdict(size) | {"bindings": size.bindings, "description": size.describe()},
                              "latency_ms": args.latency_ms, "cpus": os.cpu_count(),
                              "minimum_requests": minimum_requests(size),
                              "minimum_requests_without_api_lists": minimum_requests(size, with_api_lists=False)}
    with tempfile.TemporaryDirectory() as scratch:
        state, manifests, env = write_tenant(size, Path(scratch) / "full")
        runs: dict[str, PlanRun] = {}
        with emulator(state, args.latency_ms) as server:
            for concurrency in args.concurrency:
                runs[f"c{concurrency}"] = run_plan(manifests, env, server, concurrency)
        report["runs"] = {name: asdict(run) | {"bound_seconds": run.bound(args.latency_ms),
                                               "ratio_to_bound": run.fetch_seconds / run.bound(args.latency_ms)}
                          for name, run in runs.items()}
        if args.sequential_groups:
            small = Size(groups=args.sequential_groups, apis=args.apis, signatures=args.signatures)
            small_state, small_manifests, small_env = write_tenant(small, Path(scratch) / "small")
            with emulator(small_state, args.latency_ms) as server:
                sequential = run_plan(small_manifests, small_env, server, 1)
            per_request = sequential.fetch_seconds / sequential.requests
            report["sequential"] = asdict(sequential) | {
                "size": small.describe(), "seconds_per_request": per_request,
                "extrapolated_fetch_seconds": per_request * report["minimum_requests"]}
        if args.qps_limit:
            with emulator(state, args.latency_ms, args.qps_limit) as server:
                limited = run_plan(manifests, env, server, DEFAULT_CONCURRENCY)
            succeeded = limited.requests - limited.throttled
            report["qps_limited"] = asdict(limited) | {
                "qps_limit": args.qps_limit, "achieved_rps": succeeded / limited.fetch_seconds,
                "achieved_share_of_limit": succeeded / limited.fetch_seconds / args.qps_limit,
                "throttled_share": limited.throttled / limited.requests}
    report["diff_alone"] = diff_alone(args.groups, args.apis, args.signatures)
    if len(args.scaling) >= 2:  # a slope needs two sizes at least
        points = [diff_alone(bindings // (2 * args.apis), args.apis, args.signatures) for bindings in args.scaling]
        report["diff_scaling"] = {"points": points, **slope(points)}
    return report


def table(report: dict[str, Any]) -> str:
    latency = report["latency_ms"]
    lines = [f"{report['size']['description']}, {latency:g} ms latency, {report['cpus']} CPUs",
             f"minimum requests {report['minimum_requests']} "
             f"({report['minimum_requests_without_api_lists']} without DescribeApis)", "",
             f"{'run':<22}{'requests':>9}{'thr':>6}{'fetch s':>9}{'bound s':>9}{'ratio':>7}{'process s':>11}"
             f"{'cpu s':>8}{'RSS MB':>8}{'emu ms/req':>11}"]

    def row(name: str, run: dict[str, Any], bound: float | None) -> str:
        ratio = f"{run['fetch_seconds'] / bound:7.2f}" if bound else f"{'-':>7}"
        bound_text = f"{bound:9.2f}" if bound else f"{'-':>9}"
        per_request = 1000 * run["emulator_cpu_seconds"] / max(1, run["requests"])
        return (f"{name:<22}{run['requests']:>9}{run['throttled']:>6}{run['fetch_seconds']:>9.2f}{bound_text}"
                f"{ratio}{run['process_seconds']:>11.2f}{run['cpu_seconds']:>8.2f}{run['peak_rss_mb']:>8.0f}"
                f"{per_request:>11.2f}")

    for run in report["runs"].values():
        lines.append(row(f"concurrency {run['concurrency']}", run, run["bound_seconds"]))
    if "sequential" in report:
        seq = report["sequential"]
        lines.append(row(f"c1 on {seq['size'].split(' ')[0]} groups", seq, seq["requests"] * latency / 1000))
        lines.append(f"  concurrency 1 extrapolated to the full size: {seq['extrapolated_fetch_seconds']:.1f} s fetch")
        for run in report["runs"].values():
            lines.append(f"  speed-up of concurrency {run['concurrency']} over 1: "
                         f"{seq['extrapolated_fetch_seconds'] / run['fetch_seconds']:.1f}x")
    if "qps_limited" in report:
        q = report["qps_limited"]
        lines.append(row(f"--qps-limit {q['qps_limit']:g} (c{q['concurrency']})", q, None))
        lines.append(f"  achieved {q['achieved_rps']:.1f} req/s = {100 * q['achieved_share_of_limit']:.1f}% of the "
                     f"limit; {100 * q['throttled_share']:.2f}% of requests throttled")
    d = report["diff_alone"]
    lines += ["", f"diff alone: {d['diff_cpu_seconds']:.3f} s CPU, text render {d['render_cpu_seconds']:.3f} s "
                  f"({d['changes']} changes); peak RSS {d['peak_rss_mb']:.0f} MB, state {d['state_rss_mb']:.0f} MB"]
    if "diff_scaling" in report:
        s = report["diff_scaling"]
        for p in s["points"]:
            lines.append(f"  {p['bindings']:>9} bindings: diff {p['diff_cpu_seconds']:7.3f} s CPU "
                         f"({1e6 * p['diff_cpu_seconds'] / p['bindings']:.2f} us/binding)")
        lines.append(f"  slope {s['microseconds_per_binding']:.2f} us/binding, log-log exponent "
                     f"{s['log_log_exponent']:.2f} (1.00 = linear)")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--groups", type=int, default=1000)
    parser.add_argument("--apis", type=int, default=100, help="APIs per group, each bound in both stages")
    parser.add_argument("--signatures", type=int, default=500)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=lambda v: [int(c) for c in v.split(",")],
                        default=[DEFAULT_CONCURRENCY, 32])
    parser.add_argument("--sequential-groups", type=int, default=100,
                        help="size of the tenant read at concurrency 1 (0: skip)")
    parser.add_argument("--qps-limit", type=float, default=50.0, help="0: skip the throttled run")
    parser.add_argument("--scaling", type=lambda v: [int(b) for b in v.split(",") if b],
                        default=[20_000, 200_000, 2_000_000], help="binding counts for the differ's slope")
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.json")
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    report = benchmark(args)
    publish(report, table(report), args.out)


if __name__ == "__main__":
    main()
