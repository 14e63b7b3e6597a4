"""How the process runs its asynchronous work: plan, apply, export and scan each run one coroutine with
`run_async`.

Conventions every run keeps:

- `run_async` leaves no cost that grows with the result: on CPython 3.11, when `asyncio.run` returns,
  `signal.signal` builds the repr of the previous SIGINT handler, which holds the main task, whose repr
  holds its result (seconds for a large snapshot). The main task here returns nothing; the result
  travels beside it. The cyclic GC runs less often meanwhile (see `gcrelax`). Figures: "Profile notes"
  in benchmarks/README.md.
- Without `on_signal`, SIGINT and SIGTERM keep the process's handlers (`KeyboardInterrupt`, the
  command's clean exit on SIGTERM): a read is simply cut short. With it, both only call `on_signal`
  while the coroutine runs (apply's writes: no new step starts), and the command's handlers come back
  afterwards (asyncio alone would put back Python's defaults).
- Work started beside other work is cancelled and awaited when that other work fails
  (`cancelled_on_failure`), so no request is left running behind an error.
- `--concurrency` is checked once, where it is read (the option's type: 1 to `MAX_CONCURRENCY`);
  below the command line it is trusted.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

from reconciler.gcrelax import fewer_cyclic_collections

ResultT = TypeVar("ResultT")


def run_async(main: Coroutine[Any, Any, ResultT], *,
        on_signal: Callable[[signal.Signals], None] | None = None) -> ResultT:
    """`asyncio.run(main)` with the process's conventions (see the module docstring)."""
    results: list[ResultT] = []

    async def task() -> None:
        if on_signal is None:
            results.append(await main)
            return
        with _signals_call(on_signal):
            results.append(await main)

    with fewer_cyclic_collections():
        asyncio.run(task())
    return results[0]


@contextmanager
def _signals_call(on_signal: Callable[[signal.Signals], None]) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    installed: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():  # the only thread that receives signals
        for each in (signal.SIGINT, signal.SIGTERM):
            installed[each] = signal.getsignal(each)
            loop.add_signal_handler(each, on_signal, each)
    try:
        yield
    finally:
        for each, previous in installed.items():
            loop.remove_signal_handler(each)
            signal.signal(each, previous)


@asynccontextmanager
async def cancelled_on_failure(tasks: list[asyncio.Future[Any]]) -> AsyncIterator[None]:
    """If the block fails, cancel `tasks` (including those added to the list inside it) and wait for them."""
    try:
        yield
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
