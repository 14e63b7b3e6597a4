"""Drift or pending change: the plan of a pull request's manifests next to the plan of its base's.

`plan --base-ref REF` (or `--base PATH`) plans both sets of manifests against the same live state,
read once, and labels each change of the pull request's plan:

- `drift`: the base's plan has the same change, so it is pending whether or not the pull request
  merges (the live state was changed by hand, or the base was never applied);
- `introduced`: the base's plan does not have it (or has another change to the same resource);
- `resolved`: a change of the base's plan to a resource the pull request's plan leaves alone.

Design notes:
- Two changes are the same when they agree on address, action, before, after and changed
  attributes; the manifest line (`source`) is ignored, since a pull request moves lines. A change
  that writes a secret (create, or update of the secret) is `introduced` when the two sets of
  manifests give that signature different secrets, even though a plan never shows secrets.
- The base's manifests are read from git with `git ls-tree` and one `git cat-file --batch` for all
  their contents (no checkout, nothing written in the working tree; a git process per file made a
  base of hundreds of files cost seconds), the same paths as given for the pull request, relative to
  the repository's top folder; a file the work tree has unchanged (the same git object id, hashed
  here) is read from the work tree instead. A path the base does not have yet contributes no
  manifest; a base with no manifest at all has an empty plan, so every change is `introduced`.
- The base is fetched while the pull request's manifests load (`fetch_base`; in a thread while they
  are parsed ahead, `readahead`), and its errors are raised after theirs, as when it was read after.
- Errors in the base's manifests are reported with `base REF:` before them and the base's path in
  the repository, and they fail the run: a label computed from a broken base would mislead.
- A region only the base declares is read as well; its changes come out `resolved`.

`--changed-only` (`changed_scope`): a pull request's plan then costs what its change costs. Only
what can differ between the two plans is read and planned: the signatures whose declaration (key,
secret or its reference) differs, and the (group, stage) scopes whose declared bindings differ,
with the API lists of their groups (to resolve API names). Both plans are restricted to that, so
the labels mean what they mean without it; what lies outside is drift, the scheduled drift job's
work. A region whose `prune` or `ignore` differs is read and planned whole (they change how every
live signature is reported), and so is a region only one side declares. Signatures are read by
name (DescribeSignatures' SignatureName, one request each, the result filtered to the exact name)
when at most ten changed (`fetcher.NAMED_SIGNATURE_READS`), else listed whole. A base's file with the
same name and bytes as one of the pull request's is loaded once for both (`manifest.ParsedFiles`: the
base's checks across files still run) and its bindings are left out of the comparison, since they are
the same on both sides: comparing costs what the differing files hold.
"""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence, Set
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.errors import InputError, ReconcilerError
from reconciler.inputfile import read_input
from reconciler.manifest import DesiredState, ParsedAhead, ParsedFiles, RegionDesired, load_desired_state
from reconciler.vendor_rules import Stage
from reconciler.yamlsource import MAX_FILE_BYTES

if TYPE_CHECKING:  # the plan's models are imported while the manifests are parsed (`readahead`), not before
    from reconciler.plan import Change, Plan
    from reconciler.review import BaseComparison
    from reconciler.snapshot import Snapshot

MANIFEST_SUFFIXES = (".yaml", ".yml")
_SYMLINK_MODE = "120000"


def _git(args: Sequence[str], cwd: Path, stdin: bytes | None = None) -> bytes:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, input=stdin, capture_output=True, check=False)
    except OSError as exc:
        raise InputError(f"--base-ref needs git: {exc.strerror}") from None
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise InputError(f"git {args[0]} failed: {message[-1] if message else f'exit code {done.returncode}'}")
    return done.stdout


def _existing_folder(path: Path) -> Path:
    folder = path.absolute()
    while not folder.is_dir():
        folder = folder.parent
    return folder


