"""Where the live state comes from: the vendor's endpoint, an explicit endpoint, or an embedded emulator.

`open_connection` resolves credentials once (or starts the emulator, which
brings its own), and hands out one `ApiClient` per region endpoint;
`read_live_state` turns a DesiredState into the fetch it needs.

An emulator state file holds one region, so several regions need several
embedded emulators (`--emulator` repeated, one state file per region); they
all accept the same made-up credentials.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from reconciler.aliyun.client import AdaptiveRate, ApiClient, RetryTiming, validate_endpoint
from reconciler.aliyun.credentials import Credentials, CredentialSource, resolve_credential_source, static_source
from reconciler.errors import InputError
from reconciler.fetcher import FetchTarget, PageProgress, RegionReads, fetch_for_export, fetch_for_scan, fetch_snapshots
from reconciler.gateway import Gateway
from reconciler.inert import inert
from reconciler.limits import ConnectionOptions
from reconciler.manifest import DesiredState, RegionDesired
from reconciler.runner import run_async
from reconciler.snapshot import Snapshot
from reconciler.vendor_rules import REGION_RULE, Stage, endpoint_for_region

if TYPE_CHECKING:
    from reconciler.emulator.state import EmulatorState


@dataclass(frozen=True)
class Connection:
    options: ConnectionOptions
    credentials: CredentialSource
    fixed_endpoint: str | None
    allow_writes: bool
    emulator_endpoints: Mapping[str, str] = field(default_factory=dict)  # region -> embedded emulator URL
    retry: RetryTiming = field(default_factory=RetryTiming)

    def endpoint(self, region: str) -> str:
        return self.emulator_endpoints.get(region) or self.fixed_endpoint or endpoint_for_region(region)

    def client(self, region: str) -> ApiClient:
        """A new client (one connection pool) for a region; create it inside the running event loop."""
        options = self.options
        return ApiClient(self.endpoint(region), self.credentials, signature_version=options.signature_version,
                         timeout=options.timeout, deadline=options.deadline, allow_writes=self.allow_writes,
                         retry_base_delay=self.retry.base_delay, retry_max_delay=self.retry.max_delay,
                         rate=AdaptiveRate(options.max_rps, min_rps=self.retry.min_rps))


@contextmanager
def open_connection(options: ConnectionOptions, regions: Iterable[str], *, allow_writes: bool = False,
                    wanted_by: str = "the manifests declare",
                    warn: Callable[[str], None] = lambda message: None,
                    serve_all_states: bool = False,
                    credential_source: Callable[[], CredentialSource] | None = None) -> Iterator[Connection]:
    """`wanted_by` says where `regions` came from, in messages about emulator states ("--region is" for
    export); `warn` gets one line for an emulator state that is not used. `serve_all_states` serves every
    emulator state given, `regions` or not (scan reads every region there is). The retry waits come from the
    environment, as the credentials do (`RetryTiming.from_environ`); `credential_source`, when given, gives the
    source resolved ahead (`EarlyRead.credentials`), or raises what resolving it raised, in the place the
    resolution has here."""
    regions = sorted(set(regions))
    retry = RetryTiming.from_environ(os.environ)
    if options.emulator_states:
        from reconciler.emulator.server import running_emulator  # the emulator's server only when asked for

        if options.endpoint is not None:
            raise InputError("give either --endpoint or --emulator, not both")
        states = _emulator_states_by_region(options.emulator_states, regions, wanted_by, warn,
                                            serve_all=serve_all_states)
        for state in states.values():  # DescribeRegions of each lists every region of the run
            state.account_regions = tuple(sorted(states))
        # Credentials made up for this run: nothing else on the machine can use the embedded emulators.
        credentials = Credentials(access_key_id=f"embedded-{secrets.token_hex(4)}",
                                  access_key_secret=secrets.token_urlsafe(24))
        with ExitStack() as stack:
            emulators = {region: stack.enter_context(running_emulator(
                state, access_key_id=credentials.access_key_id,
                access_key_secret=credentials.access_key_secret.get_secret_value()))
                for region, state in states.items()}
            yield Connection(options, static_source(credentials, "the embedded emulator's"), None, allow_writes,
                             {region: emulator.url for region, emulator in emulators.items()}, retry=retry)
        return
    endpoint = checked_endpoint(options.endpoint) if options.endpoint is not None else None
    if endpoint is not None and len(regions) > 1:
        raise InputError(f"--endpoint serves one region; the manifests declare {', '.join(regions)}")
    source = credential_source() if credential_source is not None else resolve_credentials(options)
    yield Connection(options, source, endpoint, allow_writes, retry=retry)


def resolve_credentials(options: ConnectionOptions) -> CredentialSource:
    return resolve_credential_source(options.profile, os.environ, Path.home())


_HOST_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def checked_endpoint(url: str) -> str:
    """`validate_endpoint`, plus what it lets through to fail later as an internal or a connection error:
    a host name that IDNA refuses (`http://xn--localhost`), or one that is not letters, digits and
    hyphens in dot-separated labels (RFC 1123). Each is one line naming the URL."""
    try:
        endpoint = validate_endpoint(url)
    except (UnicodeError, ValueError):  # the idna codec's errors (IDNAError is a UnicodeError)
        raise InputError(f"endpoint {url!r} is not a URL: its host name is not valid IDNA") from None
    parts = urlsplit(endpoint)
    host = (parts.hostname or "").rstrip(".")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if len(host) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in host.split(".")):
            raise InputError(f"endpoint {url!r} is not a URL: {host!r} is not a host name") from None
    return endpoint


def _emulator_states_by_region(paths: tuple[Path, ...], regions: list[str], wanted_by: str,
                               warn: Callable[[str], None], *, serve_all: bool = False) -> dict[str, EmulatorState]:
    """Load every state file first, so that a bad one or a missing region fails before any server starts.
    A state of a region nothing asks for is not served (and said so): a wrong file would otherwise pass
    unnoticed."""
    from reconciler.emulator.state import EmulatorState

    by_region: dict[str, tuple[Path, EmulatorState]] = {}
    for path in paths:
        state = EmulatorState.from_file(path)
        earlier = by_region.get(state.region)
        if earlier is not None:
            raise InputError(f"the emulator states {earlier[0]} and {path} are both region {state.region}; "
                             f"give one state file per region")
        by_region[state.region] = (path, state)
    foreign = [r for r in regions if r not in by_region]
    if foreign and len(paths) == 1:
        path, state = by_region[next(iter(by_region))]
        also = " also" if state.region in regions and wanted_by.endswith(" declare") else ""
        verb = wanted_by.replace(" declare", f"{also} declare")
        raise InputError(f"the emulator state {path} is region {state.region}; {verb} {', '.join(foreign)}")
    if foreign:
        raise InputError(f"no --emulator state file is region {', '.join(foreign)} (they are "
                         f"{', '.join(sorted(by_region))}); give one state file per region")
    if serve_all:
        return {region: state for region, (_, state) in by_region.items()}
    for region, (path, _) in sorted(by_region.items()):
        if region not in regions:
            warn(f"the emulator state {path} (region {region}) is not used: {wanted_by} {', '.join(regions)}")
    return {region: state for region, (_, state) in by_region.items() if region in regions}


def delete_candidates(region: RegionDesired) -> Callable[[str], bool] | None:
    """Which live signatures the plan of `region` may delete (their bindings anywhere are read, so that a
    delete the service would refuse is known at plan time); None under prune: false."""
    if not region.prune:
        return None
    return lambda name: name not in region.signatures and not region.is_ignored(name)


def fetch_targets(desired: DesiredState,
                  signature_names: Mapping[str, frozenset[str] | None] | None = None) -> list[FetchTarget]:
    """What to read for `desired`: per region, its scopes (see `_scopes_to_read`), the API lists of their
    groups, and every signature (or only `signature_names[region]`, when that is given and not None:
    `plan --changed-only`)."""
    targets = []
    for region in (desired.regions[name] for name in sorted(desired.regions)):
        names = (signature_names or {}).get(region.region)
        may_delete = delete_candidates(region)
        if names is not None and may_delete is not None:
            may_delete = _among(names, may_delete)
        scopes = _scopes_to_read(region)
        targets.append(FetchTarget(region=region.region, scopes=tuple(scopes),
                                   api_groups=tuple(dict.fromkeys(group for group, _ in scopes)),
                                   may_delete=may_delete, deployment=region.has_policy, signature_names=names))
    return targets


def _scopes_to_read(region: RegionDesired) -> list[tuple[str, Stage]]:
    """The (group, stage) pairs the manifests mention and, under a signature policy, each required stage of
    every group the plan reads or the policy names (to tell which published APIs stay unsigned)."""
    scopes = region.scopes()
    if region.has_policy:
        groups = dict.fromkeys([*(g for g, _ in scopes), *region.require_signature_by_group])
        scopes = list(dict.fromkeys([*scopes, *((g, s) for g in groups for s in region.required_stages(g))]))
    return scopes


def _among(names: frozenset[str], may_delete: Callable[[str], bool]) -> Callable[[str], bool]:
    return lambda name: name in names and may_delete(name)


def read_live_state(desired: DesiredState, connection: Connection, progress: PageProgress | None = None, *,
                    signature_names: Mapping[str, frozenset[str] | None] | None = None,
                    early: EarlyRead | None = None) -> dict[str, Snapshot]:
    """Fetch what the manifests need to be planned, every region concurrently; in the loop of `early`, taking
    over the listings it started, when given."""
    targets = fetch_targets(desired, signature_names)
    if early is not None:
        return early.read(targets, connection, progress)
    return run_async(fetch_snapshots(targets, connection.client, concurrency=connection.options.concurrency,
                                     progress=progress))


class EarlyRead:
    """A plan's live state read in an event loop of its own thread, started before the manifests are loaded.

    The signature listing of a region depends on nothing but the region, and in a large tenant it is the
    longest chain of requests of the fetch (a listing of several pages is read twice, see `Fetcher.read`).
    So the thread (`start`) resolves the credentials and starts the listing of each region in `regions` (a
    hint, see `planning.read_early`) while the main thread loads the manifests; `read`, given what the loaded
    manifests ask for, runs the whole fetch in the same loop, under the same bound on requests in flight,
    and takes the listings over (`RegionReads`): the requests are the same as without the early start.

    Nothing started here is seen before the manifests are loaded: a listing's failure is raised by `read`,
    where the fetch raises it otherwise, and a failure to resolve the credentials by `credentials`, where
    `open_connection` raises it otherwise. `close` (leaving the `with` block) cancels whatever still runs,
    closes every connection and joins the thread; so a manifest error, Ctrl-C or any failure leaves no
    request, task, socket or thread behind, and whatever was read is dropped unseen. Closing waits for a
    credential resolution still running (instant for keys in the environment or a profile; an STS or
    metadata-service source is bounded by its own timeouts).
    """

    def __init__(self, options: ConnectionOptions, endpoint: str | None, regions: Sequence[str]) -> None:
        self.regions = tuple(regions)
        self._options = options
        self._endpoint = endpoint
        self._retry = RetryTiming.from_environ(os.environ)
        self._progress = PageProgress()
        self._source: Future[CredentialSource] = Future()
        self._job: Future[tuple[list[FetchTarget], Connection, PageProgress | None] | None] = Future()
        self._result: Future[dict[str, Snapshot]] = Future()
        self._running: Future[tuple[asyncio.AbstractEventLoop, asyncio.Task[Any]]] = Future()
        self._thread = threading.Thread(target=self._run, name="reconciler-early-read", daemon=True)

    def __enter__(self) -> EarlyRead:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self) -> None:
        """Start the thread (once; `credentials` and `read` start it if nothing did). Not before a fork: the
        child of a process with more than one thread may inherit a lock held by another."""
        if self._thread.ident is None:
            self._thread.start()

    def credentials(self) -> CredentialSource:
        """The credential source the thread resolved (waiting for it), or what resolving it raised."""
        self.start()
        return self._source.result()

    def read(self, targets: list[FetchTarget], connection: Connection,
             progress: PageProgress | None) -> dict[str, Snapshot]:
        """The fetch of `targets`, with `connection`'s clients for regions not started early; the pages read
        so far count in `progress` too."""
        self.start()
        self._job.set_result((targets, connection, progress))
        return self._result.result()

    def close(self) -> None:
        if self._thread.ident is None:
            return
        if not self._job.done():
            self._job.set_result(None)  # never read: what was started is cancelled
        elif not self._result.done():  # interrupted while reading
            either: list[Future[Any]] = [self._running, self._result]
            wait(either, return_when=FIRST_COMPLETED)
            if self._running.done():
                loop, task = self._running.result()
                with suppress(RuntimeError):  # the loop has just ended
                    loop.call_soon_threadsafe(task.cancel)
        # The read is ending (cancelled, or done): it is waited for even through another Ctrl-C, so that no
        # request, socket or thread outlives the command; that Ctrl-C is raised once it has ended.
        again: KeyboardInterrupt | None = None
        while self._thread.is_alive():
            try:
                self._thread.join()
            except KeyboardInterrupt as interrupt:
                again = interrupt
        if again is not None:
            raise again

    def _run(self) -> None:
        try:
            source = resolve_credentials(self._options)
        except BaseException as exc:
            self._source.set_exception(exc)
            return
        self._source.set_result(source)
        connection = Connection(self._options, source, self._endpoint, allow_writes=False, retry=self._retry)
        try:
            result = run_async(self._serve(connection))
        except BaseException as exc:
            self._result.set_exception(exc)
        else:
            self._result.set_result(result)

    async def _serve(self, early: Connection) -> dict[str, Snapshot]:
        task = asyncio.current_task()
        assert task is not None
        self._running.set_result((asyncio.get_running_loop(), task))
        async with RegionReads(concurrency=self._options.concurrency, progress=self._progress) as reads:
            for region in self.regions if not self._job.done() else ():
                reads.start_signatures(region, early.client)
            job = await asyncio.wrap_future(self._job)
            if job is None:
                return {}
            targets, connection, progress = job
            if progress is not None:
                self._progress.count_into(progress)
            return await reads.snapshots(targets, connection.client)


def read_region(connection: Connection, region: str, groups: Sequence[str] | None, stages: Sequence[Stage],
                progress: PageProgress | None = None) -> Snapshot:
    """What `export` reads of one region (see `fetcher.fetch_for_export`)."""
    return run_async(fetch_for_export(connection.client, region, groups, stages,
                                      concurrency=connection.options.concurrency, progress=progress))


# Where DescribeRegions is asked when no manifest declares a region (any regional endpoint answers it).
DEFAULT_REGION = "cn-hangzhou"


def read_account(connection: Connection, declared: Iterable[str],
                 progress: PageProgress | None = None) -> dict[str, Snapshot]:
    """What `scan` reads: DescribeRegions (from the first declared region's endpoint, or an embedded
    emulator's), then every listed region and every declared one, concurrently.

    The endpoint of each region is `apigateway.<region>.aliyuncs.com`, built from the region id, never the
    `RegionEndpoint` the answer carries: a request signed with the account's credentials goes only to a host
    of the vendor's pattern. A fixed `--endpoint` serves one region, so an answer listing several is an error.
    """
    declared = sorted(set(declared))

    async def main() -> dict[str, Snapshot]:
        first = (sorted(connection.emulator_endpoints)[0] if connection.emulator_endpoints
                 else declared[0] if declared else DEFAULT_REGION)
        async with connection.client(first) as client:
            listed = await Gateway(client).regions()
        for region in listed:
            if not REGION_RULE.fullmatch(region):
                raise InputError(f"DescribeRegions listed '{inert(region)}', which is not a region id")
        regions = sorted({*listed, *declared})
        if connection.fixed_endpoint is not None and len(regions) > 1:
            raise InputError(f"--endpoint serves one region; the account has {', '.join(regions)}: scan without "
                             f"--endpoint")
        return await fetch_for_scan(connection.client, regions, concurrency=connection.options.concurrency,
                                    progress=progress)

    return run_async(main())
