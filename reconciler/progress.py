"""Progress of a long fetch on stderr, for people watching a terminal (never in CI logs)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from reconciler.fetcher import PageProgress


class TerminalProgress:
    """`Reading live state: 120/2000 pages` on one rewritten line, only on a terminal, at most 10 times a second."""

    def __init__(self, stream: TextIO | None) -> None:
        self._stream = stream
        self._last = 0.0
        self._shown = False
        self.tracker = PageProgress(self._report if stream is not None else None)

    def _report(self, done: int, known: int) -> None:
        now = time.monotonic()
        if self._stream is None or (now - self._last < 0.1 and done < known):
            return
        self._last = now
        self._shown = True
        self._stream.write(f"\rReading live state: {done}/{known} pages")
        self._stream.flush()

    def close(self) -> None:
        if self._stream is not None and self._shown:
            self._stream.write("\r\x1b[K")
            self._stream.flush()


@contextmanager
def progress_on_stderr(quiet: bool) -> Iterator[PageProgress]:
    """A page tracker that shows progress on stderr when it is a terminal (and not --quiet), cleared at the end."""
    progress = TerminalProgress(sys.stderr if not quiet and sys.stderr.isatty() else None)
    try:
        yield progress.tracker
    finally:
        progress.close()