def checkout_base_manifests(ref: str, paths: Sequence[Path], into: Path,
                            written: dict[Path, bytes] | None = None) -> list[Path]:
    """Write the manifests that `paths` name as they are at git `ref` under `into` (and into `written`, each
    file's bytes by its path); return what to load.

    A folder gives its *.yaml/*.yml files (not recursive, as for the working tree); the result is
    empty when `ref` has none of them."""
    if not paths:
        return []
    here = _existing_folder(paths[0])
    try:
        top = Path(_git(["rev-parse", "--show-toplevel"], here).decode().strip()).resolve()
    except InputError as exc:
        raise InputError(f"{paths[0]}: not in a git repository ({exc}); give the base's manifests with "
                         f"--base PATH instead") from None
    try:
        _git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], top)
    except InputError:
        raise InputError(f"--base-ref {ref}: no such commit in {top} (in CI, fetch the base branch too, "
                         f"e.g. actions/checkout with fetch-depth: 0)") from None
    found: list[Path] = []
    blobs: dict[str, str] = {}  # path in the repository -> object id
    for path in paths:
        try:
            relative = path.resolve().relative_to(top)
        except ValueError:
            raise InputError(f"{path}: not inside the git repository {top}, so --base-ref cannot read it") from None
        folder = path.is_dir()
        spec = f"{relative.as_posix()}/" if folder and relative.parts else relative.as_posix() or "."
        listing = _git(["ls-tree", "-z", ref, "--", spec], top)
        wrote = False
        for entry in filter(None, listing.split(b"\0")):
            meta, _, name = entry.decode("utf-8", "surrogateescape").partition("\t")
            mode, kind, object_id = meta.split(" ", 2)
            if kind != "blob" or mode == _SYMLINK_MODE or not name.endswith(MANIFEST_SUFFIXES):
                continue
            blobs[name] = object_id
            wrote = True
        if wrote:
            found.append(into / relative)
    contents = _same_in_work_tree(blobs, top)
    contents.update(_read_blobs([oid for oid in dict.fromkeys(blobs.values()) if oid not in contents], top))
    for name, object_id in blobs.items():
        target = into / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(contents[object_id])
        if written is not None:
            written[target] = contents[object_id]
    return found


def _same_in_work_tree(blobs: Mapping[str, str], top: Path) -> dict[str, bytes]:
    """The contents of the blobs whose file in the work tree has the same bytes (their git object id is the
    blob's): a pull request changes a few of its files, and git decompressing the others cost more than
    reading and hashing them here. A file that cannot be read is left to git."""
    found: dict[str, bytes] = {}
    for name, object_id in blobs.items():
        try:
            raw = read_input(top / name, limit=MAX_FILE_BYTES, what="manifest", root=top)
        except InputError:
            continue
        if _object_id(raw, len(object_id)) == object_id:
            found[object_id] = raw
    return found


def _object_id(raw: bytes, length: int) -> str:
    """The git object id of a blob of `raw`, SHA-1 or (a repository of 64-digit ids) SHA-256."""
    digest = hashlib.sha1(usedforsecurity=False) if length == 40 else hashlib.sha256()
    digest.update(b"blob %d\0" % len(raw))
    digest.update(raw)
    return digest.hexdigest()


def _read_blobs(object_ids: Sequence[str], top: Path) -> dict[str, bytes]:
    """The contents of git blobs, read by one `git cat-file --batch`."""
    if not object_ids:
        return {}
    output = _git(["cat-file", "--batch"], top, stdin="".join(f"{oid}\n" for oid in object_ids).encode())
    contents: dict[str, bytes] = {}
    offset = 0
    for object_id in object_ids:
        end = output.index(b"\n", offset)
        header = output[offset:end].decode("ascii", "replace").split()
        if len(header) != 3 or header[1] != "blob":
            raise InputError(f"git cat-file failed: {' '.join(header)} for object {object_id}")
        size = int(header[2])
        contents[object_id] = output[end + 1:end + 1 + size]
        offset = end + 1 + size + 1  # the content is followed by a line feed
    return contents


