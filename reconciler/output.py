"""Writing what a command produces: to stdout, or atomically to files.

Design notes:
- A temporary file is created with `tempfile.mkstemp` in the target's folder: a random name opened
  with O_CREAT|O_EXCL, mode 0600, so a file or symlink planted at a predictable name is never
  followed or written through, and nothing is readable by others while it is being written.
- Modes: a file that holds secrets (`secret=True`) ends 0600, or stricter when the file it replaces
  was stricter (0400 stays 0400). Any other file keeps the mode of the file it replaces, and a new
  one gets 0666 less the umask, as `open()` would have given it.
- Several files (`write_files_atomically`) are all or nothing: every temporary file is written
  first, then each old file is kept under a hard link while the new ones are renamed into place; on
  any failure (or Ctrl-C, or SIGTERM, which the CLI turns into an exception) the renamed ones are
  put back and every temporary file is removed.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from reconciler.errors import InputError

SECRET_FILE_MODE = 0o600


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _final_mode(path: Path, *, secret: bool) -> int:
    try:
        existing = os.stat(path)
    except OSError:
        existing = None
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        existing = None
    old_mode = stat.S_IMODE(existing.st_mode) if existing is not None else None
    if secret:
        return SECRET_FILE_MODE if old_mode is None else old_mode & SECRET_FILE_MODE
    return old_mode if old_mode is not None else 0o666 & ~_current_umask()


def _write_temp(path: Path, text: str, *, secret: bool) -> Path:
    """A complete temporary file beside `path`, with the mode `path` will have; its name is returned."""
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise InputError(f"{path}: cannot write: {exc.strerror}") from None
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
            os.fchmod(handle.fileno(), _final_mode(path, secret=secret))
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InputError(f"{path}: cannot write: {exc.strerror}") from None
    except BaseException:  # interrupted (Ctrl-C, SIGTERM): leave no temporary file
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def write_atomically(path: Path, text: str, *, secret: bool = False) -> None:
    """Temp file + rename in the same folder, so an interrupted run never leaves half a file."""
    write_files_atomically([(path, text)], secret=secret)


def write_files_atomically(files: Sequence[tuple[Path, str]], *, secret: bool = False) -> None:
    """Write every file, or (on any failure or interruption) none: the old files stay as they were."""
    for path, _ in files:
        if path.is_dir():
            raise InputError(f"{path}: cannot write: it is a folder")
    temps: list[Path] = []
    backups: dict[Path, Path | None] = {}  # target -> hard link to its old content (None: it did not exist)
    replaced: list[Path] = []
    done = False
    try:
        for path, text in files:
            temps.append(_write_temp(path, text, secret=secret))
        for path, _ in files:
            backups[path] = _keep_old(path)
        for (path, _), tmp in zip(files, temps, strict=True):
            replaced.append(path)  # before the rename: a signal may land right after it
            try:
                os.replace(tmp, path)
            except OSError as exc:
                raise InputError(f"{path}: cannot write: {exc.strerror}") from None
        done = True
    finally:
        if not done:
            for path, tmp in zip(reversed(replaced), reversed(temps[:len(replaced)]), strict=True):
                old = backups.get(path)
                with contextlib.suppress(OSError):
                    if old is not None:
                        os.replace(old, path)
                    elif not tmp.exists():  # it was renamed into place: there was no file before
                        path.unlink()
        for leftover in [*temps, *(b for b in backups.values() if b is not None)]:
            with contextlib.suppress(OSError):
                leftover.unlink()


def _keep_old(path: Path) -> Path | None:
    """A hard link to the file at `path` under a fresh name (None when there is no file there)."""
    if not os.path.lexists(path):
        return None
    for _ in range(100):
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent)
        os.close(fd)
        os.unlink(name)  # only the fresh, unpredictable name is wanted; os.link will not overwrite
        try:
            os.link(path, name, follow_symlinks=False)
            return Path(name)
        except FileExistsError:
            continue
        except OSError as exc:
            raise InputError(f"{path}: cannot keep the old file while writing the new one: {exc.strerror}") from None
    raise InputError(f"{path}: cannot keep the old file while writing the new one")


def write_output(text: str, out_file: Path | None, *, secret: bool = False) -> None:
    if out_file is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        write_atomically(out_file, text, secret=secret)
