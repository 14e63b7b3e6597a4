"""Pages through the describe operations, concurrently and within a bound, into a Snapshot.

Every listing reads page 1 (PageSize 100, the maximum), learns TotalCount, then
reads the remaining pages concurrently. One semaphore bounds the requests in
flight across all listings of a run, so a 2,000-listing tenant needs
`requests x round trip / concurrency` and no more.

A partial or inconsistent read is never presented as complete: when TotalCount
differs between pages, a page is short, or an item repeats, the listing is read
again (at most `MAX_REREADS` more times) and otherwise the run fails. A listing
of several pages is only accepted when two consecutive reads agree (see `read`);
at the target scale that is a handful of extra requests (the signature list),
since bindings and APIs of one group and stage fit one page. The pages of a
second read go before other waiting requests (`Slots`): the long listing is
then done while the short ones are still read, and checking and validating its
items is not the last work of a fetch.

The fetcher reads through `reconciler.gateway.Gateway`, which knows each operation's parameters and
answers; what is here is how a listing is read whole. Default concurrency: see `reconciler.limits`.
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter

from reconciler.aliyun.client import ApiClient
from reconciler.errors import ReconcilerError
from reconciler.gateway import Gateway, ItemT, Listing
from reconciler.limits import DEFAULT_CONCURRENCY
from reconciler.runner import cancelled_on_failure
from reconciler.snapshot import BindingScope, LiveBinding, LiveGroup, LiveSignature, Snapshot
from reconciler.vendor_rules import MANAGED_STAGES, RESOURCE_ID_RULE, STAGES, Stage, timestamp_now

MAX_REREADS = 2
_Page = tuple[int, list[ItemT], list[str]]  # one page of a listing: its TotalCount, its items, their identities
# The most items one listing is read to: 1,000,000 (10,000 pages), five times every binding of the
# benchmark's tenant (200,000), which one DescribeApisBySignature could list were a single key bound to
# every API. A larger TotalCount is refused before any page past the first is asked for, so a broken or
# hostile endpoint cannot make the run plan half a million requests and hold their pages in memory.
MAX_LISTING_ITEMS = 1_000_000
NAMED_SIGNATURE_READS = 10  # signatures read one by one (SignatureName) rather than listed whole


class InconsistentReadError(ReconcilerError):
    """A listing kept changing while it was read; nothing partial is returned."""


class ListingTooLargeError(ReconcilerError):
    """A listing claims more items than `MAX_LISTING_ITEMS`; nothing is read past its first page."""


@dataclass(frozen=True)
class FetchTarget:
    """What to read in one region: bindings of these scopes, API lists of these groups, the signatures
    (every one, or only `signature_names`: `plan --changed-only`), and where each signature whose name
    `may_delete` accepts is bound (anywhere in the region)."""

    region: str
    scopes: tuple[tuple[str, Stage], ...]
    api_groups: tuple[str, ...]
    may_delete: Callable[[str], bool] | None = None
    deployment: bool = False  # read the stages each API is published in (a signature policy needs them)
    signature_names: frozenset[str] | None = None


class PageProgress:
    """Pages read so far and pages known to exist, shared by the fetchers of one run."""

    def __init__(self, report: Callable[[int, int], None] | None = None) -> None:
        self.done = 0
        self.known = 0
        self._report = report
        self._into: PageProgress | None = None

    def count_into(self, other: PageProgress) -> None:
        """Count in `other` from now on, starting with the pages counted here so far (a read that began
        before anyone was shown its progress)."""
        self._into = other
        other.done += self.done
        other.expect(self.known)

    def expect(self, pages: int) -> None:
        if self._into is not None:
            self._into.expect(pages)
            return
        self.known += pages
        # Reported before the first page arrives too: on a slow endpoint the line shows from the first
        # request on, not only once something came back.
        if self._report is not None and pages:
            self._report(self.done, self.known)

    def page_read(self) -> None:
        if self._into is not None:
            self._into.page_read()
            return
        self.done += 1
        if self._report is not None:
            self._report(self.done, self.known)


class Slots:
    """The bound on a run's requests in flight, as an `asyncio.Semaphore` of `limit`, except that a request
    waiting with `first` goes before those waiting without it (each kind in the order it came)."""

    def __init__(self, limit: int) -> None:
        self._free = limit
        self._waiting: tuple[deque[asyncio.Future[None]], deque[asyncio.Future[None]]] = (deque(), deque())

    @asynccontextmanager
    async def slot(self, *, first: bool = False) -> AsyncIterator[None]:
        if self._free > 0 and not (self._waiting[0] or self._waiting[1]):
            self._free -= 1
        else:
            queue = self._waiting[0 if first else 1]
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            queue.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._release()  # given a slot as it was cancelled: the next one waiting takes it
                else:
                    with suppress(ValueError):  # `_release` may have dropped it already
                        queue.remove(waiter)
                raise
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        for queue in self._waiting:
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    return
        self._free += 1


class Fetcher:
    """Reads listings through one client; `slots`, when given, is the bound shared with other fetchers
    (one per region) of the same run, and `concurrency` is then ignored."""

    def __init__(self, client: ApiClient, *, concurrency: int = DEFAULT_CONCURRENCY,
                 progress: PageProgress | None = None, slots: Slots | None = None) -> None:
        self._gateway = Gateway(client)
        self.endpoint = client.endpoint
        self._slots = slots if slots is not None else Slots(concurrency)
        self.progress = progress if progress is not None else PageProgress()

    async def _page(self, listing: Listing[ItemT], number: int, *, again: bool = False) -> _Page[ItemT]:
        async with self._slots.slot(first=again):
            page = await self._gateway.page(listing, number)
        self.progress.page_read()
        # Each page's identities as it comes: for 20,000 items at once, the checks held up every answer
        # waiting in the event loop.
        return page.total, page.items, list(map(listing.identity, page.items))

    async def read(self, listing: Listing[ItemT]) -> list[ItemT]:
        """Every item of a listing, checked for consistency; re-read when it changed under us.

        One page is one response, so a single-page listing is atomic. A listing of
        several pages can lose an item without any visible sign (one removed before
        a page boundary while another is added after it), so it is read a second
        time and accepted only when two consecutive reads list the same items. The
        pages of every read after the first go before other waiting requests.
        """
        problem = ""
        confirmed: list[str] | None = None
        for attempt in range(2 + MAX_REREADS):
            total, pages, problem = await self._read_once(listing, again=attempt > 0)
            if problem:
                confirmed = None
                continue
            items = [item for _, page_items, _ in pages for item in page_items]
            if total <= listing.page_size:
                return items
            identities = [identity for _, _, page_identities in pages for identity in page_identities]
            if identities == confirmed:
                return items
            if confirmed is not None:
                problem = "two reads listed different items"
            confirmed = identities
        raise InconsistentReadError(f"{listing.describe()}: the listing changed while it was read ({problem}), "
                                    f"{2 + MAX_REREADS} times; nothing was planned, try again")

    async def _read_once(self, listing: Listing[ItemT], *, again: bool) -> tuple[int, list[_Page[ItemT]], str]:
        """One read of every page: the TotalCount of page 1, the pages, and what makes them inconsistent ('' when
        nothing does)."""
        self.progress.expect(1)
        first = await self._page(listing, 1, again=again)
        total = first[0]
        if total > MAX_LISTING_ITEMS:
            raise ListingTooLargeError(f"{listing.describe()}: the endpoint claims TotalCount {total}, more than "
                                       f"the {MAX_LISTING_ITEMS} items a listing is read to; nothing was planned")
        pages = max(1, -(-total // listing.page_size))
        self.progress.expect(pages - 1)
        rest = await asyncio.gather(*(self._page(listing, n, again=again) for n in range(2, pages + 1)))
        all_pages = [first, *rest]
        return total, all_pages, _inconsistency(listing, total, all_pages)

    async def signatures(self, name: str | None = None) -> tuple[LiveSignature, ...]:
        """Every signature, or the one named `name` (none when it does not exist)."""
        listing = self._gateway.signatures(name)
        # The filter is taken as the emulator documents it (an exact name); should the vendor match more
        # loosely, only the exact name is kept.
        items = [s for s in await self.read(listing) if name is None or s.name == name]
        # One validation a slice, as for bindings (figures: benchmarks/README.md), the event loop serving
        # the answers of other requests between slices (20,000 at once held them up for about 30 ms).
        built: list[LiveSignature] = []
        for start in range(0, len(items), _SLICE_ITEMS):
            if start:
                await asyncio.sleep(0)
            built += _LIVE_SIGNATURES.validate_python([
                {"id": s.id, "name": s.name, "key": s.key, "secret": s.secret, "created": s.created,
                 "modified": s.modified} for s in items[start:start + _SLICE_ITEMS]])
        return tuple(built)

    async def some_signatures(self, names: frozenset[str]) -> tuple[LiveSignature, ...]:
        """The signatures named `names`: one request each when that saves pages (at most
        `NAMED_SIGNATURE_READS` of them), else the whole listing, kept to those names."""
        if len(names) > NAMED_SIGNATURE_READS:
            return tuple(s for s in await self.signatures() if s.name in names)
        found = await asyncio.gather(*(self.signatures(name) for name in sorted(names)))
        return tuple(signature for one in found for signature in one)

    async def bindings(self, group: str, stage: Stage) -> list[LiveBinding]:
        listing = self._gateway.bindings(group, stage)
        # One validation call for the whole scope: cheaper than building the LiveBindings one by one.
        return _LIVE_BINDINGS.validate_python([
            # The signature's id and name repeat on every binding of it: keep one copy of each.
            {"group": group, "stage": stage, "api_id": b.api_id, "api_name": b.api_name,
             "signature_id": sys.intern(b.signature_id), "signature_name": sys.intern(b.signature_name),
             "bound_time": b.bound_time}
            for b in await self.read(listing)])

    async def bindings_of_signature(self, signature: LiveSignature) -> tuple[LiveBinding, ...]:
        """Every binding of one signature in the region, any group and stage."""
        listing = self._gateway.bindings_of_signature(signature.id)
        return tuple(LiveBinding(group=a.group, stage=a.stage, api_id=a.api_id, api_name=a.api_name,
                                 signature_id=signature.id, signature_name=signature.name, bound_time=a.bound_time)
                     for a in await self.read(listing))

    async def apis(self, group: str, *, deployment: bool = False) -> LiveGroup:
        """The APIs of a group; with `deployment`, also the stages each is published in."""
        listing = self._gateway.apis(group, deployment=deployment)
        # One validation for the group, as for bindings: cheaper than building the LiveApis one by one.
        apis = await self.read(listing)
        # Each API names its group: the plan shows that name beside the group's id, at no extra request.
        name = next((a.group_name for a in apis if a.group_name), None)
        return LiveGroup.model_validate({"id": group, "name": name,
                                         "apis": [{"id": a.id, "name": a.name, "deployed": a.deployed()}
                                                  for a in apis]})

    async def groups(self) -> list[LiveGroup]:
        """Every API group of the region (for export --all-groups)."""
        listing = self._gateway.groups()
        return [LiveGroup(id=g.id, name=g.name) for g in await self.read(listing)]

    async def snapshot(self, target: FetchTarget, *, endpoint: str | None = None,
                       signatures_read: asyncio.Future[tuple[LiveSignature, ...]] | None = None) -> Snapshot:
        """Signatures, bindings of every scope and API lists of every group, read concurrently.
        `signatures_read`: the signatures' read, already started (`RegionReads.start_signatures`)."""
        signatures_task = signatures_read or asyncio.ensure_future(
            self.signatures() if target.signature_names is None else self.some_signatures(target.signature_names))
        binding_tasks = [asyncio.ensure_future(self.bindings(g, s)) for g, s in target.scopes]
        group_tasks = [asyncio.ensure_future(self.apis(g, deployment=target.deployment)) for g in target.api_groups]
        tasks: list[asyncio.Future[Any]] = [signatures_task, *binding_tasks, *group_tasks]
        async with cancelled_on_failure(tasks):
            signatures = await signatures_task
            # Where a signature the plan may delete is bound, read while the bindings are still coming in.
            may_delete = target.may_delete or (lambda _: False)
            usage_tasks = {s.id: asyncio.ensure_future(self.bindings_of_signature(s))
                           for s in signatures if may_delete(s.name)}
            tasks += usage_tasks.values()
            bindings = await asyncio.gather(*binding_tasks)
            groups = await asyncio.gather(*group_tasks)
            usage = dict(zip(usage_tasks, await asyncio.gather(*usage_tasks.values()), strict=True))
        signatures = tuple(s.model_copy(update={"bindings_in_region": usage[s.id]}) if s.id in usage else s
                           for s in signatures)
        return Snapshot(
            region=target.region, endpoint=endpoint, fetched_at=timestamp_now(),
            signatures=signatures, groups=tuple(groups),
            scopes=tuple(BindingScope(group=g, stage=s) for g, s in target.scopes),
            bindings=tuple(b for scope_bindings in bindings for b in scope_bindings),
        )


