"""Writing what a command produces: to stdout, or atomically to a file."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from reconciler.errors import InputError


def write_atomically(path: Path, text: str) -> None:
    """Temp file + rename in the same folder, so an interrupted run never leaves half a file."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InputError(f"{path}: cannot write: {exc.strerror}") from None
    except BaseException:  # interrupted (Ctrl-C): leave neither half a file nor the temp file
        tmp.unlink(missing_ok=True)
        raise


def write_output(text: str, out_file: Path | None) -> None:
    if out_file is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        write_atomically(out_file, text)

