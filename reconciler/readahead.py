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
  child for good). Otherwise nothing is parsed ahead and loading parses every file, as before.
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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from reconciler.errors import ManifestError, ManifestErrors, ReconcilerError
from reconciler.gcrelax import no_cyclic_collections
from reconciler.manifest import ParsedFile, manifest_paths, parse_manifest
from reconciler.yamlsource import read_yaml_bytes

# Below this, parsing takes less than starting a child and passing the outcomes back.
FORK_FROM_BYTES = 1024 * 1024
# The shared memory a child may fill: an outcome pickles to about twice its file's bytes. Pages that are
# not written take no memory.
_SHARED_PER_BYTE = 4
_SHARED_SLACK = 1024 * 1024
_NOTICE = struct.Struct("=QQ")  # where in the shared memory one outcome lies: offset, length

Outcome = ParsedFile | ManifestError | ManifestErrors


class ReadAhead:
    """The outcomes of the files parsed ahead, by (path, bytes) (`load_desired_state`'s `ahead`)."""

    def __init__(self, files: list[tuple[Path, bytes]]) -> None:
        self._files = files
        self.outcomes: dict[tuple[str, bytes], Outcome] = {}
        self._child: _Child | None = None

    @property
    def forked(self) -> bool:
        """Whether a child parses the files (else loading parses them, in order)."""
        return self._child is not None

    def finish(self) -> None:
        """Take the child's outcomes and parse here, from the last file back, those it has not reached, until
        the two meet; then end the child."""
        child, files = self._child, self._files
        if child is None:
            return
        received, end = 0, len(files)
        with no_cyclic_collections():
            while received < end:
                notices = child.notices(wait=received == end - 1)  # the file left is the child's: wait for it
                if notices is None:  # the child stopped: the rest is parsed here
                    break
                for offset, length in notices:
                    if received < end:
                        self._keep(files[received], pickle.loads(child.shared[offset:offset + length]))
                    received += 1
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
        self.outcomes[(str(path), raw)] = outcome

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
    ahead = ReadAhead([])
    try:
        if _may_fork():
            files = _files_to_parse(head, base)
            if sum(len(raw) for _, raw in files) >= FORK_FROM_BYTES:
                ahead = ReadAhead(files)
                ahead._child = _Child.fork(files)  # None when the system refuses: parsed in order here
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


def _files_to_parse(head: Sequence[Path], base: Sequence[Path]) -> list[tuple[Path, bytes]]:
    """The manifest files of `head`, then of `base`, with their bytes; a path or file that cannot be read is left
    out (loading reports it, in its place)."""
    files: list[tuple[Path, bytes]] = []
    head_files: set[tuple[str, bytes]] = set()
    for paths, is_head in ((head, True), (base, False)):
        if not paths:
            continue
        try:
            found = manifest_paths(paths)
        except ReconcilerError:
            continue
        for path in found:
            try:
                raw = read_yaml_bytes(path)
            except ManifestError:
                continue
            if is_head:
                head_files.add((path.name, raw))
            elif (path.name, raw) in head_files:  # loaded as the head's file (`ParsedFiles`)
                continue
            files.append((path, raw))
    return files


class _Child:
    """The forked child process, the shared memory it writes the outcomes to, and the pipe of its notices."""

    def __init__(self, pid: int, notices: int, shared: mmap.mmap) -> None:
        self.pid = pid
        self._notices = notices
        self._unread = b""
        self.shared = shared

    @classmethod
    def fork(cls, files: list[tuple[Path, bytes]]) -> _Child | None:
        try:
            shared = mmap.mmap(-1, _SHARED_PER_BYTE * sum(len(raw) for _, raw in files) + _SHARED_SLACK)
        except OSError:
            return None
        read_end, write_end = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            for end in (read_end, write_end):
                os.close(end)
            shared.close()
            return None
        if pid == 0:
            try:
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                os.close(read_end)
                _parse_in_order(files, shared, write_end)
            finally:
                os._exit(0)
        os.close(write_end)
        return cls(pid, read_end, shared)

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
        os.close(self._notices)
        self.shared.close()


def _parse_in_order(files: list[tuple[Path, bytes]], shared: mmap.mmap, notices: int) -> None:
    """The child's work: each file's outcome pickled into `shared`, and a notice of where; it stops at the first
    outcome that does not fit, or that is not a value or a ManifestError(s)."""
    gc.disable()  # the child only builds what it sends, and ends
    offset = 0
    for path, raw in files:
        outcome: Outcome
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
