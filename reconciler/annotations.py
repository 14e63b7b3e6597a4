"""GitHub Actions annotations: a manifest error also shown on the file and line of a pull request's diff.

GitHub reads workflow commands (`::error file=F,line=L,title=T::MESSAGE`) from a step's stdout. The
CLI prints one, besides its usual one line on stderr, when `GITHUB_ACTIONS` is `true` (which the
runner sets) and the error names a manifest file. Only errors: a command that fails has written
nothing else to stdout, so `-o json` on stdout is never mixed with a workflow command.

Values in an error come from a pull request (file names, keys, values). They are escaped twice over:
first to one inert line (`reconciler.inert`: no control character reaches the log, where the runner
would draw ANSI colours), then by GitHub's own rules for workflow commands (those of `@actions/core`:
`%`, CR and LF in the message and in properties, and also `:` and `,` in properties), so nothing in a
value can end the command, add a property or start a second one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from reconciler.errors import ManifestError
from reconciler.inert import inert


def in_github_actions(environ: Mapping[str, str]) -> bool:
    return environ.get("GITHUB_ACTIONS") == "true"


def _escape_data(text: str) -> str:
    return inert(text).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _repository_path(file: str, workspace: str | None) -> str:
    """Annotations attach to paths relative to the checkout; a path outside it is kept as given."""
    path = Path(file)
    if workspace and path.is_absolute():
        try:
            return path.relative_to(workspace).as_posix()
        except ValueError:
            return file
    return path.as_posix()


def error_annotation(error: ManifestError, workspace: str | None) -> str:
    """The `::error` workflow command for a manifest error."""
    properties = [f"file={_escape_property(_repository_path(error.file, workspace))}"]
    if error.line is not None:
        properties.append(f"line={error.line}")
    title = f"reconciler: {error.field}" if error.field else "reconciler"
    properties.append(f"title={_escape_property(title)}")
    return f"::error {','.join(properties)}::{_escape_data(error.reason)}"
