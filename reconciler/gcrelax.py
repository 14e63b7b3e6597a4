"""Fewer cyclic garbage collections around work that builds large, mostly acyclic structures."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# Young objects allocated between two collections of the youngest generation (Python's default: 700).
RELAXED_THRESHOLD = 20_000


@contextmanager
def fewer_cyclic_collections() -> Iterator[None]:
    """Collect the youngest generation every 20,000 allocations instead of every 700.

    Building a large plan, the default collector spends CPU re-scanning young objects that all survive.
    Unlike `no_cyclic_collections`, cycles made meanwhile are still collected, and what was built is not
    frozen. Measured to help on CPython 3.11, 3.12 and 3.13 alike (figures: "Profile notes" in
    benchmarks/README.md), so it applies on every version.
    """
    threshold = gc.get_threshold()
    gc.set_threshold(max(threshold[0], RELAXED_THRESHOLD), *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)


@contextmanager
def no_cyclic_collections() -> Iterator[None]:
    """No cyclic collection at all, for work that allocates millions of objects and makes no cycles.

    Loading 40,000 manifest entries allocates about three million objects; even relaxed, the collector
    re-scanned the growing heap and took a fifth of the load. A fetch makes no cycles either (a request
    leaves no cyclic garbage), so it costs no memory there; it helps most before CPython 3.13
    (figures: "Profile notes" in benchmarks/README.md).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        # What was built lives as long as the command: later collections need not re-scan it (after
        # loading 200,000 bindings, each full collection took about 0.15 s of a --changed-only plan).
        gc.freeze()
        if enabled:
            gc.enable()
