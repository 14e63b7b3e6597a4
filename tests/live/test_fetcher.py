"""The fetcher against the emulator over real HTTP: exact paging, consistency checks, bounded concurrency."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import httpx
import pytest

from reconciler.aliyun.client import ApiClient
from reconciler.aliyun.credentials import Credentials
from reconciler.aliyun.errors import TransportError
from reconciler.aliyun.transport import http_transport
from reconciler.emulator.faults import FaultConfig
from reconciler.emulator.server import RunningEmulator, running_emulator
from reconciler.emulator.state import EmulatorState
from reconciler.fetcher import MAX_REREADS, Fetcher, FetchTarget, InconsistentReadError, Slots, fetch_snapshots
from reconciler.snapshot import BindingScope, Snapshot
from tests.support.cli import CliResult
from tests.support.counting import CountingTransport
from tests.support.emulator import make_state
from tests.support.paths import ROOT

CREDENTIALS = Credentials(access_key_id="testid", access_key_secret="testsecret")
T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def group_id(state: EmulatorState, name: str = "g0") -> str:
    groups, _ = state.describe_api_groups(None, name, 1, 1)
    return groups[0].id


def api_ids(state: EmulatorState, group: str) -> list[str]:
    apis, _ = state.describe_apis(group, None, None, 1, 1000)
    return [a.id for a in apis]


async def read_with(emulator: RunningEmulator, read: Callable[[Fetcher], Coroutine[Any, Any, T]], *,
                    transport: httpx.AsyncBaseTransport | None = None, concurrency: int = 16) -> tuple[T, int]:
    """What `read` returns from a fresh client and fetcher, and how many HTTP requests it took (retries wait
    at most a few milliseconds: a garbled page is retried like a 503 until the attempts run out)."""
    counting = CountingTransport(transport if transport is not None else http_transport(emulator.url))
    async with ApiClient(emulator.url, CREDENTIALS, transport=counting, retry_base_delay=0.001) as client:
        result = await read(Fetcher(client, concurrency=concurrency))
        return result, counting.requests


# ------------------------------------------------------------------------------------------- paging


@pytest.mark.parametrize("count", [0, 1, 100, 101, 250])
def test_paging_reads_every_item_once_in_the_fewest_requests(count: int) -> None:
    state = make_state(signatures=max(count, 1), apis=count, bound={"RELEASE": count})
    if count == 0:  # make_state needs a signature to bind to; an empty region has none
        state.delete_signature(state.describe_signatures([], [], 1, 1)[0][0].id)
    group = group_id(state)
    pages = max(1, -(-count // 100))
    reads = 1 if pages == 1 else 2  # a listing of several pages is confirmed by a second read
    with running_emulator(state) as emulator:
        signatures, signature_requests = run(read_with(emulator, lambda f: f.signatures()))
        bindings, binding_requests = run(read_with(emulator, lambda f: f.bindings(group, "RELEASE")))
        target = FetchTarget(region="cn-hangzhou", scopes=((group, "RELEASE"),), api_groups=(group,))
        snapshot, snapshot_requests = run(read_with(emulator, lambda f: f.snapshot(target, endpoint=emulator.url)))

    assert (signature_requests, binding_requests, snapshot_requests) == (reads * pages, reads * pages,
                                                                         3 * reads * pages)
    assert [s.name for s in signatures] == [f"sig{i:04d}" for i in range(count)]
    assert len(bindings) == count
    assert snapshot.signatures == signatures
    assert [(s.key, s.secret.get_secret_value() if s.secret else None) for s in snapshot.signatures] == [
        (f"key{i:04d}", f"secret{i:04d}") for i in range(count)]
    assert [(b.group, b.stage, b.api_name, b.signature_name) for b in snapshot.bindings] == [
        (group, "RELEASE", f"api{i:03d}", "sig0000") for i in range(count)]
    assert [b.api_id for b in snapshot.bindings] == api_ids(state, group)
    assert [(g.id, [a.name for a in g.apis]) for g in snapshot.groups] == [
        (group, [f"api{i:03d}" for i in range(count)])]
    assert snapshot.scopes == (BindingScope(group=group, stage="RELEASE"),)
    assert (snapshot.region, snapshot.endpoint) == ("cn-hangzhou", emulator.url)


def test_faults_are_retried_until_every_page_is_read() -> None:
    state = make_state(signatures=250, apis=250, bound={"RELEASE": 250})
    group = group_id(state)
    target = FetchTarget(region="cn-hangzhou", scopes=((group, "RELEASE"),), api_groups=(group,))

    # 40 % of requests fail, and which request meets which of the seeded faults depends on how the concurrent
    # requests interleave: with the default 8 attempts, one request failing all of them (0.4**8 each) did happen
    # under load. At 30 attempts that chance is 0.4**30 (about 1e-12) a request; the waits stay short.
    async def read(url: str) -> tuple[Snapshot, int]:
        counting = CountingTransport(http_transport(url))
        async with ApiClient(url, CREDENTIALS, max_attempts=30, retry_base_delay=0.001, retry_max_delay=0.05,
                             transport=counting) as client:
            snapshot = await Fetcher(client).snapshot(target)
            return snapshot.model_copy(update={"fetched_at": None}), counting.requests

    faults = FaultConfig(throttle_rate=0.3, error_rate=0.1, seed=3)
    with running_emulator(state) as calm, running_emulator(state, faults=faults) as flaky:
        expected, calm_requests = run(read(calm.url))
        actual, flaky_requests = run(read(flaky.url))
    assert actual == expected
    assert len(actual.signatures) == len(actual.bindings) == len(actual.groups[0].apis) == 250
    assert flaky_requests > calm_requests  # the faults did hit this read, and were retried


def test_progress_counts_every_page_read() -> None:
    state = make_state(signatures=250)
    with running_emulator(state) as emulator:
        async def read() -> tuple[int, int]:
            async with ApiClient(emulator.url, CREDENTIALS) as client:
                fetcher = Fetcher(client)
                await fetcher.signatures()
                return fetcher.progress.done, fetcher.progress.known

        assert run(read()) == (6, 6)  # three pages, read twice


# ---------------------------------------------------------------------- listings that change while read


def change_after_first_page(state: EmulatorState, method: str, changes: Iterator[Callable[[], None]], *,
                            reset: Callable[[], None] | None = None) -> None:
    """Hook the emulator: right after `method` computes a page 1 (before it is sent), apply the next change;
    `reset`, if given, runs before every page 1 is computed.

    The client asks for page 2 only once page 1 has arrived, so the change lands between pages.
    """
    original = getattr(state, method)

    def serve(*args: Any) -> Any:
        first_page = args[-2] == 1
        if first_page and reset is not None:
            reset()
        page = original(*args)
        change = next(changes, None) if first_page else None
        if change is not None:
            change()
        return page

    setattr(state, method, serve)


def add_signatures(state: EmulatorState) -> Iterator[Callable[[], None]]:
    """Changes that each create one more signature (late0, late1, ...)."""
    for n in itertools.count():
        yield lambda n=n: state.create_signature(f"late{n}", "lateKey01", "lateSecret01")


def test_total_count_drift_is_read_again_and_the_final_read_is_complete() -> None:
    state = make_state(signatures=150)
    change_after_first_page(state, "describe_signatures", itertools.islice(add_signatures(state), 1))
    with running_emulator(state) as emulator:
        signatures, requests = run(read_with(emulator, lambda f: f.signatures()))
    assert [s.name for s in signatures] == [f"sig{i:04d}" for i in range(150)] + ["late0"]
    assert requests == 6  # two pages, three reads: one that changed, then two that agree


def test_removal_between_pages_is_read_again() -> None:
    state = make_state(signatures=150)
    first = state.describe_signatures([], [], 1, 1)[0][0]
    change_after_first_page(state, "describe_signatures", iter([lambda: state.delete_signature(first.id)]))
    with running_emulator(state) as emulator:
        signatures, requests = run(read_with(emulator, lambda f: f.signatures()))
    assert [s.name for s in signatures] == [f"sig{i:04d}" for i in range(1, 150)]
    assert requests == 6


def test_a_shift_that_keeps_the_count_is_caught_by_the_confirming_read() -> None:
    """One removed before the page boundary and one added after it: no repeat, no short page, same TotalCount."""
    state = make_state(signatures=150)
    first = state.describe_signatures([], [], 1, 1)[0][0]

    def shift() -> None:
        state.delete_signature(first.id)
        state.create_signature("late0", "lateKey01", "lateSecret01")

    change_after_first_page(state, "describe_signatures", iter([shift]))
    with running_emulator(state) as emulator:
        signatures, requests = run(read_with(emulator, lambda f: f.signatures()))
    assert [s.name for s in signatures] == [f"sig{i:04d}" for i in range(1, 150)] + ["late0"]
    assert requests == 6


def test_a_listing_that_keeps_changing_fails_naming_the_operation() -> None:
    state = make_state(signatures=150)
    change_after_first_page(state, "describe_signatures", add_signatures(state))
    with running_emulator(state) as emulator, pytest.raises(InconsistentReadError) as caught:
        run(read_with(emulator, lambda f: f.signatures()))
    assert str(caught.value) == (
        "DescribeSignatures: the listing changed while it was read (TotalCount 153 on page 1, 154 on page 2), "
        "4 times; nothing was planned, try again")
    assert MAX_REREADS == 2


def shift_bindings_state() -> tuple[EmulatorState, str, list[str], Callable[[], None]]:
    """150 bindings (api001..api150) in g0 RELEASE, and a change that binds api000 and unbinds api150:
    the count stays 150 but every later item moves one place down, so api100 comes again on page 2."""
    state = make_state(signatures=1, apis=200, bound={"RELEASE": 151})
    group = group_id(state)
    ids = api_ids(state, group)
    signature = state.signature_by_name("sig0000")
    assert signature is not None
    state.remove_signature_apis(group, signature.id, "RELEASE", [ids[0]])

    def shift() -> None:
        state.set_signature_apis(group, signature.id, "RELEASE", [ids[0]])
        state.remove_signature_apis(group, signature.id, "RELEASE", [ids[150]])

    return state, group, ids, shift


def test_an_item_listed_twice_is_read_again() -> None:
    state, group, ids, shift = shift_bindings_state()
    change_after_first_page(state, "describe_api_signatures", iter([shift]))
    with running_emulator(state) as emulator:
        bindings, requests = run(read_with(emulator, lambda f: f.bindings(group, "RELEASE")))
    assert [b.api_id for b in bindings] == ids[:150]
    assert requests == 6


def test_an_item_listed_twice_every_time_fails_naming_the_listing() -> None:
    state, group, ids, shift = shift_bindings_state()
    signature = state.signature_by_name("sig0000")
    assert signature is not None

    def shift_back() -> None:
        state.set_signature_apis(group, signature.id, "RELEASE", [ids[150]])
        state.remove_signature_apis(group, signature.id, "RELEASE", [ids[0]])

    # Every read starts from the same listing and sees the same shift, so every read finds the repeat.
    change_after_first_page(state, "describe_api_signatures", itertools.repeat(shift), reset=shift_back)
    with running_emulator(state) as emulator, pytest.raises(InconsistentReadError) as caught:
        run(read_with(emulator, lambda f: f.bindings(group, "RELEASE")))
    assert str(caught.value) == (
        f"DescribeApiSignatures (GroupId {group}, StageName RELEASE): the listing changed while it was read "
        f"({ids[100]} listed twice), 4 times; nothing was planned, try again")


EMULATOR_ENV = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "testid", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "testsecret"}


@pytest.mark.parametrize("changes", [1, None], ids=["once", "always"])
def test_plan_over_a_changing_listing(cli: Callable[..., CliResult], monkeypatch: pytest.MonkeyPatch,
                                      changes: int | None) -> None:
    """The demo with 150 more signatures (two pages); one is added after each page 1, once or always."""
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("ALIBABA_CLOUD_PROFILE", raising=False)
    state = EmulatorState.from_file(ROOT / "examples/emulator-state.yaml")
    for n in range(150):
        state.create_signature(f"filler{n:03d}", "fillerKey01", "fillerSecret01")
    change_after_first_page(state, "describe_signatures", itertools.islice(add_signatures(state), changes))
    with running_emulator(state) as emulator:
        result = cli("plan", "manifests/", "--endpoint", emulator.url, "--env-file", "examples/demo.env",
                     env=EMULATOR_ENV)
    if changes is None:
        assert (result.code, result.out) == (1, "")
        assert result.err == ("Error: DescribeSignatures: the listing changed while it was read (TotalCount 157 on "
                              "page 1, 158 on page 2), 4 times; nothing was planned, try again\n")
    else:
        assert (result.code, result.err) == (0, "")
        assert '? signature "filler149"' in result.out
        assert '? signature "late0"' in result.out
        assert result.out.endswith(" 152 unmanaged.\n")  # debug_temp_key, 150 fillers, late0


class PageRewriter(httpx.AsyncBaseTransport):
    """Real HTTP to the emulator, with the JSON body of chosen responses rewritten on the way back."""

    def __init__(self, rewrite: Callable[[int, dict[str, Any]], bool]) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._rewrite = rewrite

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        content = await response.aread()
        body = json.loads(content)
        if response.status_code != 200 or not self._rewrite(int(request.url.params["PageNumber"]), body):
            return httpx.Response(response.status_code, headers=response.headers, content=content)
        return httpx.Response(200, json=body, headers={"x-acs-request-id": body["RequestId"]})

    async def aclose(self) -> None:
        await self._inner.aclose()


def drop_last_item_of_page(number: int, times: int | None) -> Callable[[int, dict[str, Any]], bool]:
    remaining = itertools.repeat(True) if times is None else itertools.repeat(True, times)

    def rewrite(page_number: int, body: dict[str, Any]) -> bool:
        if page_number != number or next(remaining, None) is None:
            return False
        body["SignatureInfos"]["SignatureInfo"].pop()
        return True

    return rewrite


@pytest.mark.parametrize("page", [1, 2])
def test_a_short_page_is_read_again(page: int) -> None:
    with running_emulator(make_state(signatures=150)) as emulator:
        transport = PageRewriter(drop_last_item_of_page(page, times=1))
        signatures, requests = run(read_with(emulator, lambda f: f.signatures(), transport=transport))
    assert [s.name for s in signatures] == [f"sig{i:04d}" for i in range(150)]
    assert requests == 6


def test_pages_that_stay_short_fail_without_a_partial_result() -> None:
    with running_emulator(make_state(signatures=150)) as emulator, pytest.raises(InconsistentReadError) as caught:
        transport = PageRewriter(drop_last_item_of_page(2, times=None))
        run(read_with(emulator, lambda f: f.signatures(), transport=transport))
    assert str(caught.value) == ("DescribeSignatures: the listing changed while it was read "
                                 "(page 2 has 49 items, 50 expected), 4 times; nothing was planned, try again")


def blank_field_of_second_item(field: str, value: Any) -> Callable[[int, dict[str, Any]], bool]:
    def rewrite(page_number: int, body: dict[str, Any]) -> bool:
        body["SignatureInfos"]["SignatureInfo"][1][field] = value
        return True

    return rewrite


@pytest.mark.parametrize(("field", "value", "problem"), [
    ("SignatureKey", None, "SignatureInfos.SignatureInfo[1].SignatureKey: Input should be a valid string"),
    ("SignatureSecret", 12345, "SignatureInfos.SignatureInfo[1].SignatureSecret: Input should be a valid string"),
])
def test_a_malformed_item_fails_naming_its_path_but_never_its_value(field: str, value: Any, problem: str) -> None:
    with running_emulator(make_state(signatures=3)) as emulator, pytest.raises(TransportError) as caught:
        transport = PageRewriter(blank_field_of_second_item(field, value))
        run(read_with(emulator, lambda f: f.signatures(), transport=transport))
    assert str(caught.value).startswith(f"DescribeSignatures failed: HTTP 200 with a malformed body: {problem} (")
    assert "12345" not in str(caught.value)


def test_a_page_without_its_list_counts_as_short_and_is_read_again() -> None:
    dropped = iter([True])

    def drop_list_once(page_number: int, body: dict[str, Any]) -> bool:
        if next(dropped, False):
            del body["SignatureInfos"]
            return True
        return False

    with running_emulator(make_state(signatures=3)) as emulator:
        signatures, requests = run(read_with(emulator, lambda f: f.signatures(),
                                             transport=PageRewriter(drop_list_once)))
    assert ([s.name for s in signatures], requests) == (["sig0000", "sig0001", "sig0002"], 2)


def test_a_missing_total_count_fails() -> None:
    def drop_total(page_number: int, body: dict[str, Any]) -> bool:
        del body["TotalCount"]
        return True

    with running_emulator(make_state(signatures=3)) as emulator, pytest.raises(TransportError) as caught:
        run(read_with(emulator, lambda f: f.signatures(), transport=PageRewriter(drop_total)))
    assert str(caught.value).startswith("DescribeSignatures failed: HTTP 200 with a malformed body: TotalCount: "
                                        "Field required (")


# ------------------------------------------------------------------------------------------ concurrency


class InFlightCounter(httpx.AsyncBaseTransport):
    """Real HTTP, counting the requests in flight at once (shared by every client given it)."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.now = 0
        self.peak = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            response = await self._inner.handle_async_request(request)
            await response.aread()
            return response
        finally:
            self.now -= 1

    async def aclose(self) -> None:
        await self._inner.aclose()


