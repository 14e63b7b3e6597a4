"""The `plan` command's pipeline around the differ: what to read, and what a reviewer is shown.

`read_plan_inputs` loads the manifests and, given a base, the base's, narrowed to what differs under
--changed-only; `PlanInputs.fetch_view` says what of the live state to read for them (one read serves
the head's plan and the base's). `review_plan` turns the plan into what is shown: the signature policy
checked, each change labelled against the base, narrowed to the targets, the group names added.
`live_state` reads the live state for them, or takes it from a saved snapshot file; `read_early` starts that
read while the manifests load. `cli.py` parses the options, calls these, renders and chooses the exit code.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.drift import Base, ChangeView, compare_with_base, fetch_base, fetch_view, narrow_to_change, read_base
from reconciler.errors import InputError, ReconcilerError
from reconciler.gcrelax import no_cyclic_collections
from reconciler.inputfile import InputFileError, read_input_head
from reconciler.manifest import DesiredState, ParsedAhead, ParsedFiles, manifest_paths
from reconciler.readahead import read_ahead
from reconciler.vendor_rules import REGION_RULE

if TYPE_CHECKING:  # imported when used: `plan` imports them while its manifests are parsed (`readahead`)
    from reconciler.limits import ConnectionOptions
    from reconciler.live import EarlyRead
    from reconciler.plan import Plan
    from reconciler.review import Review
    from reconciler.snapshot import Snapshot
    from reconciler.targets import Target


@dataclass(frozen=True)
class PlanInputs:
    """The manifests to plan (narrowed under --changed-only), and the base's when one is given."""

    desired: DesiredState
    base: Base | None
    change: ChangeView | None

    def fetch_view(self) -> DesiredState:
        """What to read of the live state: one read serves both plans."""
        return self.desired if self.base is None else fetch_view(self.desired, self.base.desired)

    @property
    def signature_names(self) -> Mapping[str, frozenset[str] | None] | None:
        """Per region, the signatures to read (None: all of them); None outside --changed-only."""
        return None if self.change is None else self.change.signature_names

    def snapshots(self, snapshots: dict[str, Snapshot]) -> dict[str, Snapshot]:
        """The live state read, restricted to what the change touches under --changed-only."""
        return snapshots if self.change is None else self.change.snapshots(snapshots)


def read_plan_inputs(load: Callable[[ParsedFiles | None, ParsedAhead], DesiredState], *, paths: Sequence[Path],
                     env: Mapping[str, str] | None, base_ref: str | None, base_path: Path | None,
                     changed_only: bool, saves_live_state: bool,
                     meanwhile: Callable[[bool], object] | None = None
                     ) -> PlanInputs:
    """The head's manifests (`load`), the base's (--base-ref / --base) and, under --changed-only, both narrowed
    to what differs. `saves_live_state`: --out-plan or --save-snapshot, which need all of the live state.

    `meanwhile(forked)` runs before the manifests are loaded (the plan starts its early read, and imports the API
    client: about as long as parsing 7 MB). Where it pays, the manifests are parsed in a child process
    (`readahead`) meanwhile, forked before `meanwhile` starts any thread (then `forked` is true), and a thread
    reads the base from git, whose changed files the child then parses too."""
    # A base's files that are the pull request's byte for byte are parsed and validated once.
    parsed: ParsedFiles | None = {} if base_ref is not None or base_path is not None else None
    with read_ahead(paths, [base_path] if base_path is not None else []) as ahead, \
            fetch_base(ref=base_ref, folder=base_path, paths=paths, in_background=ahead.forked,
                       fetched=lambda files: ahead.add(files.written)) as fetched_base:
        if meanwhile is not None:
            meanwhile(ahead.forked)
        base_files = fetched_base()
        ahead.finish()
        desired = load(parsed, ahead.outcomes)
        base = read_base(base_files, env=env, parsed=parsed, ahead=ahead.outcomes)
    if not changed_only:
        return PlanInputs(desired, base, None)
    if base is None:
        raise InputError("--changed-only plans what differs from a base: give --base-ref REF or --base PATH")
    if saves_live_state:
        raise InputError("--changed-only reads part of the live state; --out-plan and --save-snapshot need "
                         "all of it")
    change = narrow_to_change(desired, base)
    return PlanInputs(change.desired, change.base, change)


def saved_review(result: Plan, targets: Sequence[Target], desired: DesiredState) -> Review:
    """What `--out-plan` saves: exactly what is shown (Terraform's rule), so with --target the selection only."""
    from reconciler.review import Review
    from reconciler.targets import select_targets

    return select_targets(Review(result), targets, desired) if targets else Review(result)


def review_plan(result: Plan, inputs: PlanInputs, snapshots: Mapping[str, Snapshot],
                targets: Sequence[Target]) -> Review:
    """What a reviewer is shown: the plan with the signature policy checked, labelled against the base,
    narrowed to the targets, with the names of the groups it mentions."""
    from reconciler.policy import with_policy
    from reconciler.review import Review
    from reconciler.targets import select_targets

    desired, base = inputs.desired, inputs.base
    shown = Review(with_policy(result, desired, snapshots), changed_only=inputs.change is not None,
                   base=None if base is None else compare_with_base(result, desired, base, snapshots))
    if targets:
        shown = select_targets(shown, targets, desired)
    return shown.with_group_names(group_names(snapshots))


def group_names(snapshots: Mapping[str, Snapshot]) -> dict[str, str | None]:
    return {group.id: group.name for snapshot in snapshots.values() for group in snapshot.groups}