_LIVE_BINDINGS = TypeAdapter(list[LiveBinding])
_LIVE_SIGNATURES = TypeAdapter(list[LiveSignature])
_SLICE_ITEMS = 1000  # about 2 ms of validation


def _inconsistency(listing: Listing[ItemT], total: int, pages: Sequence[_Page[ItemT]]) -> str:
    """Why the pages of one read do not add up to one consistent listing ('' when they do)."""
    seen: set[str] = set()
    for number, (page_total, items, identities) in enumerate(pages, 1):
        if page_total != total:
            return f"TotalCount {total} on page 1, {page_total} on page {number}"
        expected = min(listing.page_size, total - (number - 1) * listing.page_size)
        if len(items) != expected:
            return f"page {number} has {len(items)} items, {expected} expected"
        seen.update(identities)
        if len(seen) != (number - 1) * listing.page_size + len(identities):  # a repeat: name the first one
            found: set[str] = set()
            for identity in (i for _, _, page_identities in pages[:number] for i in page_identities):
                if identity in found:
                    return f"{identity} listed twice"
                found.add(identity)
    return ""


class RegionReads:
    """The reads of one run: one bound on requests in flight, one client (one connection pool) per region,
    opened when first used and closed at the end (`async with`). A region's signature listing depends on
    nothing but the region, so it can start (`start_signatures`) before what else to read is known;
    `snapshots` then takes it over. A listing started for a region no target names is cancelled, and on
    leaving the block every read not taken over is cancelled and awaited: nothing is left in flight."""

    def __init__(self, *, concurrency: int = DEFAULT_CONCURRENCY, progress: PageProgress | None = None) -> None:
        self._slots = Slots(concurrency)
        self._progress = progress if progress is not None else PageProgress()
        self._clients = AsyncExitStack()
        self._fetchers: dict[str, Fetcher] = {}
        self._signatures: dict[str, asyncio.Future[tuple[LiveSignature, ...]]] = {}

    async def __aenter__(self) -> RegionReads:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            await self._cancel(list(self._signatures))
        finally:
            await self._clients.aclose()

    def _fetcher(self, region: str, client_for: Callable[[str], ApiClient]) -> Fetcher:
        fetcher = self._fetchers.get(region)
        if fetcher is None:
            client = client_for(region)
            self._clients.push_async_callback(client.aclose)
            fetcher = self._fetchers[region] = Fetcher(client, progress=self._progress, slots=self._slots)
        return fetcher

    def start_signatures(self, region: str, client_for: Callable[[str], ApiClient]) -> None:
        """Start reading every signature of `region`."""
        self._signatures[region] = asyncio.ensure_future(self._fetcher(region, client_for).signatures())

    async def _cancel(self, regions: Iterable[str]) -> None:
        reads = [self._signatures.pop(region) for region in regions]
        for read in reads:
            read.cancel()
        await asyncio.gather(*reads, return_exceptions=True)

    async def snapshots(self, targets: Iterable[FetchTarget],
                        client_for: Callable[[str], ApiClient]) -> dict[str, Snapshot]:
        """Read every region concurrently; a region whose every signature is read takes over the listing
        started for it."""
        targets = list(targets)
        whole = {t.region for t in targets if t.signature_names is None}
        await self._cancel([region for region in self._signatures if region not in whole])

        async def one(target: FetchTarget) -> Snapshot:
            fetcher = self._fetcher(target.region, client_for)
            return await fetcher.snapshot(target, endpoint=fetcher.endpoint,
                                          signatures_read=self._signatures.pop(target.region, None))

        tasks: list[asyncio.Future[Any]] = [asyncio.ensure_future(one(t)) for t in targets]
        async with cancelled_on_failure(tasks):
            snapshots = await asyncio.gather(*tasks)
        return {s.region: s for s in snapshots}