@dataclass(frozen=True)
class Base:
    """The base's manifests, loaded. `root` is the temporary folder a git ref's files were written to (gone
    by now; kept to take it out of error messages)."""

    name: str
    desired: DesiredState
    root: Path | None

    def error(self, exc: ReconcilerError) -> InputError:
        message = str(exc) if self.root is None else str(exc).replace(f"{self.root}/", "")
        return InputError(f"base {self.name}: {message}")


@dataclass(frozen=True)
class BaseFiles:
    """The base's manifest files, fetched before they are loaded: `manifests` to load (under `root`, the
    temporary folder a git ref's files are written to), or the `error` fetching them met."""

    name: str
    manifests: Sequence[Path]
    root: Path | None
    error: Exception | None = None
    written: Mapping[Path, bytes] = field(default_factory=dict)  # a git ref's files, by path: their bytes


@contextmanager
def fetch_base(*, ref: str | None, folder: Path | None, paths: Sequence[Path],
               fetched: Callable[[BaseFiles], object] = lambda files: None, in_background: bool = False
               ) -> Iterator[Callable[[], BaseFiles | None]]:
    """The base given by `--base-ref REF` (the same `paths` at that commit, in a temporary folder removed on
    exit) or `--base FOLDER`, or None for neither: yields the function that returns it. An error is kept,
    and `read_base` raises it: after the pull request's manifests are loaded, so that their errors come
    first, as when nothing was fetched ahead.

    `in_background`: git is read in a thread (its waits let this one go on), and the function waits for it;
    `fetched` is called with a git ref's files as soon as they are written (there, in that thread)."""
    if ref is not None and folder is not None:
        both = BaseFiles("", (), None, InputError("give --base-ref or --base, not both"))
        yield lambda: both
        return
    if folder is not None:
        given = BaseFiles(str(folder), (folder,), None)
        yield lambda: given
        return
    if ref is None:
        yield lambda: None
        return
    with tempfile.TemporaryDirectory(prefix="reconciler-base-") as scratch:
        root = Path(scratch)
        found: list[BaseFiles] = []

        def fetch() -> None:
            written: dict[Path, bytes] = {}
            try:
                manifests = checkout_base_manifests(ref, paths, root, written)
            except Exception as exc:  # raised by read_base, in its turn
                found.append(BaseFiles(ref, [], root, exc))
                return
            files = BaseFiles(ref, manifests, root, None, written)
            fetched(files)
            found.append(files)

        if not in_background:
            fetch()
            yield lambda: found[0]
            return
        thread = threading.Thread(target=fetch, name="reconciler-base-ref")
        thread.start()

        def fetched_files() -> BaseFiles:
            thread.join()
            return found[0]

        try:
            yield fetched_files
        finally:
            thread.join()  # before its folder is removed


def read_base(files: BaseFiles | None, *, env: Mapping[str, str] | None, parsed: ParsedFiles | None = None,
              ahead: ParsedAhead | None = None) -> Base | None:
    """The base's manifests (`fetch_base`), loaded; None for no base."""
    if files is None:
        return None
    if files.error is not None:
        raise files.error
    empty = Base(files.name, DesiredState(regions={}, secrets_checked=env is not None), files.root)
    if not files.manifests:
        return empty
    try:
        return Base(empty.name, load_desired_state(files.manifests, env=env, parsed=parsed, ahead=ahead), empty.root)
    except ReconcilerError as exc:
        raise empty.error(exc) from None


