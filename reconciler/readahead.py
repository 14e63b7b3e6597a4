"""Manifests parsed in a child process while this one does other work.

A pull request's `plan` imports the API client, reads the base from git and parses megabytes of
manifests; the first two do not need the third, and the machines it runs on (CI runners, laptops) have
two cores or more. `read_ahead` forks a child process that parses and validates the manifest files in
order (`manifest.parse_manifest`) and hands each outcome back pickled, the ManifestError(s) of a broken
file too. This process goes on with its own work; `finish`, called when it is free, takes what the
child has sent, parses the files the child has not reached itself, from the last one back, until the
two meet, and ends the child. Loading (`load_desired_state(..., ahead=...)`) takes each outcome as if
the file were parsed there, in order: every value, line and error is the one parsing in order gives.

Design notes:
- Forked only where it pays and is safe: on Linux (where a fork without exec is cheap and the libraries
  loaded by then are safe in the child), with at least `FORK_FROM_BYTES` of manifests, and never in a
  process where another thread runs (a thread holding a lock at the fork would leave it held in the
  child for good; threads started after the fork, such as the one reading a base from git, do no harm).
  Otherwise nothing is parsed ahead and loading parses every file, as before.
- Files whose bytes are known only later (a base read from git) are sent to the child by name (`add`);
  it parses them after the others.
- The outcomes come back through shared memory, with a notice on a pipe for each: a pipe's buffer holds
  a fraction of one file's outcome, so the child would wait on this process. An outcome that does not
  fit, or a child that stops for any other reason, leaves its files to this process.
- Nothing is left running: the child is killed and reaped when `read_ahead` exits, whether on success,
  an error, Ctrl-C or SIGTERM. It dies of SIGINT and SIGTERM at once, ends on its own after the last
  file, and never runs this process's exit handlers or flushes its output (`os._exit`).
"""

from __future__ import annotations

import gc
import mmap
import os
import pickle
import select
import signal
import struct
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from reconciler.errors import ManifestError, ManifestErrors, ReconcilerError
from reconciler.gcrelax import no_cyclic_collections
from reconciler.manifest import ParsedFile, manifest_paths, parse_manifest
from reconciler.yamlsource import MAX_FILE_BYTES, read_yaml_bytes

# Below this, parsing takes less than starting a child and passing the outcomes back.
FORK_FROM_BYTES = 1024 * 1024
# The shared memory a child may fill: an outcome pickles to about twice its file's bytes. Pages that are
# not written take no memory.
_SHARED_PER_BYTE = 4
_SHARED_SLACK = 1024 * 1024
_NOTICE = struct.Struct("=QQ")  # where in the shared memory one outcome lies: offset, length

Outcome = ParsedFile | ManifestError | ManifestErrors


class ReadAhead:
    """The files read ahead, by path: their bytes and, once parsed, the outcome (`load_desired_state`'s `ahead`)."""

    def __init__(self, files: list[tuple[Path, bytes]], head: set[tuple[str, bytes]]) -> None:
        self._files = files
        self._head = head  # (name, bytes) of the head's files: a base's file the same is loaded as the head's
        self.outcomes: dict[str, tuple[bytes, Outcome | None]] = {}
        self._child: _Child | None = None

    @property
    def forked(self) -> bool:
        """Whether a child parses the files (else loading parses them, in order)."""
        return self._child is not None

    def add(self, base: Mapping[Path, bytes]) -> None:
        """Have the child parse the manifest files `base` (path: bytes) too, those not the same as one of the
        head's, once it has parsed the others: for a base whose files were not there when it was forked (read
        from git since)."""
        if self._child is None:
            return
        for path, raw in base.items():
            if len(raw) > MAX_FILE_BYTES:  # refused when loaded, as read from the folder
                continue
            self.outcomes[str(path)] = (raw, None)
            if (path.name, raw) not in self._head and self._child.send(path):
                self._files.append((path, raw))

    def finish(self) -> None:
        """Take the child's outcomes and parse here, from the last file back, those it has not reached, until
        the two meet; then end the child."""
        child, files = self._child, self._files
        if child is None:
            return
        child.sent_all()
        received, end = 0, len(files)
        with no_cyclic_collections():
            while received < end:
                notices = child.notices(wait=received == end - 1)  # the file left is the child's: wait for it
                if notices is None:  # the child stopped: the rest is parsed here
                    break
                for offset, length in notices:
                    if received < end and length:  # nothing: the child could not read the file
                        self._keep(files[received], pickle.loads(child.shared[offset:offset + length]))
                    received += 1
                if notices:  # more may have come meanwhile: taken before parsing a file here
                    continue
                if received < end - 1:
                    end -= 1
                    self._parse_here(files[end])
            for file in files[received:end]:
                self._parse_here(file)
        self.close()

    def close(self) -> None:
        if self._child is not None:
            self._child.end()
            self._child = None

    def _keep(self, file: tuple[Path, bytes], outcome: Outcome) -> None:
        path, raw = file
        self.outcomes[str(path)] = (raw, outcome)

    def _parse_here(self, file: tuple[Path, bytes]) -> None:
        try:
            self._keep(file, parse_manifest(*file))
        except (ManifestError, ManifestErrors) as exc:
            self._keep(file, exc)
        except Exception:  # loading meets it again, in its turn, and reports it as it would
            pass