async def fetch_snapshots(targets: Iterable[FetchTarget], client_for: Callable[[str], ApiClient], *,
                          concurrency: int = DEFAULT_CONCURRENCY,
                          progress: PageProgress | None = None) -> dict[str, Snapshot]:
    """Read every region concurrently (one connection pool per endpoint, one bound on requests in flight)."""
    async with RegionReads(concurrency=concurrency, progress=progress) as reads:
        return await reads.snapshots(targets, client_for)


async def fetch_for_export(client_for: Callable[[str], ApiClient], region: str, groups: Sequence[str] | None,
                           stages: Sequence[Stage], *, concurrency: int = DEFAULT_CONCURRENCY,
                           progress: PageProgress | None = None) -> Snapshot:
    """What `export` needs of one region: every signature; the bindings of `groups` (None: every group of
    the region, from DescribeApiGroups) in `stages`; the API list of each group that has a binding (to
    tell a unique API name from a shared one). Groups are listed first even when given, so that an
    unknown id is one clear error and the export can name each group in a comment."""
    async with client_for(region) as client:
        fetcher = Fetcher(client, concurrency=concurrency, progress=progress)
        signatures_task = asyncio.ensure_future(fetcher.signatures())
        tasks: list[asyncio.Future[Any]] = [signatures_task]
        async with cancelled_on_failure(tasks):
            listed = {g.id: g for g in await fetcher.groups()}
            chosen = list(listed) if groups is None else list(dict.fromkeys(groups))
            unknown = [g for g in chosen if g not in listed]
            if unknown:
                named = {g.name: g.id for g in listed.values() if g.name}
                hints = [f"'{g}' is the name of group {named[g]}" for g in unknown if g in named]
                hint = (f"; --group takes the id: {'; '.join(hints)}" if hints
                        else "; --group takes a group's id (32 hex characters), not its name"
                        if any(not RESOURCE_ID_RULE.fullmatch(g) for g in unknown) else "")
                raise ReconcilerError(f"region {region} has no API group {', '.join(unknown)}{hint}")
            scopes = [(g, s) for g in chosen for s in dict.fromkeys(stages)]
            binding_tasks = [asyncio.ensure_future(fetcher.bindings(g, s)) for g, s in scopes]
            tasks += binding_tasks
            bindings = [b for scope in await asyncio.gather(*binding_tasks) for b in scope]
            bound_groups = list(dict.fromkeys(b.group for b in bindings))
            api_tasks = [asyncio.ensure_future(fetcher.apis(g)) for g in bound_groups]
            tasks += api_tasks
            api_lists = await asyncio.gather(*api_tasks)
            signatures = await signatures_task
        endpoint = client.endpoint
    return Snapshot(
        region=region, endpoint=endpoint, fetched_at=timestamp_now(),
        signatures=signatures,
        groups=tuple(LiveGroup(id=g.id, name=listed[g.id].name, apis=g.apis) for g in api_lists),
        scopes=tuple(BindingScope(group=g, stage=s) for g, s in scopes), bindings=tuple(bindings),
    )


