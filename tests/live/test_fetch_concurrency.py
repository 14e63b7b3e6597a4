"""The benchmark's workload, small: a plan makes exactly the minimum requests, and `--concurrency` is how
many the server sees in flight at once (one at a time with 1; all 16 together with 16, never more).

The server counts; nothing is timed. To make the 16 meet in flight whatever the machine's load, the
server holds each request until 16 are in flight at once (a few seconds at most; a client that never
gets there fails on the count, not on the wait).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from benchmarks.plan_benchmark import minimum_requests
from benchmarks.workload import Size, write_tenant
from reconciler.emulator.app import EmulatorApp
from reconciler.emulator.server import DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET
from reconciler.emulator.state import EmulatorState
from reconciler.emulator.verify import AccessKey
from tests.support.cli import CliResult
from tests.support.loopback_servers import serve

SIZE = Size(groups=30, apis=100, signatures=150)
HOLD_SECONDS = 5.0


@dataclass
class InFlight:
    """An ASGI app in front of the emulator that counts requests and the most in flight at once; until
    `gather` requests are in flight together, it holds each one back."""

    app: Any
    gather: int
    requests: int = 0
    in_flight: int = 0
    most_in_flight: int = 0
    _gathered: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.requests += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        if self.in_flight >= self.gather:
            self._gathered.set()
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._gathered.wait(), HOLD_SECONDS)
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


@pytest.fixture
def plan_at(tmp_path: Path, cli: Callable[..., CliResult], monkeypatch: pytest.MonkeyPatch
            ) -> Callable[[int], InFlight]:
    state_file, manifests, env = write_tenant(SIZE, tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    env |= {"ALIBABA_CLOUD_ACCESS_KEY_ID": DEFAULT_ACCESS_KEY_ID,
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": DEFAULT_ACCESS_KEY_SECRET}

    def plan(concurrency: int) -> InFlight:
        keys = [AccessKey(DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET)]
        counter = InFlight(EmulatorApp(EmulatorState.from_file(state_file), keys), gather=concurrency)
        with serve(counter) as port:
            result = cli("plan", str(manifests), "--endpoint", f"http://127.0.0.1:{port}",
                         "--concurrency", str(concurrency), "-q", "--out", str(tmp_path / "plan.txt"), env=env)
        assert result.code == 0, result.err
        assert result.err.startswith("Plan: 0 to create, 5 to update, 0 to delete, 15 to bind"), result.err
        return counter

    return plan


def test_a_plan_makes_the_minimum_requests_one_at_a_time_with_concurrency_1(plan_at: Callable[[int], InFlight]
                                                                            ) -> None:
    counter = plan_at(1)
    assert counter.requests == minimum_requests(SIZE) == 2 * 2 + 60 + 30
    assert counter.most_in_flight == 1


def test_concurrency_16_puts_16_requests_in_flight_and_never_more(plan_at: Callable[[int], InFlight]) -> None:
    counter = plan_at(16)
    assert counter.requests == minimum_requests(SIZE)
    assert counter.most_in_flight == 16
