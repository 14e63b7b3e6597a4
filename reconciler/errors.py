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

    def __reduce__(self) -> tuple[type[ManifestError], tuple[str, int | None, str | None, str]]:
        # Pickled as built (manifests parsed in a child process come back this way), not from `args`.
        return type(self), (self.file, self.line, self.field, self.reason)


# A run with hundreds of broken entries (a bad search-and-replace) lists this many, then a count.
MAX_REPORTED_ERRORS = 20


class ManifestErrors(InputError):
    """Several independent manifest errors, found in one pass over every file (validate reports them all).

    `str()` is still one line (the first error and how many more), for callers that wrap an error in
    another; the CLI prints `lines()`, one error a line.
    """

    def __init__(self, errors: list[ManifestError]) -> None:
        self.errors = errors
        more = f" (and {len(errors) - 1} more error(s))" if len(errors) > 1 else ""
        super().__init__(f"{errors[0]}{more}")

    def __reduce__(self) -> tuple[type[ManifestErrors], tuple[list[ManifestError]]]:
        return type(self), (self.errors,)

    def reported(self) -> list[ManifestError]:
        return self.errors[:MAX_REPORTED_ERRORS]

    def unreported(self) -> int:
        return max(0, len(self.errors) - MAX_REPORTED_ERRORS)


def raise_collected(errors: list[ManifestError]) -> None:
    """Raise what was collected: nothing, the one error as it is, or all of them together."""
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ManifestErrors(errors)
