"""The `plan` command's pipeline around the differ: what to read, and what a reviewer is shown.

`read_plan_inputs` loads the manifests and, given a base, the base's, narrowed to what differs under
--changed-only; `PlanInputs.fetch_view` says what of the live state to read for them (one read serves
the head's plan and the base's). `review_plan` turns the plan into what is shown: the signature policy
checked, each change labelled against the base, narrowed to the targets, the group names added.
`live_state` reads the live state for them, or takes it from a saved snapshot file. `cli.py` parses the
options, calls these, renders and chooses the exit code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.drift import Base, ChangeView, compare_with_base, fetch_base, fetch_view, narrow_to_change, read_base
from reconciler.errors import InputError
from reconciler.manifest import DesiredState, ParsedAhead, ParsedFiles
from reconciler.readahead import read_ahead

if TYPE_CHECKING:  # imported when used: `plan` imports them while its manifests are parsed (`readahead`)
    from reconciler.limits import ConnectionOptions
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
                     changed_only: bool, saves_live_state: bool, meanwhile: Callable[[], object] | None = None
                     ) -> PlanInputs:
    """The head's manifests (`load`), the base's (--base-ref / --base) and, under --changed-only, both narrowed
    to what differs. `saves_live_state`: --out-plan or --save-snapshot, which need all of the live state.

    Where it pays, the manifests are parsed in a child process (`readahead`) while this one runs `meanwhile`
    (the plan imports the API client: about as long as parsing 7 MB) and a thread reads the base from git,
    whose changed files the child then parses too."""
    # A base's files that are the pull request's byte for byte are parsed and validated once.
    parsed: ParsedFiles | None = {} if base_ref is not None or base_path is not None else None
    with read_ahead(paths, [base_path] if base_path is not None else []) as ahead, \
            fetch_base(ref=base_ref, folder=base_path, paths=paths, in_background=ahead.forked,
                       fetched=lambda files: ahead.add(files.written)) as fetched_base:
        if meanwhile is not None and ahead.forked:
            meanwhile()
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


def live_state(desired: DesiredState, snapshot_file: Path | None, options: ConnectionOptions, *, quiet: bool,
               warn: Callable[[str], None], signature_names: Mapping[str, frozenset[str] | None] | None = None
               ) -> dict[str, Snapshot]:
    """The live state to plan against: the saved snapshot file (offline; its secrets' digests checked against
    the manifests' secrets), or read for `desired` from the endpoint, with progress on stderr unless `quiet`."""
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

    with open_connection(options, desired.regions, warn=warn) as connection, progress_on_stderr(quiet) as progress:
        return read_live_state(desired, connection, progress, signature_names=signature_names)
