"""The emulator's fault switches for resets, hangs, malformed answers, latency spikes and state changing
between pages: what each does on the wire, and that a seed makes them reproducible."""

from __future__ import annotations

import json

import httpx
import pytest

from reconciler.emulator.faults import (
    MALFORMED_KINDS,
    PROXY_ERROR_PAGE,
    FaultConfig,
    FaultInjector,
    change_between_pages,
    garbled_body,
)
from reconciler.emulator.server import running_emulator
from reconciler.errors import InputError

from .scenario import BIG_GROUP, emulator_state

PAYLOAD = {"RequestId": "R1", "TotalCount": 1, "SignatureInfos": {"SignatureInfo": [{"SignatureId": "s1"}]}}


def kinds(config: FaultConfig, count: int) -> list[str]:
    injector = FaultInjector(config)
    out = []
    for plan in (injector.plan() for _ in range(count)):
        out.append("reset" if plan.reset else "hang" if plan.hang else plan.malformed or "ok")
    return out


def test_rates_and_seeds() -> None:
    config = FaultConfig(reset_rate=0.1, hang_rate=0.1, malformed_rate=0.2, seed=3)
    drawn = kinds(config, 4000)
    assert 0.08 < drawn.count("reset") / 4000 < 0.12
    assert 0.08 < drawn.count("hang") / 4000 < 0.12
    assert 0.17 < sum(drawn.count(k) for k in MALFORMED_KINDS) / 4000 < 0.23
    assert drawn == kinds(config, 4000)


def test_throttling_alone_draws_as_before_the_new_switches() -> None:
    """Seeds pinned by older tests and demos keep giving the same faults."""
    old = FaultInjector(FaultConfig(throttle_rate=0.3, error_rate=0.2, seed=7))
    new = FaultInjector(FaultConfig(throttle_rate=0.3, error_rate=0.2, seed=7, malformed_kinds=("truncated",)))
    assert [(p.error.code if p.error else None) for p in (old.plan() for _ in range(300))] == \
        [(p.error.code if p.error else None) for p in (new.plan() for _ in range(300))]


@pytest.mark.parametrize(("config", "message"), [
    ({"reset_rate": 1.5}, "reset rate must be between 0 and 1"),
    ({"throttle_rate": 0.5, "hang_rate": 0.3, "malformed_rate": 0.3}, "together must not exceed 1"),
    ({"malformed_kinds": ("gzip",)}, "malformed kinds must be among"),
    ({"spike_ms": -1}, "spike must be 0 ms or more"),
])
def test_invalid_switches(config: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        FaultConfig(**config)  # type: ignore[arg-type]


def test_garbled_bodies() -> None:
    data = json.dumps(PAYLOAD, separators=(",", ":")).encode()
    truncated, content_type = garbled_body("truncated", 0.5, PAYLOAD)
    assert truncated == data[: len(data) // 2] and content_type.startswith("application/json")
    assert garbled_body("not-json", 0.0, PAYLOAD) == (PROXY_ERROR_PAGE, "text/html")
    assert garbled_body("wrong-content-type", 0.0, PAYLOAD) == (data, "text/plain;charset=utf-8")
    missing = [json.loads(garbled_body("missing-field", i / 7, PAYLOAD)[0]) for i in range(7)]
    assert all(len(json.dumps(m)) < len(json.dumps(PAYLOAD)) for m in missing)
    assert any("RequestId" not in m for m in missing) and any("TotalCount" not in m for m in missing)


def test_reset_and_hang_over_real_http() -> None:
    with running_emulator(emulator_state(), faults=FaultConfig(reset_rate=1.0)) as emulator, \
            httpx.Client(base_url=emulator.url, timeout=2) as client, \
            pytest.raises(httpx.ReadError, match="Connection reset by peer"):
        client.post("/")
    with running_emulator(emulator_state(), faults=FaultConfig(hang_rate=1.0)) as emulator, \
            httpx.Client(base_url=emulator.url, timeout=0.2) as client, pytest.raises(httpx.ReadTimeout):
        client.post("/")


@pytest.mark.parametrize("swap", [False, True])
def test_state_changes_before_a_later_page(swap: bool) -> None:
    state = emulator_state()
    before = {s.name for s in state.describe_signatures([], [], 1, 1000)[0]}
    bound_before = [b.api.name for b in state.describe_api_signatures(BIG_GROUP, "RELEASE", [], 1, 1000)[0]]
    change_between_pages(state, "DescribeSignatures", {"PageNumber": "1"}, swap=swap)
    assert {s.name for s in state.describe_signatures([], [], 1, 1000)[0]} == before  # page 1: no change
    change_between_pages(state, "DescribeSignatures", {"PageNumber": "2"}, swap=swap)
    change_between_pages(state, "DescribeApiSignatures", {"PageNumber": "2", "GroupId": BIG_GROUP,
                                                          "StageName": "RELEASE"}, swap=swap)
    after = {s.name for s in state.describe_signatures([], [], 1, 1000)[0]}
    bound_after = [b.api.name for b in state.describe_api_signatures(BIG_GROUP, "RELEASE", [], 1, 1000)[0]]
    added = after - before
    assert len(added) == 1 and next(iter(added)).startswith("churn_")
    if swap:  # same count, one removed early (the first unbound signature, the first binding), one added late
        assert before - after == {"sig_050"} and len(bound_after) == len(bound_before)
        assert bound_after[0] == bound_before[1] and bound_after[-1] == "api_149"
    else:
        assert before <= after and len(bound_after) == len(bound_before) + 1 and "api_120" in bound_after
