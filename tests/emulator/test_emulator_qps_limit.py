"""The emulator's --qps-limit: a token bucket per access key, over it the vendor's throttling answer."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from reconciler.emulator.apierror import VendorErrorAnswer
from reconciler.emulator.cli import emulator_command
from reconciler.emulator.faults import FaultConfig, QpsLimiter
from reconciler.emulator.verify import AccessKey
from reconciler.errors import InputError
from tests.support.emulator import ACCESS_KEY, Caller, make_app, make_state


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def refusal(limiter: QpsLimiter, key: str) -> VendorErrorAnswer:
    with pytest.raises(VendorErrorAnswer) as caught:
        limiter.admit(key)
    return caught.value


def test_a_burst_of_one_seconds_worth_passes_then_throttling_says_when_to_retry() -> None:
    clock = FakeClock()
    limiter = QpsLimiter(4, clock)
    for _ in range(4):
        limiter.admit("ak")
    error = refusal(limiter, "ak")
    assert (error.status, error.code) == (400, "Throttling.User")
    assert error.headers == {"x-acs-retry-after": "250"}
    clock.now += 0.125
    assert refusal(limiter, "ak").headers == {"x-acs-retry-after": "125"}
    clock.now += 0.125
    limiter.admit("ak")


def test_the_sustained_rate_is_the_limit() -> None:
    clock = FakeClock()
    limiter = QpsLimiter(50, clock)
    admitted = 0
    for _ in range(10_000):  # 10 s of offered load at 1,000 requests a second
        clock.now += 0.001
        try:
            limiter.admit("ak")
            admitted += 1
        except VendorErrorAnswer:
            pass
    assert 50 * 10 <= admitted <= 50 * 10 + 50  # the limit, plus the initial burst at most


def test_each_access_key_has_its_own_bucket() -> None:
    limiter = QpsLimiter(1, FakeClock())
    limiter.admit("ak1")
    limiter.admit("ak2")
    assert refusal(limiter, "ak1").code == "Throttling.User"


def test_the_app_throttles_over_the_limit_and_throttled_writes_change_nothing() -> None:
    app = make_app(make_state(), faults=FaultConfig(qps_limit=1))
    caller = Caller(app)
    assert caller.call("DescribeSignatures").status_code == 200
    status, code = caller.error("CreateSignature", SignatureName="orders_backend", SignatureKey="ordersKey01",
                                SignatureSecret="ordersSecret01")
    assert (status, code) == (400, "Throttling.User")
    assert app.state.signature_count() == 0


def test_throttling_applies_to_verified_callers_only() -> None:
    app = make_app(make_state(), faults=FaultConfig(qps_limit=1), keys=(ACCESS_KEY, AccessKey("other", "othersecret")))
    Caller(app).ok("DescribeSignatures")
    assert Caller(app, access_key_id="other", secret="wrongsecret").error("DescribeSignatures")[1] != "Throttling.User"
    Caller(app, access_key_id="other", secret="othersecret").ok("DescribeSignatures")


def test_the_limit_must_be_positive() -> None:
    with pytest.raises(InputError, match="QPS limit must be more than 0"):
        FaultConfig(qps_limit=0)
    result = CliRunner().invoke(emulator_command, ["--state", __file__, "--qps-limit", "0"])
    assert result.exit_code == 2 and "--qps-limit" in result.output
