"""A fetch runs with the cyclic garbage collector off (`reconciler.fetcher.run_fetch`), which costs no
memory only while a request leaves no reference cycle behind: these tests keep it that way."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from reconciler.aliyun.client import ApiClient
from reconciler.aliyun.credentials import Credentials
from reconciler.emulator.server import DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, running_emulator
from reconciler.emulator.state import EmulatorState

CREDENTIALS = Credentials(access_key_id=DEFAULT_ACCESS_KEY_ID, access_key_secret=DEFAULT_ACCESS_KEY_SECRET)
STATE = {"region": "cn-hangzhou", "signatures": [
    {"name": f"sig{i:03d}", "key": f"key{i:03d}", "secret": f"secret{i:03d}"} for i in range(150)]}


@pytest.fixture
def saved_garbage() -> Iterator[list[object]]:
    """What the collector finds unreachable, kept for inspection; the collector is off meanwhile."""
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield gc.garbage
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if enabled:
            gc.enable()


def test_answered_requests_leave_no_cyclic_garbage(saved_garbage: list[object]) -> None:
    with running_emulator(EmulatorState.from_dict(STATE)) as emulator:
        async def read() -> None:
            async with ApiClient(emulator.url, CREDENTIALS) as client:
                await client.call("DescribeSignatures", {"PageSize": 100})  # the pool's first connection
                gc.collect()
                saved_garbage.clear()
                await asyncio.gather(*(client.call("DescribeSignatures", {"PageSize": 100, "PageNumber": n})
                                       for n in (1, 2) * 10))

        asyncio.run(read())
        gc.collect()
    requests_left = [o for o in saved_garbage if type(o).__module__.startswith(("httpx", "aiohttp", "reconciler"))]
    assert requests_left == []

