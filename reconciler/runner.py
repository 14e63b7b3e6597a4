"""How the process runs its asynchronous work: plan, apply, export and scan each run one coroutine with
`run_async`.

Conventions every run keeps:

- `run_async` leaves no cost that grows with the result: before CPython 3.13, when `asyncio.run`
  returns, `signal.signal` builds the repr of the previous SIGINT handler, which holds the main task,
  whose repr holds its result (seconds for a large snapshot). There the main task returns nothing; the
  result travels beside it. No cyclic collection runs meanwhile: a request leaves no cyclic garbage,
  and what is built lives as long as the command (see `gcrelax`). Figures: "Profile notes" in
  benchmarks/README.md.
- Without `on_signal`, SIGINT and SIGTERM keep the process's handlers (`KeyboardInterrupt`, the
  command's clean exit on SIGTERM): a read is simply cut short. With it, both only call `on_signal`
  while the coroutine runs (apply's writes: no new step starts), and the command's handlers come back
  afterwards (asyncio alone would put back Python's defaults).
- Work started beside other work is cancelled and awaited when that other work fails
  (`cancelled_on_failure`), so no request is left running behind an error.
- `plan` over the network runs its fetch in an event loop of a thread of its own (`live.EarlyRead`), so
  that it starts while the manifests load. Signals still go to the main thread, which, leaving that read
  for any reason (an error, `KeyboardInterrupt`, `Terminated`), cancels the loop's work and joins the
  thread; no collection runs meanwhile either (`planning.read_early`).
- `--concurrency` is checked once, where it is read (the option's type: 1 to `MAX_CONCURRENCY`);
  below the command line it is trusted.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

from reconciler.gcrelax import no_cyclic_collections

ResultT = TypeVar("ResultT")


def run_async(main: Coroutine[Any, Any, ResultT], *,
        on_signal: Callable[[signal.Signals], None] | None = None) -> ResultT:
    """`asyncio.run(main)` with the process's conventions (see the module docstring)."""

    async def task() -> ResultT:
        if on_signal is None:
            return await main
        with _signals_call(on_signal):
            return await main

    with no_cyclic_collections():
        if sys.version_info >= (3, 13):
            return asyncio.run(task())
        results: list[ResultT] = []

        async def beside() -> None:
            results.append(await task())

        asyncio.run(beside())
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
