"""SIGINT/SIGTERM during apply's writes: the calls in flight finish (a rebind's RemoveSignatureApis and
SetSignatureApis always both go out), no new step starts, the report lists what was done and what was not,
and the exit code is 130 / 143. Also: how long a rebind leaves an API without its signature."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reconciler.emulator.server import running_emulator
from reconciler.emulator.state import EmulatorState, derived_id
from tests.support.cli import CliResult
from tests.support.emulator import bindings_of

CREDENTIALS = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "testid", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "testsecret"}
APIS = [f"api{n:03d}" for n in range(250)]
GROUP = derived_id("group", "big")

Cli = Callable[..., CliResult]


def big_state() -> EmulatorState:
    """250 APIs bound to old_backend in TEST; the manifest moves them all to new_backend (3 rebind steps)."""
    return EmulatorState.from_dict({
        "region": "cn-hangzhou",
        "signatures": [{"name": "old_backend", "key": "oldKey01", "secret": "oldSecret01"},
                       {"name": "new_backend", "key": "newKey01", "secret": "newSecret01"}],
        "groups": [{"name": "big", "apis": [{"name": a} for a in APIS],
                    "bindings": {"TEST": {a: "old_backend" for a in APIS}}}],
    })


def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "big.yaml"
    path.write_text(
        "region: cn-hangzhou\nsignatures:\n"
        "  - {name: old_backend, key: oldKey01, secret: oldSecret01}\n"
        "  - {name: new_backend, key: newKey01, secret: newSecret01}\n"
        f"bindings:\n  - {{group: {GROUP}, stage: TEST, signature: new_backend, apis: [{', '.join(APIS)}]}}\n"
        f"  - {{group: {GROUP}, stage: RELEASE, signature: new_backend, apis: [{', '.join(APIS[:10])}]}}\n")
    return path


def record_writes(state: EmulatorState, log: list[tuple[str, float, frozenset[str]]],
                  on_first_remove: Callable[[], None] | None = None) -> None:
    """Log each binding write as it changes the state: (method, monotonic time, API ids)."""
    for method in ("remove_signature_apis", "set_signature_apis"):
        real = getattr(state, method)

        def logged(*args: Any, real: Any = real, method: str = method) -> Any:
            if method == "remove_signature_apis" and on_first_remove is not None and not log:
                on_first_remove()
            outcome = real(*args)
            log.append((method, time.monotonic(), frozenset(args[3] or ())))
            return outcome

        setattr(state, method, logged)


@pytest.mark.parametrize(("sent", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_mid_rebind_finishes_the_pair_and_reports(cli: Cli, tmp_path: Path, sent: signal.Signals,
                                                           code: int) -> None:
    state = big_state()
    writes: list[tuple[str, float, frozenset[str]]] = []
    # The signal arrives while the first RemoveSignatureApis is being carried out, i.e. mid-rebind.
    record_writes(state, writes, on_first_remove=lambda: os.kill(os.getpid(), sent))
    path = manifest(tmp_path)
    with running_emulator(state) as emulator:
        result = cli("apply", str(path), "--endpoint", emulator.url, "-q", "--auto-approve", "--concurrency", "1",
                     env=CREDENTIALS)
        assert result.code == code, result.err
        # The pair went out: the first 100 APIs were removed from old_backend and set to new_backend; nothing else.
        assert [method for method, _, _ in writes] == ["remove_signature_apis", "set_signature_apis"]
        assert writes[0][2] == writes[1][2] and len(writes[0][2]) == 100
        test_scope = bindings_of(state, GROUP, "TEST")
        assert len(test_scope) == 250  # no API was left without a signature
        assert sorted(test_scope.values()).count("new_backend") == 100
        log = result.out.splitlines()
        # One line for the scope, saying how much of it was done.
        at = log.index(f"rebound 100 of 250 APIs of group {GROUP} stage TEST from old_backend to new_backend "
                       f"(the rest not done)")
        assert log[at + 1:] == [
            f"Apply interrupted by {sent.name}; the calls in flight were finished. Done: 1 step(s), logged above.",
            "Not done: 3 step(s):",
            f"  rebind 100 APIs of group {GROUP} stage TEST from old_backend to new_backend",
            f"  rebind 50 APIs of group {GROUP} stage TEST from old_backend to new_backend",
            f"  bind 10 APIs of group {GROUP} stage RELEASE to new_backend",
            "Run apply again to carry on: it re-reads the live state, so done steps are not repeated.",
        ]
        assert result.err == (f"{sent.name} received: finishing the calls in flight; no new step starts.\n"
                              f"Error: apply interrupted by {sent.name}: 3 step(s) not done (listed above)\n")
        # The handlers are gone with the apply, and a second run carries on.
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        again = cli("apply", str(path), "--endpoint", emulator.url, "-q", "--auto-approve", env=CREDENTIALS)
        assert again.code == 0, again.err
        assert set(bindings_of(state, GROUP, "TEST").values()) == {"new_backend"}


def test_a_second_signal_does_not_cut_the_rebind_short(cli: Cli, tmp_path: Path) -> None:
    """Ctrl-C pressed again, or a CI runner's SIGTERM after the user's SIGINT: the pair in flight still
    completes. Two different signals are sent, so that neither can merge into the other while pending; the
    kernel may deliver them in either order, and the first one delivered decides the exit code."""
    state = big_state()
    writes: list[tuple[str, float, frozenset[str]]] = []

    def two_signals() -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)

    record_writes(state, writes, on_first_remove=two_signals)
    with running_emulator(state) as emulator:
        result = cli("apply", str(manifest(tmp_path)), "--endpoint", emulator.url, "-q", "--auto-approve",
                     "--concurrency", "1", env=CREDENTIALS)
    assert [method for method, _, _ in writes] == ["remove_signature_apis", "set_signature_apis"]
    assert len(bindings_of(state, GROUP, "TEST")) == 250  # no API was left without a signature
    first, second = result.err.splitlines()[:2]
    assert {first.split()[0], second.split()[0]} == {"SIGINT", "SIGTERM"}
    first_signal = signal.Signals[first.split()[0]]
    assert first == f"{first_signal.name} received: finishing the calls in flight; no new step starts."
    assert second.endswith(" received: still finishing the calls in flight.")
    assert result.code == 128 + first_signal.value
    assert (f"Apply interrupted by {first_signal.name}; the calls in flight were finished. Done: 1 step(s), "
            f"logged above.") in result.out.splitlines()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_the_unsigned_window_of_a_rebind(cli: Cli, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """SetSignatureApis is not documented to replace another key's binding, so a rebind is Remove then Set and
    the API is unsigned in between. The test pins that the Set follows its Remove with nothing else of the same
    APIs in between, and prints how long the window was (the time between the two state changes)."""
    state = big_state()
    writes: list[tuple[str, float, frozenset[str]]] = []
    record_writes(state, writes)
    with running_emulator(state) as emulator:
        result = cli("apply", str(manifest(tmp_path)), "--endpoint", emulator.url, "-q", "--auto-approve",
                     env=CREDENTIALS)
    assert result.code == 0, result.err
    removes = [(t, apis) for method, t, apis in writes if method == "remove_signature_apis"]
    sets = {apis: t for method, t, apis in writes if method == "set_signature_apis"}
    assert sorted(len(apis) for _, apis in removes) == [50, 100, 100]
    windows = [(sets[apis] - t) * 1000 for t, apis in removes]
    assert all(window > 0 for window in windows)
    with capsys.disabled():
        print(f"\nunsigned window per rebind step (ms): median {statistics.median(windows):.2f}, "
              f"max {max(windows):.2f}, over {len(windows)} steps of 50-100 APIs")


def test_a_real_process_sent_sigterm_mid_rebind_exits_143(tmp_path: Path) -> None:
    state = big_state()
    writes: list[tuple[str, float, frozenset[str]]] = []
    process: list[subprocess.Popen[str]] = []
    record_writes(state, writes, on_first_remove=lambda: process[0].send_signal(signal.SIGTERM))
    with running_emulator(state) as emulator:
        env = {**CREDENTIALS, "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        process.append(subprocess.Popen(
            [sys.executable, "-m", "reconciler", "apply", str(manifest(tmp_path)), "--endpoint", emulator.url, "-q",
             "--auto-approve", "--concurrency", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=env))
        out, err = process[0].communicate(timeout=60)
    assert process[0].returncode == 143, err
    assert [method for method, _, _ in writes] == ["remove_signature_apis", "set_signature_apis"]
    assert len(bindings_of(state, GROUP, "TEST")) == 250
    assert "Apply interrupted by SIGTERM; the calls in flight were finished. Done: 1 step(s), logged above." in out
    assert err.endswith("Error: apply interrupted by SIGTERM: 3 step(s) not done (listed above)\n")


@pytest.mark.parametrize("presses", [1, 2])
@pytest.mark.parametrize("command", ["plan", "apply"])
def test_ctrl_c_while_reading_exits_130_in_one_line_and_changes_nothing(tmp_path: Path, command: str,
                                                                         presses: int) -> None:
    """Before any write there is nothing to finish: the run ends at once, with the shell's code for SIGINT;
    more Ctrl-Cs soon after, wherever they land in the ending, change neither the code nor the line. (Each
    page of the signature listing read sends one more.)"""
    state = big_state()
    before = state.to_spec()
    process: list[subprocess.Popen[str]] = []
    real = state.describe_signatures

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        process[0].send_signal(signal.SIGINT)
        for delay in (0.01, 0.03, 0.06) if presses > 1 else ():
            threading.Timer(delay, lambda: process[0].poll() is None and process[0].send_signal(signal.SIGINT)
                            ).start()
        return real(*args, **kwargs)

    state.describe_signatures = interrupted  # type: ignore[method-assign]
    with running_emulator(state) as emulator:
        env = {**CREDENTIALS, "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        process.append(subprocess.Popen(
            [sys.executable, "-m", "reconciler", command, str(manifest(tmp_path)), "--endpoint", emulator.url, "-q",
             *(["--auto-approve"] if command == "apply" else [])],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
        out, err = process[0].communicate(timeout=60)
    assert (process[0].returncode, out) == (130, ""), err
    assert err.strip() == "Interrupted."
    assert state.to_spec() == before


@pytest.mark.parametrize("interrupted", [True, False])
def test_ctrl_c_turned_into_an_error_of_an_extension_is_still_an_interruption(
        interrupted: bool, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pydantic-core, building a model's validators at import, turns the KeyboardInterrupt raised inside its
    callback into a SchemaError; `plan` imports while its first requests are in flight, so a Ctrl-C lands
    there. With the handler `main` installs, that error after a SIGINT is the interruption; without a
    SIGINT, the same error is a bug and reported as one."""
    import reconciler.planning
    from reconciler.cli import interrupt

    def building_validators(*args: Any, **kwargs: Any) -> Any:
        try:
            if interrupted:
                signal.raise_signal(signal.SIGINT)
        except KeyboardInterrupt:
            pass
        raise RuntimeError('Error building "enum" validator:\n  KeyboardInterrupt: ')

    monkeypatch.setattr(reconciler.planning, "read_plan_inputs", building_validators)
    previous = signal.signal(signal.SIGINT, interrupt)
    try:
        result = cli("plan", str(manifest(tmp_path)), "--snapshot", str(tmp_path / "none.json"))
    finally:
        signal.signal(signal.SIGINT, previous)
    if interrupted:
        assert (result.code, result.out, result.err) == (130, "", "Interrupted.\n")
    else:
        assert (result.code, result.out) == (1, "")
        assert result.err.startswith("Error: internal error (RuntimeError: ")


def test_after_the_writes_sigterm_ends_the_command_as_before_them(cli: Cli, tmp_path: Path) -> None:
    """apply takes SIGINT and SIGTERM over while it writes, then gives them back as the command had them
    (SIGTERM's clean exit included), not as Python's defaults."""
    from reconciler.cli import terminate

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        with running_emulator(big_state()) as emulator:
            result = cli("apply", str(manifest(tmp_path)), "--endpoint", emulator.url, "-q", "--auto-approve",
                         env=CREDENTIALS)
        assert result.code == 0, result.err
        assert signal.getsignal(signal.SIGTERM) is terminate
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGTERM, previous)