class EarlyStart:
    """The live state's read of `read_early`, started by `start` (once); `read` is then the `EarlyRead` in
    flight, or None where the early start does not apply."""

    def __init__(self, regions: Sequence[str], options: ConnectionOptions, stack: ExitStack) -> None:
        self._regions = list(regions)
        self._options = options
        self._stack = stack
        self.read: EarlyRead | None = None

    def start(self) -> None:
        """Import the API client and, where the early start applies, start the read's thread. Called after
        `readahead` has forked: a process with a second thread does not fork (the child could inherit a lock
        another thread holds)."""
        regions, self._regions = self._regions, []
        if not regions:
            return
        from reconciler.live import EarlyRead, checked_endpoint  # the API client, imported when it is used

        try:
            endpoint = checked_endpoint(self._options.endpoint) if self._options.endpoint is not None else None
            early = EarlyRead(self._options, endpoint, regions)
        except ReconcilerError:
            return
        # One thread loads the manifests while the loop of the other waits on the network; the collector
        # stays off for both, as each would otherwise have it (`no_cyclic_collections` is per process).
        self._stack.enter_context(no_cyclic_collections())
        self.read = self._stack.enter_context(early)
        early.start()


@contextmanager
def read_early(paths: Sequence[Path], snapshot_file: Path | None, options: ConnectionOptions, *,
               changed_only: bool) -> Iterator[EarlyStart]:
    """For the `with` block around loading the manifests and `live_state`: the live state's read, with each
    hinted region's signature listing in flight while the manifests load (see `EarlyRead`) once
    `EarlyStart.start` is called; leaving the block ends whatever it started.

    Where it applies: the live state read over the network, from the vendor's endpoints or `--endpoint`
    (for one hinted region: it serves one). Not with `--snapshot` (nothing is read), not with
    `--changed-only` (it reads named signatures, not the listing), not with `--emulator` (embedded, no
    latency to hide; its regions come from its state files). Nor when the endpoint or the retry settings
    are invalid: the fetch after loading reports those, in their place.

    Which regions: the hint (`hinted_regions`). What is read and planned comes from the loaded manifests
    alone: a listing started for a region they do not declare is cancelled and its pages dropped; a
    declared region not hinted is read after loading, as without the hint.

    Why a thread: the loading is CPU work in the main thread and holds the GIL; the loop's thread mostly
    waits on sockets and takes the GIL at each switch interval (5 ms), well inside a 50 ms round trip (a
    shorter `sys.setswitchinterval` changed nothing measurable). Errors keep their order: a manifest error
    is reported alone, whatever the early requests met; under `--debug` those requests are logged as they
    are made, before what the loading reports.
    """
    applies = snapshot_file is None and not changed_only and not options.emulator_states
    regions = hinted_regions(paths) if applies else []
    if options.endpoint is not None and len(regions) > 1:
        regions = []
    with ExitStack() as stack:
        yield EarlyStart(regions, options, stack)


# A top-level `region:` line of a manifest, its value plain or quoted, maybe followed by a comment.
_REGION_LINE = re.compile(rb"""^region:[ \t]+(["']?)([a-z0-9-]{1,64})\1[ \t]*(?:#[^\r\n]*)?\r?$""", re.MULTILINE)
# Of each manifest file, where its `region:` line is looked for: it usually comes first, and reading no more
# keeps the hint cheap for a thousand large files.
HINT_BYTES = 16 * 1024


def hinted_regions(paths: Sequence[Path]) -> list[str]:
    """The regions the manifests probably declare, read cheaply from their bytes before they are loaded: the
    first top-level `region:` line in the first `HINT_BYTES` of each file, kept if it is a region id (`REGION_RULE`,
    checked before any host name is built from it). Only a hint: nothing fails here (whatever is wrong is
    reported by the loading), and a file is read as the loading reads it (`read_input_head`: a regular file, never
    a FIFO or a device; a link only within its folder and work tree)."""
    try:
        files = manifest_paths(paths)
    except (ReconcilerError, OSError):
        return []
    found: dict[str, None] = {}
    for file in files:
        try:
            head = read_input_head(file, HINT_BYTES, what="manifest")
        except InputFileError:
            continue
        match = _REGION_LINE.search(head)
        if match is not None and REGION_RULE.fullmatch(region := match.group(2).decode("ascii")):
            found[region] = None
    return sorted(found)


def live_state(desired: DesiredState, snapshot_file: Path | None, options: ConnectionOptions, *, quiet: bool,
               warn: Callable[[str], None], signature_names: Mapping[str, frozenset[str] | None] | None = None,
               early: EarlyRead | None = None) -> dict[str, Snapshot]:
    """The live state to plan against: the saved snapshot file (offline; its secrets' digests checked against
    the manifests' secrets), or read for `desired` from the endpoint, with progress on stderr unless `quiet`;
    with `early` (`read_early`), in its loop, taking over the listings it started."""
    from reconciler.snapshot import check_secrets_ahead, load_snapshot_file

    if snapshot_file is not None:
        if options.endpoint or options.emulator_states:
            raise InputError("give --snapshot, or --endpoint/--emulator, not both")
        snapshots = {s.region: s for s in load_snapshot_file(snapshot_file).snapshots}
        check_secrets_ahead(snapshots, {r.region: {s.name: s.secret.get_secret_value() for s in r.signatures.values()
                                                   if s.secret is not None} for r in desired.regions.values()})
        return snapshots
    if not desired.regions:  # --changed-only with nothing changed: nothing to read
        return {}
    from reconciler.live import open_connection, read_live_state  # imported while the manifests load
    from reconciler.progress import progress_on_stderr

    with (open_connection(options, desired.regions, warn=warn,
                          credential_source=early.credentials if early is not None else None) as connection,
          progress_on_stderr(quiet) as progress):
        return read_live_state(desired, connection, progress, signature_names=signature_names, early=early)
