"""Prints the fault-run table after the session, through the terminal reporter (so it shows without -s)."""

from __future__ import annotations

import pytest

from .tally import TALLY


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TALLY.counts:
        return
    terminalreporter.write_sep("=", "reliability: outcome of every run under injected faults")
    for line in TALLY.table():
        terminalreporter.write_line(line)
