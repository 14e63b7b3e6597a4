"""A class of warning that repeats in a file is one line with a count; --debug lists each."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.cli import CliResult


def literal_secrets(count: int, first: int = 0) -> str:
    return "region: cn-hangzhou\nsignatures:\n" + "".join(
        f"  - name: backend_{i:03d}\n    key: backendKey{i:03d}\n    secret: plainSecret{i:03d}\n"
        for i in range(first, first + count))


@pytest.fixture(autouse=True)
def _quiet_root_logger() -> None:
    """--debug configures the root logger for the rest of the process; put it back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:], root.level = handlers, level


def test_three_hundred_literal_secrets_are_one_line(cli: Callable[..., CliResult],
                                                   write: Callable[[str, str], Path]) -> None:
    path = write("m.yaml", literal_secrets(300))
    result = cli("validate", str(path))
    assert result.code == 0
    assert result.err == (f"Warning: {path}: literal secret in 300 places (first: line 5, signatures[0].secret); "
                          "use ${env:VARIABLE} so the secret is not kept in the repository (--debug lists each)\n")
    assert "plainSecret" not in result.out + result.err


def test_one_line_per_file(cli: Callable[..., CliResult], write: Callable[[str, str], Path]) -> None:
    a = write("a.yaml", literal_secrets(2))
    b = write("b.yaml", literal_secrets(1, first=2))
    result = cli("validate", str(a), str(b))
    assert result.err.splitlines() == [
        f"Warning: {a}: literal secret in 2 places (first: line 5, signatures[0].secret); use ${{env:VARIABLE}} so "
        "the secret is not kept in the repository (--debug lists each)",
        f"Warning: {b}:5: signatures[0].secret: literal secret; use ${{env:VARIABLE}} so the secret is not kept "
        "in the repository",
    ]


def test_debug_lists_each(cli: Callable[..., CliResult], write: Callable[[str, str], Path]) -> None:
    path = write("m.yaml", literal_secrets(3))
    result = cli("--debug", "validate", str(path))
    warnings = [line for line in result.err.splitlines() if line.startswith("Warning: ")]
    assert warnings == [f"Warning: {path}:{5 + 3 * i}: signatures[{i}].secret: literal secret; use ${{env:VARIABLE}} "
                        "so the secret is not kept in the repository" for i in range(3)]