@contextmanager
def read_ahead(head: Sequence[Path], base: Sequence[Path] = ()) -> Iterator[ReadAhead]:
    """Parse the manifests of `head` (and then of `base`, those not the same name and bytes as one of the
    head's) in a child process, where that pays (see the module docstring); the child is ended on exit."""
    ahead = ReadAhead([], set())
    try:
        if _may_fork():
            files = _manifest_files(head)
            head_files = {(path.name, raw) for path, raw in files}
            base_files = _manifest_files(base)
            files += [(path, raw) for path, raw in base_files if (path.name, raw) not in head_files]
            if sum(len(raw) for _, raw in files) >= FORK_FROM_BYTES:
                ahead = ReadAhead(files, head_files)
                ahead._child = _Child.fork(files)  # None when the system refuses: parsed in order here
            if ahead.forked:  # read once: loading takes their bytes from here
                ahead.outcomes.update((str(path), (raw, None)) for path, raw in (*files, *base_files))
        yield ahead
    finally:
        ahead.close()


def _may_fork() -> bool:
    if sys.platform != "linux" or threading.active_count() > 1:
        return False
    try:  # threads started outside Python (by an extension) count too
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


def _manifest_files(paths: Sequence[Path]) -> list[tuple[Path, bytes]]:
    """The manifest files of `paths` with their bytes; a path or file that cannot be read is left out (loading
    reports it, in its turn)."""
    if not paths:
        return []
    try:
        found = manifest_paths(paths)
    except ReconcilerError:
        return []
    files: list[tuple[Path, bytes]] = []
    for path in found:
        try:
            files.append((path, read_yaml_bytes(path)))
        except ManifestError:
            continue
    return files


class _Child:
    """The forked child process, the shared memory it writes the outcomes to, the pipe of its notices and the
    pipe of the files it is sent later."""

    def __init__(self, pid: int, notices: int, more: int | None, shared: mmap.mmap) -> None:
        self.pid = pid
        self._notices = notices
        self._unread = b""
        self._more = more
        self.shared = shared

    @classmethod
    def fork(cls, files: list[tuple[Path, bytes]]) -> _Child | None:
        try:
            shared = mmap.mmap(-1, _SHARED_PER_BYTE * sum(len(raw) for _, raw in files) + _SHARED_SLACK)
        except OSError:
            return None
        pipes: list[int] = []
        try:
            pipes += os.pipe()
            pipes += os.pipe()
            pid = os.fork()
        except OSError:
            for end in pipes:
                os.close(end)
            shared.close()
            return None
        notices_read, notices_write, more_read, more_write = pipes
        if pid == 0:
            try:
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                os.close(notices_read)
                os.close(more_write)
                _parse_in_order(files, more_read, shared, notices_write)
            finally:
                os._exit(0)
        os.close(notices_write)
        os.close(more_read)
        os.set_blocking(more_write, False)
        return cls(pid, notices_read, more_write, shared)

    def send(self, path: Path) -> bool:
        """Send the child one more file to parse; False when it cannot take it now (never waiting for it)."""
        message = os.fsencode(path) + b"\0"
        if self._more is None or len(message) > select.PIPE_BUF:
            return False
        try:
            return os.write(self._more, message) == len(message)  # one write of at most PIPE_BUF: all or nothing
        except OSError:  # full for now (BlockingIOError), or the child has gone: left to loading
            return False

    def sent_all(self) -> None:
        if self._more is not None:
            os.close(self._more)
            self._more = None

    def notices(self, *, wait: bool) -> list[tuple[int, int]] | None:
        """The notices sent since the last call (waiting for one when `wait`); None when the child has stopped."""
        if not wait and not select.select([self._notices], [], [], 0)[0]:
            return []
        data = os.read(self._notices, 64 * _NOTICE.size)
        if not data:
            return None
        data = self._unread + data
        whole = len(data) - len(data) % _NOTICE.size
        self._unread = data[whole:]
        return [_NOTICE.unpack_from(data, at) for at in range(0, whole, _NOTICE.size)]

    def end(self) -> None:
        with suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        with suppress(ChildProcessError):  # reaped already
            os.waitpid(self.pid, 0)
        self.sent_all()
        os.close(self._notices)
        self.shared.close()


def _parse_in_order(files: list[tuple[Path, bytes]], more: int, shared: mmap.mmap, notices: int) -> None:
    """The child's work: each file's outcome pickled into `shared` and a notice of where, for `files` and then for
    each file named on the pipe `more` until it is closed. It stops at the first outcome that does not fit, or
    that is not a value or a ManifestError(s); a file named that it cannot read gets an empty notice."""
    gc.disable()  # the child only builds what it sends, and ends
    offset = 0
    for path, raw in _then_those_sent(files, more):
        outcome: Outcome
        if raw is None:
            os.write(notices, _NOTICE.pack(0, 0))
            continue
        try:
            outcome = parse_manifest(path, raw)
        except (ManifestError, ManifestErrors) as exc:
            outcome = exc
        data = pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL)
        if offset + len(data) > len(shared):
            return
        shared[offset:offset + len(data)] = data
        os.write(notices, _NOTICE.pack(offset, len(data)))
        offset += len(data)


def _then_those_sent(files: list[tuple[Path, bytes]], more: int) -> Iterator[tuple[Path, bytes | None]]:
    """`files`, then each file named on the pipe `more` as soon as its name arrives, until the pipe is closed."""
    yield from files
    unread = b""
    while data := os.read(more, 4096):
        *names, unread = (unread + data).split(b"\0")
        for name in names:
            path = Path(os.fsdecode(name))
            try:
                yield path, read_yaml_bytes(path)
            except ManifestError:
                yield path, None