def test_remaining_pages_are_read_concurrently_within_the_bound() -> None:
    slow = FaultConfig(latency_ms=20)
    with running_emulator(make_state(signatures=1000), faults=slow) as emulator:
        counter = InFlightCounter()
        signatures, requests = run(read_with(emulator, lambda f: f.signatures(), transport=counter, concurrency=3))
    assert (len(signatures), requests) == (1000, 20)  # ten pages, read twice
    assert counter.peak == 3


def test_concurrency_bounds_requests_across_regions() -> None:
    slow = FaultConfig(latency_ms=20)
    with (running_emulator(make_state(signatures=500), faults=slow) as east,
          running_emulator(make_state(signatures=500), faults=slow) as west):
        urls = {"cn-hangzhou": east.url, "cn-shanghai": west.url}
        counter = InFlightCounter()
        targets = [FetchTarget(region=r, scopes=(), api_groups=()) for r in urls]
        snapshots = run(fetch_snapshots(
            targets, lambda region: ApiClient(urls[region], CREDENTIALS, transport=counter), concurrency=2))
    assert {r: len(s.signatures) for r, s in snapshots.items()} == {"cn-hangzhou": 500, "cn-shanghai": 500}
    assert counter.peak == 2


class ActionRecorder(httpx.AsyncBaseTransport):
    """Real HTTP, recording each request's action and page number in the order sent."""

    def __init__(self, url: str) -> None:
        self._inner = http_transport(url)
        self.sent: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(f"{request.headers['x-acs-action']}:{request.url.params.get('PageNumber', '')}")
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def test_the_pages_of_a_confirming_read_go_before_other_waiting_requests() -> None:
    """One request at a time, three readers always waiting: once a listing of several pages has been read, its
    confirming read's pages are each sent next but one (the slot freed as one is queued goes to a reader
    already waiting), not behind every reader."""
    state = make_state(signatures=150, groups=1, apis=3, bound={"RELEASE": 2})
    with running_emulator(state) as emulator:
        recorder = ActionRecorder(emulator.url)

        async def read() -> None:
            async with ApiClient(emulator.url, CREDENTIALS, transport=recorder) as client:
                fetcher = Fetcher(client, concurrency=1)
                group = group_id(state)

                async def busy() -> None:
                    for _ in range(8):
                        await fetcher.bindings(group, "RELEASE")

                await asyncio.gather(fetcher.signatures(), busy(), busy(), busy())

        run(read())
    listings = [n for n, sent in enumerate(recorder.sent) if sent.startswith("DescribeSignatures:")]
    assert [recorder.sent[n] for n in listings] == ["DescribeSignatures:1", "DescribeSignatures:2"] * 2
    first_read_done, confirming = listings[1], listings[2:]
    assert confirming == [first_read_done + 2, first_read_done + 4]
    assert len(recorder.sent) == 4 + 24