async def fetch_for_scan(client_for: Callable[[str], ApiClient], regions: Sequence[str], *,
                         concurrency: int = DEFAULT_CONCURRENCY,
                         progress: PageProgress | None = None) -> dict[str, Snapshot]:
    """What `scan` needs of each region: every signature; every API group (DescribeApiGroups); the APIs of
    each group with the stages each is published in (DescribeApis' DeployedInfos); and the bindings of each
    (group, stage) in which at least one API is published, in RELEASE and TEST (the stages whose bindings the
    vendor documents reading; PRE is not measured). A stage with no published API has no coverage to
    measure, so its bindings are not read: the request count is 1 + signatures + groups + one per group +
    one per (group, published stage), at pages of 100 (50 for groups)."""
    slots = Slots(concurrency)

    async def one(region: str) -> Snapshot:
        async with client_for(region) as client:
            fetcher = Fetcher(client, concurrency=concurrency, progress=progress, slots=slots)

            async def group_state(group: LiveGroup) -> tuple[LiveGroup, list[Stage], list[LiveBinding]]:
                listed = await fetcher.apis(group.id, deployment=True)
                stages = [s for s in STAGES if s in MANAGED_STAGES and any(s in api.deployed for api in listed.apis)]
                bound = await asyncio.gather(*(fetcher.bindings(group.id, s) for s in stages))
                return (LiveGroup(id=group.id, name=group.name, apis=listed.apis), stages,
                        [b for scope in bound for b in scope])

            signatures_task = asyncio.ensure_future(fetcher.signatures())
            tasks: list[asyncio.Future[Any]] = [signatures_task]
            async with cancelled_on_failure(tasks):
                group_tasks = [asyncio.ensure_future(group_state(g)) for g in await fetcher.groups()]
                tasks += group_tasks
                groups = await asyncio.gather(*group_tasks)
                signatures = await signatures_task
            endpoint = client.endpoint
        return Snapshot(
            region=region, endpoint=endpoint, fetched_at=timestamp_now(), signatures=signatures,
            groups=tuple(g for g, _, _ in groups),
            scopes=tuple(BindingScope(group=g.id, stage=s) for g, stages, _ in groups for s in stages),
            bindings=tuple(b for _, _, bound in groups for b in bound))

    snapshots = await asyncio.gather(*(one(r) for r in regions))
    return {s.region: s for s in snapshots}
