"""Errors a user can cause or meet. The CLI turns each into one line on stderr and exit code 1."""

from __future__ import annotations


class ReconcilerError(Exception):
    """Base of every error the CLI reports as one line (never a traceback)."""


class InputError(ReconcilerError):
    """Bad input from the user: a manifest, a snapshot, an option or a state file."""


class ManifestError(InputError):
    """A manifest breaks a rule; the message names file, line and field."""

    def __init__(self, file: str, line: int | None, field: str | None, message: str) -> None:
        self.file = file
        self.line = line
        self.field = field
        self.reason = message
        where = f"{file}:{line}" if line is not None else file
        what = f" {field}:" if field else ""
        super().__init__(f"{where}:{what} {message}")
