"""The client's AIMD pacing: it finds the rate an endpoint accepts, honours x-acs-retry-after, obeys --max-rps."""

from __future__ import annotations

import asyncio
import time

import pytest

from reconciler.aliyun.client import AdaptiveRate, ApiClient, RetryTiming
from reconciler.aliyun.credentials import Credentials
from reconciler.aliyun.transport import http_transport
from reconciler.cli import run
from reconciler.emulator.faults import FaultConfig
from reconciler.emulator.server import running_emulator
from reconciler.emulator.state import EmulatorState
from reconciler.errors import InputError
from reconciler.live import ConnectionOptions, open_connection
from tests.support.counting import CountingTransport


def test_requests_start_at_once_until_the_first_throttling() -> None:
    rate = AdaptiveRate()
    assert [rate.reserve(10.0) for _ in range(5)] == [0.0] * 5
    assert rate.rate is None


def test_throttling_sets_the_rate_below_what_was_accepted_in_the_last_second() -> None:
    rate = AdaptiveRate()
    for i in range(40):
        rate.succeeded(10.0 + i * 0.02)  # 40 successes within the second before 10.8
    rate.throttled(sent_at=10.75, now=10.8, retry_after=None)
    assert rate.rate == pytest.approx(0.85 * 40)
    # Requests sent before that decrease were part of the same overload: no second decrease.
    rate.throttled(sent_at=10.79, now=10.81, retry_after=None)
    assert rate.rate == pytest.approx(0.85 * 40)
    rate.throttled(sent_at=10.9, now=10.95, retry_after=None)
    assert rate.rate == pytest.approx(0.85 * 0.85 * 40)


def test_successes_raise_the_rate_by_about_increase_per_second() -> None:
    rate = AdaptiveRate()
    rate.throttled(sent_at=0.0, now=0.0, retry_after=None)
    assert rate.rate == AdaptiveRate.DEFAULT_MIN_RPS  # nothing was accepted yet
    rate.rate = 20.0
    for i in range(20):  # one second's worth at 20 a second
        rate.succeeded(1.0 + i / 20)
    assert rate.rate == pytest.approx(20.0 + AdaptiveRate.INCREASE, abs=0.1)


def test_starts_are_spaced_by_the_rate_and_held_back_by_retry_after() -> None:
    rate = AdaptiveRate(max_rps=10)
    assert [round(rate.reserve(0.0), 3) for _ in range(3)] == [0.0, 0.1, 0.2]
    rate.throttled(sent_at=0.0, now=0.0, retry_after=1.5)
    assert rate.reserve(0.0) == pytest.approx(1.5)


def test_max_rps_caps_the_rate_from_the_first_request_and_after_increases() -> None:
    rate = AdaptiveRate(max_rps=5)
    for i in range(100):
        rate.succeeded(i / 5)
    assert rate.rate == 5
    with pytest.raises(InputError, match="--max-rps must be more than 0"):
        AdaptiveRate(max_rps=0)


def test_min_rps_is_the_floor_a_decrease_stops_at_never_above_max_rps() -> None:
    rate = AdaptiveRate(min_rps=200)
    rate.throttled(sent_at=0.0, now=0.0, retry_after=None)  # nothing was accepted yet
    assert rate.rate == 200
    capped = AdaptiveRate(max_rps=5, min_rps=200)
    capped.throttled(sent_at=0.0, now=0.0, retry_after=None)
    assert capped.rate == 5


def test_the_pacing_floor_comes_from_the_environment_with_the_retry_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = {"RECONCILER_MIN_RPS": "50", "RECONCILER_RETRY_BASE_DELAY": "0.05",
                "ALIBABA_CLOUD_ACCESS_KEY_ID": "testid", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "testsecret"}
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("RECONCILER_RETRY_MAX_DELAY", raising=False)
    with open_connection(ConnectionOptions(endpoint="http://127.0.0.1:1"), ["cn-hangzhou"]) as connection:
        assert connection.retry == RetryTiming(base_delay=0.05, max_delay=10.0, min_rps=50.0)


def _state() -> EmulatorState:
    return EmulatorState.from_dict({"region": "cn-hangzhou", "signatures": [
        {"name": f"sig{i:04d}", "key": f"key{i:04d}", "secret": f"secret{i:04d}"} for i in range(3)]})


async def _read_signatures(url: str, rate: AdaptiveRate, calls: int) -> CountingTransport:
    counting = CountingTransport(http_transport(url))
    client = ApiClient(url, Credentials(access_key_id="testid", access_key_secret="testsecret"), rate=rate,
                       transport=counting)
    async with client:
        slots = asyncio.Semaphore(8)

        async def one() -> None:
            async with slots:
                await client.call("DescribeSignatures", {"PageSize": 100})

        await asyncio.gather(*(one() for _ in range(calls)))
    return counting


@pytest.mark.slow  # paced in real time against a real rate limit
def test_against_a_qps_limit_few_requests_are_throttled() -> None:
    # 8 in flight against an endpoint taking 20 a second (burst 20): unpaced, ~70% would be refused.
    with running_emulator(_state(), faults=FaultConfig(qps_limit=20)) as emulator:
        sent = asyncio.run(_read_signatures(emulator.url, AdaptiveRate(), 60))
    assert sent.requests - sent.throttled == 60
    assert sent.throttled <= 10


@pytest.mark.slow  # paced in real time against a real rate limit
def test_max_rps_keeps_below_the_limit_without_any_throttling() -> None:
    with running_emulator(_state(), faults=FaultConfig(qps_limit=20)) as emulator:
        started = time.monotonic()
        sent = asyncio.run(_read_signatures(emulator.url, AdaptiveRate(max_rps=15), 30))
        elapsed = time.monotonic() - started
    assert sent.throttled == 0
    assert elapsed >= 29 / 15 * 0.95  # 30 starts spaced 1/15 s apart


def test_plan_refuses_a_max_rps_that_is_not_positive(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["plan", "manifests", "--max-rps", "0"]) == 1
    assert "--max-rps" in capsys.readouterr().err