def test_slots_hand_out_first_requests_first_each_kind_in_order() -> None:
    async def scenario() -> list[str]:
        slots, order = Slots(1), []
        holding, release = asyncio.Event(), asyncio.Event()

        async def holder() -> None:
            async with slots.slot():
                holding.set()
                await release.wait()

        async def request(name: str, first: bool) -> None:
            async with slots.slot(first=first):
                order.append(name)
                await asyncio.sleep(0)

        held = asyncio.ensure_future(holder())
        await holding.wait()
        waiting = [asyncio.ensure_future(request(name, first)) for name, first in
                   [("a", False), ("B", True), ("c", False), ("D", True)]]
        await asyncio.sleep(0)
        release.set()
        await asyncio.gather(held, *waiting)
        return order

    assert run(scenario()) == ["B", "D", "a", "c"]


def test_slots_bound_what_runs_at_once_and_a_cancelled_wait_loses_no_slot() -> None:
    async def scenario() -> tuple[int, int]:
        slots, running, peak, done = Slots(3), 0, 0, 0

        async def request(number: int) -> None:
            nonlocal running, peak, done
            async with slots.slot(first=number % 3 == 0):
                running += 1
                peak = max(peak, running)
                await asyncio.sleep(0.001 * (number % 4))
                running -= 1
                done += 1

        tasks = [asyncio.ensure_future(request(n)) for n in range(60)]
        await asyncio.sleep(0)
        for task in tasks[10:20]:  # waiting, or just handed a slot they never use
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # Every slot came back: three more run at once.
        more = [asyncio.ensure_future(request(n)) for n in range(3)]
        await asyncio.wait_for(asyncio.gather(*more), timeout=5)
        return peak, done

    assert run(scenario()) == (3, 53)


def test_a_slot_handed_to_a_request_cancelled_before_it_runs_goes_to_the_next() -> None:
    async def scenario() -> bool:
        slots = Slots(1)
        holding, release = asyncio.Event(), asyncio.Event()

        async def holder() -> None:
            async with slots.slot():
                holding.set()
                await release.wait()

        async def request() -> None:
            async with slots.slot():
                pass

        held = asyncio.ensure_future(holder())
        await holding.wait()
        handed = asyncio.ensure_future(request())
        await asyncio.sleep(0)  # waiting for the slot
        release.set()
        await asyncio.sleep(0)  # the holder has left: the slot is handed to `handed`, which has not run yet
        handed.cancel()
        await asyncio.gather(held, handed, return_exceptions=True)
        await asyncio.wait_for(request(), timeout=5)
        return handed.cancelled()

    assert run(scenario()) is True
