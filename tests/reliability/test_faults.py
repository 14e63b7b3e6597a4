"""Plan, apply and export against the emulator over real HTTP under injected faults, with seeds.

Every run must end in exactly one of: the exact right answer, or exit 1 with one line naming the
operation and the cause. A partial read that exits 0 or 2, any other output, and any traceback
fail the class. Each test also checks that its faults reached the client (a suite whose faults never
fired would pass without proving anything). The outcome of every run is counted (see conftest: the
table printed at the end). The in-process runs use short retry waits (`quick_retries`, so a CI job can
afford many seeds); the runs in child processes keep the real waits.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.emulator.server import running_emulator
from tests.support.cli import QUICK_RETRIES, CliResult
from tests.support.paths import ROOT
from tests.support.prewarmed import Prewarmed

from .runs import (
    EMULATOR_CREDENTIALS,
    Cli,
    fault_free_plan,
    faults,
    has_traceback,
    is_clean_error,
    plan_args,
    plan_outcome,
    use_emulator_credentials,
)
from .scenario import REGION, emulator_state, write_manifest
from .tally import TALLY

SEEDS = range(1, 7)


@pytest.fixture
def manifests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, quick_retries: None) -> Path:
    use_emulator_credentials(monkeypatch, tmp_path / "home")
    return write_manifest(tmp_path / "manifests")


@pytest.fixture
def retries(caplog: pytest.LogCaptureFixture) -> Callable[[], int]:
    """How many retries the client (run in-process) has logged in this test so far."""
    caplog.set_level(logging.DEBUG, logger="reconciler.aliyun")
    return lambda: sum("retrying in" in record.getMessage() for record in caplog.records)


@pytest.fixture(scope="module")
def right_plan() -> dict[str, tuple[int, str]]:
    """Filled on first use: the plan of a manifest folder against the unchanged tenant (the same for every
    seed; the folder is part of the plan's text)."""
    return {}


# (fault class, emulator faults, client --timeout seconds)
PLAN_CLASSES: list[tuple[str, dict[str, Any], float]] = [
    ("latency spikes (timeout 0.25 s)", {"latency_ms": 2, "spike_rate": 0.15, "spike_ms": 400}, 0.25),
    ("throttling 0.5", {"throttle_rate": 0.5}, 5.0),
    ("503 errors 0.3", {"error_rate": 0.3}, 5.0),
    ("connection resets 0.2", {"reset_rate": 0.2}, 5.0),
    ("truncated JSON", {"malformed_rate": 0.05, "malformed_kinds": ("truncated",)}, 5.0),
    ("HTML page instead of JSON", {"malformed_rate": 0.05, "malformed_kinds": ("not-json",)}, 5.0),
    ("wrong Content-Type", {"malformed_rate": 0.05, "malformed_kinds": ("wrong-content-type",)}, 5.0),
    ("missing fields", {"malformed_rate": 0.1, "malformed_kinds": ("missing-field",)}, 5.0),
    ("hangs (timeout 0.2 s)", {"hang_rate": 0.1}, 0.2),
    ("state changes between pages", {"mutate_rate": 0.3}, 5.0),
    ("all at once", {"throttle_rate": 0.2, "error_rate": 0.1, "reset_rate": 0.05, "hang_rate": 0.02,
                     "malformed_rate": 0.02, "spike_rate": 0.1, "spike_ms": 300, "mutate_rate": 0.2}, 0.25),
]


@pytest.mark.parametrize(("fault_class", "config", "timeout"), PLAN_CLASSES, ids=[c[0] for c in PLAN_CLASSES])
def test_plan_is_exact_or_one_clean_error(fault_class: str, config: dict[str, Any], timeout: float, cli: Cli,
                                          manifests: Path, right_plan: dict[str, tuple[int, str]],
                                          retries: Callable[[], int]) -> None:
    bad: list[str] = []
    outcomes: list[str] = []
    state_changed = False
    if str(manifests) not in right_plan:
        right_plan[str(manifests)] = fault_free_plan(cli, emulator_state(), manifests)
    for seed in SEEDS:
        state = emulator_state()
        with running_emulator(state, faults=faults(seed, **config)) as emulator:
            result: CliResult = cli(*plan_args(manifests, emulator.url, timeout))
        if "mutate_rate" in config:
            expected = fault_free_plan(cli, state, manifests)  # the state the run left behind
            state_changed |= expected != right_plan[str(manifests)]
        else:
            expected = right_plan[str(manifests)]
        outcome = plan_outcome(result.code, result.out, result.err, expected)
        TALLY.add(f"plan: {fault_class}", outcome)
        outcomes.append(outcome)
        if outcome in ("wrong answer", "traceback"):
            bad.append(f"seed {seed}: exit {result.code}, stderr {result.err!r}, stdout {result.out[:300]!r}")
    assert not bad, "\n".join(bad)
    # The faults reached the client: a change between pages shows in the state the run left behind, every
    # other fault as a retry.
    if set(config) == {"mutate_rate"}:
        assert state_changed, "no run changed the state between pages"
    else:
        assert retries() > 0, "no injected fault reached the client"
    # And they did not turn every run into an error: a garbled success is retried on a read like a 503, so
    # those classes end exact too. Only all faults at once may fail every seed.
    if fault_class != "all at once":
        assert "exact" in outcomes, outcomes


APPLY_FAULTS = {"throttle_rate": 0.2, "error_rate": 0.1, "reset_rate": 0.05, "malformed_rate": 0.03}


def test_apply_is_complete_or_one_clean_error_and_a_rerun_converges(cli: Cli, manifests: Path,
                                                                    retries: Callable[[], int]) -> None:
    bad: list[str] = []
    for seed in SEEDS[:4]:  # each run is an apply, a plan, and on failure a second apply and plan
        state = emulator_state()
        with running_emulator(state, faults=faults(seed, **APPLY_FAULTS)) as emulator:
            result = cli("apply", str(manifests), "--endpoint", emulator.url, "--auto-approve", "-q",
                         "--timeout", "5")
        code, after = fault_free_plan(cli, state, manifests)
        if has_traceback(result.out, result.err):
            outcome = "traceback"
        elif result.code == 0 and result.err == "" and code == 0:
            outcome = "exact"
        elif is_clean_error(result.code, result.err):
            # A failed apply may leave work undone, never a state that a second apply cannot finish.
            with running_emulator(state) as emulator:
                rerun = cli("apply", str(manifests), "--endpoint", emulator.url, "--auto-approve", "-q")
            code, after = fault_free_plan(cli, state, manifests)
            outcome = "clean error" if rerun.code == 0 and code == 0 else "wrong answer"
        else:
            outcome = "wrong answer"
        TALLY.add("apply: throttling, 503, resets, malformed", outcome)
        if outcome in ("wrong answer", "traceback"):
            bad.append(f"seed {seed}: exit {result.code}, stderr {result.err!r}, plan after: {after[-200:]!r}")
    assert not bad, "\n".join(bad)
    assert retries() > 0, "no injected fault reached the client"


EXPORT_FAULTS = {"throttle_rate": 0.2, "error_rate": 0.1, "reset_rate": 0.05, "malformed_rate": 0.03,
                 "mutate_rate": 0.2}


def exported(folder: Path, url: str) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8").replace(url, "URL") for p in sorted(folder.iterdir())}


def test_export_writes_the_exact_state_or_nothing(cli: Cli, manifests: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch, retries: Callable[[], int]) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    bad: list[str] = []
    for seed in SEEDS:
        state = emulator_state()
        out = tmp_path / f"export-{seed}"
        with running_emulator(state, faults=faults(seed, **EXPORT_FAULTS)) as emulator:
            result = cli("export", "--region", REGION, "--all-groups", "--endpoint", emulator.url, "--out", str(out),
                         "-q", "--timeout", "5")
            written = exported(out, emulator.url) if out.exists() else {}
        reference = tmp_path / f"reference-{seed}"
        with running_emulator(state) as emulator:  # the state the run left behind
            assert cli("export", "--region", REGION, "--all-groups", "--endpoint", emulator.url, "--out",
                       str(reference), "-q").code == 0
            expected = exported(reference, emulator.url)
        if has_traceback(result.out, result.err):
            outcome = "traceback"
        elif result.code == 0 and written == expected:
            outcome = "exact"
        elif is_clean_error(result.code, result.err) and not written:
            outcome = "clean error"
        else:
            outcome = "wrong answer"
        TALLY.add("export: throttling, 503, resets, malformed, changes", outcome)
        if outcome in ("wrong answer", "traceback"):
            bad.append(f"seed {seed}: exit {result.code}, stderr {result.err!r}, files {sorted(written)}")
    assert not bad, "\n".join(bad)
    assert retries() > 0, "no injected fault reached the client"


@pytest.fixture
def faulty_emulator_process(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """`reconciler emulator` in a subprocess with every fault switch on; yields its URL."""
    state_file = tmp_path / "state.yaml"
    emulator_state().dump_state(state_file)
    seed = request.param
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "emulator", "--state", str(state_file), "--port", "0",
         "--throttle-rate", "0.1", "--error-rate", "0.05", "--reset-rate", "0.05", "--hang-rate", "0.02",
         "--malformed-rate", "0.02", "--spike-rate", "0.05", "--spike-ms", "300", "--seed", str(seed)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("Emulator listening on http://127.0.0.1:"), line + process.stderr.read()
        yield line.split()[-1]
    finally:
        process.terminate()
        _, emulator_err = process.communicate(timeout=15)
        assert process.returncode == 0
        assert not has_traceback(emulator_err), emulator_err


@pytest.mark.slow
@pytest.mark.parametrize("faulty_emulator_process", [3, 5], indirect=True)
def test_plan_in_a_real_process_never_shows_a_traceback(faulty_emulator_process: str, manifests: Path, cli: Cli,
                                                        prewarmed: Prewarmed) -> None:
    """As a CI job runs it: emulator and plan are separate processes, with the real retry waits (the plan's
    process is forked from a prewarmed one, which spares only the import)."""
    expected = fault_free_plan(cli, emulator_state(), manifests)
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("ALIBABA_CLOUD_") and name not in QUICK_RETRIES}
    env.update(EMULATOR_CREDENTIALS)
    done = prewarmed.run(plan_args(manifests, faulty_emulator_process, 0.25), env=env, cwd=ROOT, timeout=60)
    if has_traceback(done.stdout, done.stderr):
        outcome = "traceback"
    else:
        outcome = plan_outcome(done.returncode, done.stdout, done.stderr, expected)
    TALLY.add("plan, subprocesses: all faults", outcome)
    assert outcome in ("exact", "clean error"), (done.returncode, done.stderr, done.stdout[-300:])
