"""The benchmark, small: a regression check of the request count and of what concurrency buys.

Only counts and ratios are checked, never absolute times, and the bounds are loose: CI machines have
two cores shared with the emulator.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.plan_benchmark import emulator, minimum_requests, run_plan
from benchmarks.workload import Size, write_tenant

SIZE = Size(groups=30, apis=100, signatures=150)
LATENCY_MS = 10.0


@pytest.mark.slow  # plans over real HTTP with real latency, at several concurrencies, in child processes
def test_plan_makes_the_minimum_requests_and_concurrency_hides_the_latency(tmp_path: Path) -> None:
    state, manifests, env = write_tenant(SIZE, tmp_path)
    with emulator(state, LATENCY_MS) as server:
        sequential = run_plan(manifests, env, server, 1)
        concurrent = run_plan(manifests, env, server, 16)
    assert sequential.requests == concurrent.requests == minimum_requests(SIZE) == 2 * 2 + 60 + 30
    assert sequential.throttled == concurrent.throttled == 0
    # Sequential reads take at least requests x latency; 16 in flight must make that several times faster.
    assert sequential.fetch_seconds >= sequential.requests * LATENCY_MS / 1000
    assert sequential.fetch_seconds / concurrent.fetch_seconds >= 3