def fetch_view(*states: DesiredState) -> DesiredState:
    """What reading the live state for all of `states` at once needs: every region, every (group, stage)."""
    regions: dict[str, RegionDesired] = {}
    for state in states:
        for name, region in state.regions.items():
            merged = regions.setdefault(name, RegionDesired(region=name))
            merged.bindings.extend(region.bindings)
            if state is states[0]:  # the signature policy checked is the manifests' own, never the base's
                merged.require_signature = region.require_signature
                merged.require_signature_by_group = dict(region.require_signature_by_group)
                merged.policy_sources = dict(region.policy_sources)
    # Signatures any of them may delete (prune): a superset is read; a signature declared by every pruning
    # state is deleted by none of them.
    for name, merged in regions.items():
        pruning = [s.regions[name] for s in states if name in s.regions and s.regions[name].prune]
        if pruning:
            merged.prune = True
            declared = set.intersection(*(set(r.signatures) for r in pruning))
            merged.signatures = {n: sig for r in pruning for n, sig in r.signatures.items() if n in declared}
    return DesiredState(regions=regions, secrets_checked=all(s.secrets_checked for s in states))


def secrets_differ(desired: DesiredState, base: DesiredState) -> set[str]:
    """Addresses of signatures whose desired secret is not the same in both (compared in memory only)."""
    addresses: set[str] = set()
    for name, region in desired.regions.items():
        base_region = base.regions.get(name)
        for signature in region.signatures.values():
            earlier = base_region.signatures.get(signature.name) if base_region is not None else None
            if earlier is None or earlier.secret != signature.secret:
                addresses.add(f"signature.{name}.{signature.name}")
    return addresses


def _same(change: Change, earlier: Change) -> bool:
    return (change.action, change.before, change.after, change.changed) == (
        earlier.action, earlier.before, earlier.after, earlier.changed)


def compare_with_base(plan: Plan, desired: DesiredState, base: Base, snapshots: Mapping[str, Snapshot]
                      ) -> BaseComparison:
    """Plan the base against the same live state and label `plan`'s changes against that plan."""
    from reconciler.differ import diff

    try:
        base_plan = diff(base.desired, snapshots)
    except ReconcilerError as exc:
        raise base.error(exc) from None
    return label_changes(plan, base_plan, base=base.name, secret_changed=secrets_differ(desired, base.desired))


def label_changes(plan: Plan, base_plan: Plan, *, base: str, secret_changed: Set[str] = frozenset()
                  ) -> BaseComparison:
    """Every change of `plan` labelled against `base_plan`, and the base's other changes, resolved (without
    `source`: it names a line of the base, which the pull request's files may not have)."""
    from reconciler.plan import Resource
    from reconciler.review import BaseComparison, Label

    earlier_by_address = {c.address: c for c in base_plan.changes}
    labels: dict[str, Label] = {}
    for change in plan.changes:
        earlier = earlier_by_address.get(change.address)
        drift = (earlier is not None and _same(change, earlier)
                 and not (change.resource is Resource.SIGNATURE and change.writes_secret
                          and change.address in secret_changed))
        labels[change.address] = Label.DRIFT if drift else Label.INTRODUCED
    resolved = tuple(c.model_copy(update={"source": None}) for c in base_plan.changes if c.address not in labels)
    return BaseComparison(name=base, labels=labels, resolved=resolved, regions=base_plan.regions)


@dataclass(frozen=True)
class ChangedPart:
    """What of one region a `--changed-only` plan covers: these signatures (None: all of them) and scopes."""

    signatures: frozenset[str] | None
    scopes: frozenset[tuple[str, Stage]]



_Declared = tuple[dict[str, tuple[str, str | None, str | None]], dict[tuple[str, Stage], dict[str, set[str]]]]


def _declared(region: RegionDesired | None, shared: Set[str] = frozenset()) -> _Declared:
    """A region's declarations as comparable values (no lines): signature name -> (key, secret or its
    reference), and (group, stage) -> signature -> {API}; without the bindings of the files `shared`."""
    if region is None:
        return {}, {}
    signatures = {s.name: (s.key, s.secret_variable, s.secret.get_secret_value() if s.secret is not None else None)
                  for s in region.signatures.values()}
    return signatures, region.declared_scopes(leaving_out=shared)


