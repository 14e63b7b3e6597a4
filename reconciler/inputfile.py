"""Reading a file the user named (or a pull request added), bounded and without surprises.

Every input file goes through `read_input`: manifests, `--env-file`, `--snapshot`, `--plan-file`,
`--emulator` and `emulator --state` files.

Design notes:
- Only regular files are read. A FIFO, socket or device is refused on `lstat`/`stat`, before it is
  opened (opening a FIFO blocks until a writer comes); the file is then opened with O_NONBLOCK and
  checked again with `fstat`, so one swapped in between is refused as well.
- The size bound counts bytes actually read (at most `limit + 1`), not `st_size`: `/dev/zero`,
  a file in /proc or one that grows while read all end at the bound.
- A symbolic link is followed only when its target lies inside `root` (the folder given, for a
  file found in it) and inside the git work tree the link is in. Otherwise it is refused without
  being read, so that a pull request cannot add `manifests/x.yaml -> ~/.aliyun/config.json` and
  have the file's content echoed into an error that CI posts publicly.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from reconciler.errors import InputError

_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device", stat.S_IFDIR: "a folder"}


class InputFileError(InputError):
    """An input file cannot be read safely; `reason` is the message without the file's name."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


def _kind(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def work_tree_of(path: Path) -> Path | None:
    """The git work tree `path` lies in (the nearest folder above it holding `.git`), if any."""
    for folder in Path(os.path.abspath(path)).parents:
        if (folder / ".git").exists():
            return folder
    return None


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_link(path: Path, root: Path | None) -> None:
    """Refuse `path` when it is a symbolic link whose target is outside `root` or its git work tree."""
    if not path.is_symlink():
        return
    target = path.resolve()
    tree = work_tree_of(path)
    allowed = [f.resolve() for f in (root, tree) if f is not None] or [Path(os.path.abspath(path)).parent.resolve()]
    outside = next((f for f in allowed if not _inside(target, f)), None)
    if outside is not None:
        raise InputFileError(path, f"is a symbolic link to a file outside {outside}; refused without reading it")


def read_input(path: Path, *, limit: int, what: str, root: Path | None = None) -> bytes:
    """The bytes of the regular file `path`, refused (InputFileError) past `limit` bytes; `what` names
    the kind of file in messages ("manifest")."""
    fd = _open_regular(path, what=what, root=root, limit=limit)
    try:
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise InputFileError(path, f"file is more than {limit} bytes; {what}s larger than that are refused")
        return b"".join(chunks)
    except OSError as exc:
        raise InputFileError(path, f"cannot read {what}: {exc.strerror}") from None
    finally:
        os.close(fd)


def read_input_head(path: Path, size: int, *, what: str, root: Path | None = None) -> bytes:
    """The first `size` bytes (at most) of the regular file `path`, with the rails of `read_input` but its
    bound on the whole file's size: for a look at the start of a file before it is read whole."""
    fd = _open_regular(path, what=what, root=root, limit=None)
    try:
        return os.read(fd, size)
    except OSError as exc:
        raise InputFileError(path, f"cannot read {what}: {exc.strerror}") from None
    finally:
        os.close(fd)


def _open_regular(path: Path, *, what: str, root: Path | None, limit: int | None) -> int:
    """A descriptor of `path` open for reading, once it is known to be a regular file (before opening and after)
    no larger than `limit` bytes, and a link that may be followed (`check_link`)."""
    try:
        check_link(path, root)
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise InputFileError(path, f"is {_kind(info.st_mode)}, not a regular file; refused")
        if limit is not None and info.st_size > limit:
            raise InputFileError(path, f"file is {info.st_size} bytes; {what}s larger than {limit} bytes "
                                       f"are refused")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except InputFileError:
        raise
    except OSError as exc:
        raise InputFileError(path, f"cannot read {what}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InputFileError(path, f"is {_kind(info.st_mode)}, not a regular file; refused")
    except OSError as exc:
        os.close(fd)
        raise InputFileError(path, f"cannot read {what}: {exc.strerror}") from None
    except InputFileError:
        os.close(fd)
        raise
    return fd


def read_input_text(path: Path, *, limit: int, what: str, root: Path | None = None) -> str:
    """`read_input` decoded as UTF-8; text that is not UTF-8 is one InputFileError naming the line."""
    raw = read_input(path, limit=limit, what=what, root=root)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputFileError(f"{path}:{line}", f"{what} is not UTF-8 text") from None
