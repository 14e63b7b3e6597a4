"""Fixtures every test folder shares; the helpers and data they build on are in tests/support/."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli import run
from tests.reliability.tally import TALLY
from tests.support.cli import QUICK_RETRIES, CliResult
from tests.support.prewarmed import Prewarmed


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., CliResult]:
    """Run the real command line in-process; returns exit code, stdout and stderr."""

    def invoke(*args: str, env: dict[str, str] | None = None) -> CliResult:
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        capsys.readouterr()
        code = run(list(args))
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return invoke


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short retry waits for the CLI run in-process and for every child process that inherits the environment."""
    for name, value in QUICK_RETRIES.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="session")
def prewarmed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prewarmed]:
    """`python -m reconciler` without its start-up, for the tests that run it as a process of its own."""
    with Prewarmed(tmp_path_factory.mktemp("prewarmed")) as server:
        yield server


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    def write_file(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return write_file


def pytest_sessionfinish(session: pytest.Session) -> None:
    worker_output = getattr(session.config, "workeroutput", None)  # set in a pytest-xdist worker
    if worker_output is not None:
        worker_output["fault_tally"] = TALLY.as_dict()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """pytest-xdist: a worker finished; its fault runs count in the table the controller prints."""
    TALLY.merge(getattr(node, "workeroutput", {}).get("fault_tally", {}))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The outcome of every fault run (tests/reliability/test_faults.py), through the terminal reporter so that
    it shows without -s."""
    if not TALLY.counts:
        return
    terminalreporter.write_sep("=", "reliability: outcome of every run under injected faults")
    for line in TALLY.table():
        terminalreporter.write_line(line)
