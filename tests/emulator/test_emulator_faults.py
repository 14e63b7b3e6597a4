"""Injected faults: rates, determinism with a seed, latency, and that a faulted write changes nothing."""

from __future__ import annotations

import time

import pytest

from reconciler.emulator.faults import FaultConfig, FaultInjector
from reconciler.errors import InputError
from tests.support.emulator import Caller, make_app, make_state


def outcomes(config: FaultConfig, count: int) -> list[str]:
    injector = FaultInjector(config)
    return [plan.error.code if plan.error else "ok" for plan in (injector.plan() for _ in range(count))]


def test_rates_are_honoured_over_many_requests() -> None:
    results = outcomes(FaultConfig(throttle_rate=0.2, error_rate=0.1, seed=7), 5000)
    assert 0.17 < results.count("Throttling.User") / 5000 < 0.23
    assert 0.08 < results.count("ServiceUnavailable") / 5000 < 0.12


def test_same_seed_gives_the_same_faults_in_the_same_order() -> None:
    config = FaultConfig(throttle_rate=0.3, error_rate=0.3, seed=42)
    assert outcomes(config, 200) == outcomes(config, 200)
    assert outcomes(config, 200) != outcomes(FaultConfig(throttle_rate=0.3, error_rate=0.3, seed=43), 200)


def test_no_faults_by_default() -> None:
    assert set(outcomes(FaultConfig(), 100)) == {"ok"}


def test_faults_reach_the_client_with_vendor_status_codes_and_retry_after() -> None:
    caller = Caller(make_app(make_state(), faults=FaultConfig(throttle_rate=0.5, error_rate=0.5, seed=1)))
    responses = [caller.call("DescribeSignatures") for _ in range(60)]
    throttled = [r for r in responses if r.status_code == 400]
    unavailable = [r for r in responses if r.status_code == 503]
    assert throttled and unavailable and len(throttled) + len(unavailable) == 60
    assert {r.json()["Code"] for r in throttled} == {"Throttling.User"}
    assert {r.json()["Code"] for r in unavailable} == {"ServiceUnavailable"}
    retry_after = [int(r.headers["x-acs-retry-after"]) for r in throttled if "x-acs-retry-after" in r.headers]
    assert 0 < len(retry_after) < len(throttled)
    assert all(20 <= ms <= 200 for ms in retry_after)
    assert all(set(r.json()) == {"Code", "Message", "RequestId", "HostId", "Recommend"} for r in responses)


def test_a_faulted_write_is_not_applied() -> None:
    caller = Caller(make_app(make_state(), faults=FaultConfig(error_rate=1.0)))
    assert caller.error("CreateSignature", SignatureName="abcd", SignatureKey="abcdef",
                        SignatureSecret="abcdef") == (503, "ServiceUnavailable")
    assert caller.app.state.signature_count() == 0


def test_latency_is_added_to_each_request() -> None:
    caller = Caller(make_app(make_state(), faults=FaultConfig(latency_ms=60)))
    start = time.perf_counter()
    caller.ok("DescribeSignatures")
    assert time.perf_counter() - start >= 0.06


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"throttle_rate": 1.5}, "throttle rate must be between 0 and 1"),
        ({"error_rate": -0.1}, "error rate must be between 0 and 1"),
        ({"throttle_rate": 0.6, "error_rate": 0.6}, "together must not exceed 1"),
        ({"latency_ms": -1}, "latency must be 0 ms or more"),
    ],
)
def test_invalid_fault_config_is_an_input_error(config: dict[str, float], message: str) -> None:
    with pytest.raises(InputError, match=message):
        FaultConfig(**config)
