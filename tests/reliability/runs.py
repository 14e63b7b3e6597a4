"""Running the real CLI against a faulty emulator and sorting each run into one outcome."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reconciler.emulator.faults import FaultConfig
from reconciler.emulator.server import running_emulator
from reconciler.emulator.state import EmulatorState

OPERATIONS = ("Describe[A-Za-z]+", "CreateSignature", "ModifySignature", "DeleteSignature", "SetSignatureApis",
              "RemoveSignatureApis")
# One line: "Error: ", somewhere the operation, then after a colon the cause.
CLEAN_ERROR = re.compile(rf"Error: .*\b(?:{'|'.join(OPERATIONS)})\b[^:\n]*: \S[^\n]{{4,}}")
EMULATOR_CREDENTIALS = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "testid", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "testsecret"}

Cli = Callable[..., Any]


def use_emulator_credentials(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """Credentials from the environment only (no profile file), as a CI job has them."""
    monkeypatch.setenv("HOME", str(home))
    for name in ("ALIBABA_CLOUD_PROFILE", "ALIBABA_CLOUD_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in EMULATOR_CREDENTIALS.items():
        monkeypatch.setenv(name, value)


def has_traceback(*streams: str) -> bool:
    return any("Traceback (most recent call last)" in s or "internal error" in s for s in streams)


def is_clean_error(code: int, err: str) -> bool:
    """Exit 1 and exactly one line on stderr naming the operation and the cause."""
    return code == 1 and len(err.splitlines()) == 1 and CLEAN_ERROR.fullmatch(err.rstrip("\n")) is not None


def plan_args(manifests: Path, url: str, timeout: float) -> list[str]:
    return ["plan", str(manifests), "--endpoint", url, "--detailed-exitcode", "-q", "--timeout", str(timeout)]


def fault_free_plan(cli: Cli, state: EmulatorState, manifests: Path) -> tuple[int, str]:
    """Exit code and plan of `manifests` against `state` with no faults: the right answer."""
    with running_emulator(state) as emulator:
        result = cli(*plan_args(manifests, emulator.url, 10.0))
    assert result.err == "", result.err
    return result.code, result.out


def plan_outcome(code: int, out: str, err: str, expected: tuple[int, str]) -> str:
    if has_traceback(out, err):
        return "traceback"
    if (code, out, err) == (*expected, ""):
        return "exact"
    if out == "" and is_clean_error(code, err):
        return "clean error"
    return "wrong answer"


def faults(seed: int, **config: Any) -> FaultConfig:
    return FaultConfig(seed=seed, **config)