def _shared_files(head: RegionDesired | None, base: RegionDesired | None) -> frozenset[str]:
    """The files both sides loaded as one (`ParsedFiles`: the same name and bytes). Their bindings are the
    same on both sides and no other file of either side binds the same API of the same (group, stage) (that
    is a load error), so a scope's bindings differ exactly when those of the other files differ."""
    if head is None or base is None:
        return frozenset()
    return frozenset(head.files) & frozenset(base.files)


def _scopes(region: RegionDesired | None) -> list[tuple[str, Stage]]:
    return region.scopes() if region is not None else []


def changed_scope(desired: DesiredState, base: DesiredState) -> dict[str, ChangedPart]:
    """Per region, what differs between the pull request's declarations and the base's (see the module
    docstring); a region where nothing differs is absent."""
    changed: dict[str, ChangedPart] = {}
    for name in sorted({*desired.regions, *base.regions}):
        head_region, base_region = desired.regions.get(name), base.regions.get(name)
        shared = _shared_files(head_region, base_region)
        head_signatures, head_scopes = _declared(head_region, shared)
        base_signatures, base_scopes = _declared(base_region, shared)
        whole = (head_region is None or base_region is None
                 or (head_region.prune, set(head_region.ignore)) != (base_region.prune, set(base_region.ignore)))
        if whole:  # every scope, those of the files both sides share too
            changed[name] = ChangedPart(None, frozenset({*_scopes(head_region), *_scopes(base_region)}))
            continue
        scopes = frozenset(s for s in {*head_scopes, *base_scopes} if head_scopes.get(s) != base_scopes.get(s))
        names = frozenset(n for n in {*head_signatures, *base_signatures}
                          if head_signatures.get(n) != base_signatures.get(n))
        if names or scopes:
            changed[name] = ChangedPart(names, scopes)
    return changed


def restrict(state: DesiredState, scope: Mapping[str, ChangedPart]) -> DesiredState:
    """`state` with only the regions, signatures and binding scopes of `scope`."""
    regions: dict[str, RegionDesired] = {}
    for name, region_scope in scope.items():
        region = state.regions.get(name)
        if region is None:
            continue
        wanted = region_scope.signatures
        narrowed = regions[name] = RegionDesired(
            region=name, prune=region.prune, ignore=region.ignore, files=region.files,
            signatures={n: s for n, s in region.signatures.items() if wanted is None or n in wanted})
        narrowed.bindings.extend(region.bindings_in(region_scope.scopes))
    return DesiredState(regions=regions, secrets_checked=state.secrets_checked, warnings=state.warnings)


def restrict_snapshots(snapshots: Mapping[str, Snapshot], scope: Mapping[str, ChangedPart]) -> dict[str, Snapshot]:
    """The regions of `scope`, with the live signatures of `scope` only (a listing read whole holds the others
    too, and so does a snapshot file)."""
    narrowed: dict[str, Snapshot] = {}
    for region, snapshot in snapshots.items():
        if region not in scope:
            continue
        wanted = scope[region].signatures
        narrowed[region] = snapshot if wanted is None else snapshot.model_copy(
            update={"signatures": tuple(s for s in snapshot.signatures if s.name in wanted)})
    return narrowed


@dataclass(frozen=True)
class ChangeView:
    """Both sets of manifests narrowed to what differs between them, and how to read the live state for it."""

    desired: DesiredState
    base: Base
    scope: Mapping[str, ChangedPart]

    @property
    def signature_names(self) -> dict[str, frozenset[str] | None]:
        """Per region, the signatures to read (None: all of them)."""
        return {region: scope.signatures for region, scope in self.scope.items()}

    def snapshots(self, snapshots: Mapping[str, Snapshot]) -> dict[str, Snapshot]:
        return restrict_snapshots(snapshots, self.scope)


def narrow_to_change(desired: DesiredState, base: Base) -> ChangeView:
    """`plan --changed-only`: see the module docstring."""
    scope = changed_scope(desired, base.desired)
    return ChangeView(restrict(desired, scope), Base(base.name, restrict(base.desired, scope), base.root), scope)
