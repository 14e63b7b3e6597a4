"""The desired state: loading manifests (one file or a folder) and every check on them; the pydantic model
of a manifest file, which decides what the quick check declines and words its errors, is `manifest_model`.

A manifest file declares, for one region, the signature keys and which APIs
each is bound to (see README "Manifest format"). Several files may declare the
same region; they merge into one `RegionDesired`, and a conflict between files
is an error naming both.

Design notes:
- An API in `apis` is taken as an id when it is 32 lowercase hex characters
  (the vendor's id format), otherwise as an API name resolved in its group.
- A secret is `${env:NAME}` (the whole value) or, discouraged, a literal.
  Variables come from the process environment first, then from the `--env-file`s,
  a later file winning over an earlier one (the environment wins, as with docker
  compose and dotenv).
- A signature name both declared and matched by an `ignore` glob is an error:
  the manifest would both manage and ignore it.
- `prune` must agree across the files of one region (an explicit `true` in
  one file and `false` in another is an error); an absent `prune` defers.
- Signature policy: `require_signature: [STAGE, ...]` applies to every API group
  of the region; `require_signature_by_group: {GROUP_ID: [STAGE, ...]}` replaces
  it for one group (`[]` exempts the group); RELEASE and TEST only, the stages whose
  bindings the vendor documents reading. Like `prune`, the region-level list
  must agree across files; a group given in two files is an error naming both.
"""

from __future__ import annotations

import fnmatch
import os
import pickle
import re
from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from reconciler.errors import InputError, ManifestError, ManifestErrors, raise_collected
from reconciler.gcrelax import no_cyclic_collections
from reconciler.inputfile import check_link, read_input_text
from reconciler.vendor_rules import (
    REGION_RULE,
    RESOURCE_ID_RULE,
    SIGNATURE_KEY_RULE,
    SIGNATURE_NAME_RULE,
    SIGNATURE_SECRET_HINT,
    SIGNATURE_SECRET_RULE,
    STAGES,
    UNMANAGED_STAGE_HINT,
    Stage,
)
from reconciler.yamlsource import YamlDocument, YamlLines, parse_yaml_document, read_yaml_bytes

if TYPE_CHECKING:
    from pydantic import SecretStr

    from reconciler.manifest_model import ManifestFile

ENV_REFERENCE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")

# `${env:NAME}` never resolves a variable named like a credential (matched upper-cased, as globs), so a
# reviewed and merged manifest cannot set a signature secret to the cloud credential or a CI token, which
# anyone able to call the API could then read back in clear from DescribeSignatures.
CREDENTIAL_VARIABLES = (
    # The vendor's credentials, as its SDKs, CLI and Terraform provider read them.
    "ALIBABA_CLOUD_*", "ALICLOUD_*", "ALIYUN_*",
    # The CI systems' own: GitHub's job token and runner tokens, GitLab's job token and JWTs.
    "GITHUB_TOKEN", "GH_TOKEN", "ACTIONS_*", "CI_JOB_*",
    # Anything else named like a credential.
    "*TOKEN", "*PASSWORD", "*PASSWD", "*PASSPHRASE", "*_JWT", "*_JWT_*", "*API_KEY", "*PRIVATE_KEY",
    "*SECRET_KEY", "*ACCESS_KEY", "*ACCESS_KEY_ID", "*ACCESS_KEY_SECRET", "*CREDENTIALS",
)
ENV_FILE_MAX_BYTES = 1024 * 1024


# The globs as one expression: 21 fnmatch calls a signature took an eighth of loading 20,000 of them.
_CREDENTIAL_VARIABLE = re.compile("|".join(fnmatch.translate(pattern) for pattern in CREDENTIAL_VARIABLES))


def is_credential_variable(name: str) -> bool:
    return _CREDENTIAL_VARIABLE.match(name.upper()) is not None


def allowed_secret_variable(variable: str) -> str:
    """`variable`, or `SIGNATURE_<variable>` when it is named like a credential (ALIYUN_X_SECRET)."""
    return f"SIGNATURE_{variable}" if is_credential_variable(variable) else variable



# A secret the manifest takes: a whole reference, or a literal within the vendor's rule (which has no `$`).
_SECRET_RULE = re.compile(f"{ENV_REFERENCE.pattern}|{SIGNATURE_SECRET_RULE.pattern}")


SignatureEntry = tuple[str, str, str]
"""A validated `signatures` entry: name, key, secret (a literal or `${env:NAME}`)."""
BindingEntry = tuple[str, Stage, str, list[str]]
"""A validated `bindings` entry: group, stage, signature, apis."""


@dataclass(frozen=True, slots=True)
class CheckedManifest:
    """One manifest file that `ManifestFile` validates, as plain values (a model instance per entry cost more to
    build and to keep than the checks themselves)."""

    region: str
    prune: bool | None
    ignore: list[str]
    signatures: list[SignatureEntry]
    bindings: list[BindingEntry]
    require_signature: list[Stage] | None  # None: not given (`[]` is given)
    require_signature_by_group: dict[str, list[Stage]]

    @classmethod
    def of(cls, model: ManifestFile) -> CheckedManifest:
        return cls(model.region, model.prune, model.ignore, [(s.name, s.key, s.secret) for s in model.signatures],
                   [(b.group, b.stage, b.signature, b.apis) for b in model.bindings],
                   model.require_signature if "require_signature" in model.model_fields_set else None,
                   model.require_signature_by_group)


# The fields of ManifestFile, SignatureSpec and BindingSpec (`manifest_model`; a test holds them equal).
_MANIFEST_FIELDS = frozenset({"region", "prune", "ignore", "signatures", "bindings", "require_signature",
                              "require_signature_by_group"})
_SIGNATURE_FIELDS = frozenset({"name", "key", "secret"})
_BINDING_FIELDS = frozenset({"group", "stage", "signature", "apis"})
_ANY_STAGE: dict[str, Stage] = {stage: stage for stage in STAGES}
_MANAGED_STAGE: dict[str, Stage] = {"RELEASE": "RELEASE", "TEST": "TEST"}


def check_manifest(data: Any) -> CheckedManifest | None:
    """What `ManifestFile.model_validate(data)` gives, when it certainly succeeds; else None, and the model
    decides (and words every error).

    The model's rules written as one loop over plain values, several times faster than the model on a large
    manifest; it accepts nothing the model refuses (tests/manifest/test_manifest_check.py compares
    them over generated values), and a group id or signature name that repeats is checked and kept once.
    """
    if type(data) is not dict or not data.keys() <= _MANIFEST_FIELDS:
        return None
    region, prune = data.get("region"), data.get("prune")
    ignore = data.get("ignore", [])
    require = data.get("require_signature", [])
    by_group = data.get("require_signature_by_group", {})
    if (type(region) is not str or not REGION_RULE.fullmatch(region)
            or (prune is not None and type(prune) is not bool)
            or type(ignore) is not list or not all(type(p) is str and p.strip() for p in ignore)
            or not _stage_list(require)
            or type(by_group) is not dict or not all(type(g) is str and _stage_list(s) for g, s in by_group.items())):
        return None
    signatures = _signature_entries(data.get("signatures", []))
    bindings = _binding_entries(data.get("bindings", []))
    if signatures is None or bindings is None:
        return None
    return CheckedManifest(region, prune, ignore, signatures, bindings,
                           require if "require_signature" in data else None, by_group)


def _stage_list(value: Any) -> bool:
    return type(value) is list and all(type(s) is str and s in _ANY_STAGE for s in value)


def _signature_entries(entries: Any) -> list[SignatureEntry] | None:
    if type(entries) is not list:
        return None
    name_rule, key_rule = SIGNATURE_NAME_RULE.fullmatch, SIGNATURE_KEY_RULE.fullmatch
    secret_rule = _SECRET_RULE.fullmatch
    out: list[SignatureEntry] = []
    for entry in entries:
        if type(entry) is not dict or entry.keys() != _SIGNATURE_FIELDS:
            return None
        name, key, secret = entry["name"], entry["key"], entry["secret"]
        if (type(name) is not str or type(key) is not str or type(secret) is not str
                or not name_rule(name) or not key_rule(key) or not secret_rule(secret)):
            return None
        out.append((name, key, secret))
    return out


def _binding_entries(entries: Any) -> list[BindingEntry] | None:
    if type(entries) is not list:
        return None
    group_rule, name_rule = RESOURCE_ID_RULE.fullmatch, SIGNATURE_NAME_RULE.fullmatch
    groups: dict[str, str] = {}
    names: dict[str, str] = {}
    out: list[BindingEntry] = []
    for entry in entries:
        if type(entry) is not dict or entry.keys() != _BINDING_FIELDS:
            return None
        group, stage, signature, apis = entry["group"], entry["stage"], entry["signature"], entry["apis"]
        if type(group) is not str or type(stage) is not str or type(signature) is not str or type(apis) is not list:
            return None
        known_group, known_name, managed = groups.get(group), names.get(signature), _MANAGED_STAGE.get(stage)
        if known_group is None:
            if not group_rule(group):
                return None
            known_group = groups[group] = group
        if known_name is None:
            if not name_rule(signature):
                return None
            known_name = names[signature] = signature
        if managed is None or not apis:
            return None
        for api in apis:
            if type(api) is not str or not api.strip():
                return None
        out.append((known_group, managed, known_name, apis))
    return out


# ---------------------------------------------------------------- desired state


class Location:
    """FILE:LINE of a manifest entry.

    A line can be given, or found when first asked for (`find`): a manifest read through the fast
    path has no positions, and a plan names the lines of its changes, not of all 40,000 bindings.
    """

    __slots__ = ("_find", "_line", "file")

    def __init__(self, file: str, line: int | None = None, *, find: Callable[[], int] | None = None) -> None:
        if line is None and find is None:
            raise ValueError("a Location needs a line or a way to find it")
        self.file = file
        self._line = line
        self._find = find

    @property
    def line(self) -> int:
        if self._line is None:
            self._line = self._look_up()
            self._find = None
        return self._line

    def _look_up(self) -> int:
        assert self._find is not None
        return self._find()

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"

    def __repr__(self) -> str:
        return f"Location({self.file!r}, {self.line})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Location):
            return NotImplemented
        return (self.file, self.line) == (other.file, other.line)

    def __hash__(self) -> int:
        return hash((self.file, self.line))


class _ApiLocation(Location):
    """The place of `bindings[index].apis[item]`, looked up when first asked for: a manifest can list 40,000
    APIs, and this holds no path tuple and no closure for each."""

    __slots__ = ("_index", "_item", "_lines")

    def __init__(self, file: str, lines: YamlLines, index: int, item: int) -> None:
        self.file = file
        self._line = None
        self._find = None
        self._lines = lines
        self._index = index
        self._item = item

    def _look_up(self) -> int:
        return self._lines.line_of(("bindings", self._index, "apis", self._item))


def _location(doc: YamlDocument, loc: tuple[str | int, ...]) -> Location:
    """Where `loc` is in `doc`: at once from an exact reading (whose node tree is then let go), else
    when first needed."""
    if doc.exact:
        return Location(doc.path, doc.line_of(loc))
    return Location(doc.path, find=partial(doc.lines.line_of, loc))


@dataclass(frozen=True, slots=True)
class DesiredSignature:
    name: str
    key: str
    # None when secrets are not checked (--skip-secrets).
    secret: SecretStr | None
    secret_variable: str | None
    location: Location


class DesiredBinding(NamedTuple):
    """One API bound to a signature in one (group, stage). A named tuple: a frozen dataclass took several times
    as long to build, and a manifest can bind hundreds of thousands of APIs."""

    group: str
    stage: Stage
    signature: str
    api: str
    api_is_id: bool
    location: Location


# (group, stage, api, signature) -> bool: see `RegionDesired.bindings_unless`.
BindingMatch = Callable[[str, Stage, str, str], bool]


class FileBindings:
    """The `bindings` entries of one manifest file, checked, built into `DesiredBinding`s when first needed.

    A pull request's plan under `--changed-only` reads a few (group, stage) scopes of what can be hundreds
    of thousands of bindings: it builds those only (`in_scopes`), while the whole is still checked when
    loaded (each API bound once per scope, each signature declared). A file the base shares with the pull
    request (`ParsedFiles`) has one `FileBindings`, built once for both, and so is the summary those checks
    read (the first entry of each scope and of each signature, the APIs of each scope), made once per file.
    """

    __slots__ = ("_apis_by_scope", "_built", "_entries", "_pickled_entries", "_scope_sources", "bound_once", "doc",
                 "first_entries", "first_uses")

    def __init__(self, doc: YamlDocument, entries: list[BindingEntry]) -> None:
        self.doc = doc
        self._entries: list[BindingEntry] | None = entries
        self._pickled_entries: bytes | None = None
        self._built: list[DesiredBinding] | None = None
        self._scope_sources: dict[tuple[str, Stage], Location] | None = None
        self.first_entries, self._apis_by_scope, self.first_uses = _summary(entries)
        self.bound_once = self._apis_by_scope is not None  # no API bound twice in one of its scopes

    @property
    def entries(self) -> list[BindingEntry]:
        if self._entries is None:
            assert self._pickled_entries is not None
            self._entries, self._pickled_entries = pickle.loads(self._pickled_entries), None
        return self._entries

    def scope_sources(self) -> dict[tuple[str, Stage], Location]:
        """Where each scope's first entry lies (`RegionDesired.scope_sources`), made once for every load."""
        if self._scope_sources is None:
            self._scope_sources = {scope: _location(self.doc, ("bindings", index))
                                   for scope, index in self.first_entries.items()}
        return self._scope_sources

    def apis_in(self, scope: tuple[str, Stage]) -> Set[str]:
        """The APIs bound in `scope` (a scope of this file without an API bound twice)."""
        if self._apis_by_scope is None:
            self._apis_by_scope = _summary(self.entries)[1]
        assert self._apis_by_scope is not None, "apis_in of a file that binds an API twice in a scope"
        return self._apis_by_scope[scope]

    def __getstate__(self) -> tuple[object, ...]:
        # Passed between processes (`readahead`) with the entries pickled apart, taken out when first read: a pull
        # request's plan reads those of the few files that differ from its base. And without the APIs of each
        # scope: needed only for a scope that several files bind in (`_bound_once`), they are made again then.
        entries = self._pickled_entries or pickle.dumps(self.entries, protocol=pickle.HIGHEST_PROTOCOL)
        return self.doc, entries, self._built, self.first_entries, self.first_uses, self.bound_once

    def __setstate__(self, state: tuple[object, ...]) -> None:
        self.doc, self._pickled_entries, self._built, self.first_entries, self.first_uses, self.bound_once = state  # type: ignore[assignment]
        self._entries = None
        self._apis_by_scope = None
        self._scope_sources = None

    def all(self) -> list[DesiredBinding]:
        if self._built is None:
            self._built = self._build(None)
        return self._built

    def in_scopes(self, scopes: Set[tuple[str, Stage]]) -> list[DesiredBinding]:
        if self._built is not None:
            return [b for b in self._built if (b.group, b.stage) in scopes]
        if scopes.isdisjoint(self.first_entries):  # the usual file of a pull request's plan: nothing to build
            return []
        return self._build(scopes)

    def unless(self, matches: BindingMatch) -> list[DesiredBinding]:
        """Like `RegionDesired.bindings_unless`; an entry's places are made only when one of its APIs is kept."""
        api_id = RESOURCE_ID_RULE.fullmatch
        if self._built is not None:
            return [b for b in self._built if not (b.api_is_id and matches(b.group, b.stage, b.api, b.signature))]
        built: list[DesiredBinding] = []
        for index, (group, stage, signature, apis) in enumerate(self.entries):
            locations: list[Location] | None = None
            for item, api in enumerate(apis):
                is_id = api_id(api) is not None
                if not (is_id and matches(group, stage, api, signature)):
                    locations = locations or _api_locations(self.doc, index, len(apis))
                    built.append(DesiredBinding(group, stage, signature, api, is_id, locations[item]))
        return built

    def _build(self, scopes: Set[tuple[str, Stage]] | None) -> list[DesiredBinding]:
        # One tight loop: a manifest can bind 200,000 APIs.
        doc, api_id = self.doc, RESOURCE_ID_RULE.fullmatch
        built: list[DesiredBinding] = []
        add = built.append
        for index, (group, stage, signature, apis) in enumerate(self.entries):
            if scopes is not None and (group, stage) not in scopes:
                continue
            for api, location in zip(apis, _api_locations(doc, index, len(apis)), strict=True):
                add(DesiredBinding(group, stage, signature, api, api_id(api) is not None, location))
        return built


def _summary(entries: list[BindingEntry]) -> tuple[dict[tuple[str, Stage], int],
                                                   Mapping[tuple[str, Stage], Set[str]] | None, dict[str, int]]:
    """The index of the first entry of each (group, stage) and of each signature, in the order met, and the APIs
    bound in each (group, stage); None for those when an API is bound twice in one of them."""
    first_entries: dict[tuple[str, Stage], int] = {}
    first_uses: dict[str, int] = {}
    apis_by_scope: dict[tuple[str, Stage], set[str]] = {}
    bound_once = True
    for index, (group, stage, signature, apis) in enumerate(entries):
        if signature not in first_uses:
            first_uses[signature] = index
        in_scope = apis_by_scope.get((group, stage))
        if in_scope is None:
            first_entries[(group, stage)] = index
            in_scope = apis_by_scope[(group, stage)] = set()
        if bound_once:
            before = len(in_scope)
            in_scope.update(apis)
            bound_once = len(in_scope) - before == len(apis)
    return first_entries, apis_by_scope if bound_once else None, first_uses


def _api_locations(doc: YamlDocument, index: int, count: int) -> list[Location]:
    """The places of `bindings[index].apis[0:count]`: at once from an exact reading, else when first asked for."""
    if doc.exact:
        return [Location(doc.path, line) for line in doc.item_lines(("bindings", index, "apis"), count)]
    path, lines = doc.path, doc.lines
    return [_ApiLocation(path, lines, index, item) for item in range(count)]


@dataclass(eq=False)
class RegionDesired:
    """One region's declarations, merged from its files.

    A loaded region keeps its files' binding entries (`FileBindings`) and builds `bindings` from them when first
    asked for; `bindings_in` and `declared_scopes` read them without building the rest. (So two regions are
    equal only when they are the same object: fields compared would say nothing of bindings not built.)"""

    region: str
    prune: bool = False
    ignore: tuple[str, ...] = ()
    signatures: dict[str, DesiredSignature] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    # (group, stage) -> the first binding entry that mentions it: where an unbind there comes from.
    scope_sources: dict[tuple[str, Stage], Location] = field(default_factory=dict)
    require_signature: tuple[Stage, ...] = ()
    require_signature_by_group: dict[str, tuple[Stage, ...]] = field(default_factory=dict)
    policy_sources: dict[str, Location] = field(default_factory=dict)  # group id ("" = region) -> where set
    _unbuilt: list[FileBindings] = field(default_factory=list, init=False, repr=False)
    _built: list[DesiredBinding] = field(default_factory=list, init=False, repr=False)

    @property
    def bindings(self) -> list[DesiredBinding]:
        """Every binding, in the order of the files, their entries and their API lists."""
        if self._unbuilt:
            # Built once and kept as long as the command: frozen out of the cyclic collector's reach.
            with no_cyclic_collections():
                for file_bindings in self._unbuilt:
                    self._built += file_bindings.all()
            self._unbuilt = []
        return self._built

    def binding_count(self) -> int:
        """`len(bindings)`, without building them."""
        return len(self._built) + sum(len(apis) for file_bindings in self._unbuilt
                                      for _, _, _, apis in file_bindings.entries)

    def bindings_in(self, scopes: Set[tuple[str, Stage]]) -> list[DesiredBinding]:
        """The bindings of `scopes`, in the order of `bindings`; only those are built."""
        built = [b for b in self._built if (b.group, b.stage) in scopes]
        return built + [b for file_bindings in self._unbuilt for b in file_bindings.in_scopes(scopes)]

    def bindings_unless(self, matches: BindingMatch) -> list[DesiredBinding]:
        """The bindings, in the order of `bindings`, but those given by API id for which `matches(group, stage,
        api, signature)` is true (asked once for each, in that order); only the rest are built (a plan finds
        most bindings bound live as the manifests say)."""
        built = [b for b in self._built if not (b.api_is_id and matches(b.group, b.stage, b.api, b.signature))]
        return built + [b for file_bindings in self._unbuilt for b in file_bindings.unless(matches)]

    def declared_scopes(self, leaving_out: Set[str] = frozenset()) -> dict[tuple[str, Stage], dict[str, set[str]]]:
        """(group, stage) -> signature -> {API}: what each scope declares, lines aside, without the bindings of
        the files `leaving_out`. (By signature: a set update per entry, no pair per API.)"""
        scopes: dict[tuple[str, Stage], dict[str, set[str]]] = {}
        for b in self._built:
            if b.location.file not in leaving_out:
                scopes.setdefault((b.group, b.stage), {}).setdefault(b.signature, set()).add(b.api)
        for file_bindings in self._unbuilt:
            if file_bindings.doc.path not in leaving_out:
                for group, stage, signature, apis in file_bindings.entries:
                    scopes.setdefault((group, stage), {}).setdefault(signature, set()).update(apis)
        return scopes

    def required_stages(self, group: str) -> tuple[Stage, ...]:
        """Stages in which the published APIs of `group` must be signed (the signature policy)."""
        return self.require_signature_by_group.get(group, self.require_signature)

    @property
    def has_policy(self) -> bool:
        return bool(self.require_signature) or any(self.require_signature_by_group.values())

    def is_ignored(self, signature_name: str) -> bool:
        return any(fnmatch.fnmatchcase(signature_name, pattern) for pattern in self.ignore)

    def scopes(self) -> list[tuple[str, Stage]]:
        """Every (group, stage) a manifest mentions, in first-mention order."""
        return list(dict.fromkeys([*((b.group, b.stage) for b in self._built),
                                   *((group, stage) for file_bindings in self._unbuilt
                                     for group, stage, _, _ in file_bindings.entries)]))


@dataclass(frozen=True)
class ManifestWarning:
    """Something allowed but discouraged, at one place of a manifest; `str()` is its one line."""

    kind: str  # the same for every warning of its class, e.g. "literal secret"
    location: Location
    field: str
    advice: str

    def __str__(self) -> str:
        return f"{self.location}: {self.field}: {self.kind}; {self.advice}"


def warning_lines(warnings: Sequence[ManifestWarning], *, each: bool = False) -> list[str]:
    """One line per warning when `each`; otherwise a class of warning that repeats in a file is one line
    with a count and the first place (300 literal secrets are one line, not 300)."""
    if each:
        return [str(w) for w in warnings]
    groups: dict[tuple[str, str], list[ManifestWarning]] = {}
    for warning in warnings:
        groups.setdefault((warning.location.file, warning.kind), []).append(warning)
    lines: list[str] = []
    for (file, kind), group in groups.items():
        first = group[0]
        if len(group) == 1:
            lines.append(str(first))
        else:
            lines.append(f"{file}: {kind} in {len(group)} places (first: line {first.location.line}, {first.field}); "
                         f"{first.advice} (--debug lists each)")
    return lines


@dataclass
class DesiredState:
    regions: dict[str, RegionDesired]
    secrets_checked: bool
    warnings: list[ManifestWarning] = field(default_factory=list)


# ---------------------------------------------------------------- loading


def field_path(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _validate(doc: YamlDocument) -> CheckedManifest:
    checked = check_manifest(doc.data)
    if checked is not None:
        return checked
    from reconciler.manifest_model import validated  # pydantic, imported only where the model decides

    return validated(doc)


def _holds_manifests(folder: Path) -> bool:
    return any(p.suffix in (".yaml", ".yml") and p.is_file() for p in folder.rglob("*"))


def manifest_paths(paths: Iterable[Path]) -> list[Path]:
    """Expand folders to their *.yaml / *.yml files (sorted; not recursive).

    Subfolders are not read: a folder per environment (`manifests/staging/`) is a set of manifests of its
    own, and merging it silently into its parent would plan one environment's keys into another's region.
    So a subfolder that holds manifests is an error, unless it is given as a PATH itself; hidden folders
    (`.git`, `.github`) are left alone.
    """
    given = list(paths)
    named = {p.resolve() for p in given if p.is_dir()}
    out: list[Path] = []
    for path in given:
        # A symbolic link (the folder, or a file in it) must stay inside the folder and its work tree;
        # anything not a regular file is refused when read (inputfile).
        check_link(path, None)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and not p.is_dir())
            for sub in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")):
                if sub.resolve() not in named and _holds_manifests(sub):
                    raise InputError(f"{sub}: subfolders are not read; give it as a PATH of its own to plan "
                                     f"it together with {path}, or move its manifests out")
            if not found:
                raise InputError(f"{path}: no *.yaml or *.yml manifests in this folder")
            for file in found:
                check_link(file, path)
            out.extend(found)
        elif os.path.lexists(path):
            out.append(path)
        else:
            raise InputError(f"{path}: no such file or folder")
    return list(dict.fromkeys(out))


def load_env_file(path: Path) -> dict[str, str]:
    """Variables from a dotenv file (for demos and local runs)."""
    import io

    from dotenv import dotenv_values

    if not os.path.lexists(path):
        raise InputError(f"{path}: env file not found")
    text = read_input_text(path, limit=ENV_FILE_MAX_BYTES, what="env file")
    return {k: v for k, v in dotenv_values(stream=io.StringIO(text)).items() if v is not None}


def _resolve_secret(doc: YamlDocument, index: int, name: str, secret: str, variable: str | None,
                    env: Mapping[str, str] | None) -> SecretStr | None:
    """The secret of `signatures[index]`: the literal `secret`, or the value of `variable` (its `${env:...}`)."""
    if variable is not None and is_credential_variable(variable):
        example = allowed_secret_variable(name.upper() + "_SECRET") if name.isascii() else "SIG_01_SECRET"
        raise _secret_error(doc, index, f"${{env:{variable}}} may not be used: {variable} is named like a credential "
                                        f"(of the cloud, the CI system or a token), never a signature secret; use a "
                                        f"variable of your own, e.g. {example}")
    if env is None:
        return None
    from pydantic import SecretStr  # imported with the first secret, not to parse manifests ahead (`readahead`)

    if variable is None:
        return SecretStr(secret)
    value = env.get(variable)
    if value is None:
        raise _secret_error(doc, index, f"environment variable {variable} is not set (set it, use --env-file, "
                                        f"or plan with --skip-secrets)")
    if not value:
        # What an undefined secret of a CI system becomes (`${{ secrets.X }}` in GitHub Actions).
        raise _secret_error(doc, index, f"environment variable {variable} is set but empty (in CI: is the secret "
                                        f"defined for this repository and job?)")
    if not SIGNATURE_SECRET_RULE.fullmatch(value):
        raise _secret_error(doc, index, f"the value of {variable} breaks the vendor's rule: {SIGNATURE_SECRET_HINT}")
    return SecretStr(value)


def _secret_error(doc: YamlDocument, index: int, message: str) -> ManifestError:
    return ManifestError(doc.path, doc.line_of(("signatures", index, "secret")), f"signatures[{index}].secret",
                         message)


@dataclass
class ParsedFile:
    """One validated manifest; its bindings are built when first needed. (`manifest` holds the other fields:
    its binding entries are `bindings.entries`.)"""

    doc: YamlDocument
    manifest: CheckedManifest
    bindings: FileBindings


ParsedFiles = dict[tuple[str, bytes], ParsedFile]
"""Validated manifests by (file name, bytes): a base's file byte for byte the pull request's is parsed,
validated and built once (the same bytes give the same value; its lines are named by the first file that
had them). Checks across files (duplicates, conflicts, references) still run for each side."""

ParsedAhead = Mapping[str, tuple[bytes, ParsedFile | ManifestError | ManifestErrors | None]]
"""Manifest files read before loading (`readahead`), by path: their bytes (read as `read_yaml_bytes` reads) and
what `parse_manifest` gave or raised for them (None: not parsed yet)."""


def load_desired_state(paths: Iterable[Path], *, env: Mapping[str, str] | None,
                       parsed: ParsedFiles | None = None, ahead: ParsedAhead | None = None) -> DesiredState:
    """Load, validate and merge manifests. `env=None` means secrets are not resolved (--skip-secrets).
    `parsed`, when given, is read for files parsed before and gets the files parsed now; `ahead` holds files
    read (and parsed, in another process) before, each taken as if read (and parsed) here.

    Every independent error is collected (ManifestErrors): each file that cannot be read or validated,
    and each entry of the others that breaks a rule. Checks across entries that a broken file could
    have satisfied (a binding naming a signature) run only when every file loaded, so that one broken
    file does not cause a cascade of errors that are not really there.
    """
    # Loading builds large, acyclic structures: the cyclic collector only slows it down.
    with no_cyclic_collections():
        return _load_desired_state(paths, env=env, parsed=parsed, ahead=ahead)


def parse_manifest(path: Path, raw: bytes) -> ParsedFile:
    """Parse and validate the manifest `path`, whose bytes are `raw`; raises ManifestError(s)."""
    doc = parse_yaml_document(str(path), raw)
    manifest = _validate(doc)
    doc.data = None  # validated: the model holds what is needed, the raw value would only add to the peak
    return ParsedFile(doc, replace(manifest, bindings=[]), FileBindings(doc, manifest.bindings))


def _read_manifest(path: Path, parsed: ParsedFiles | None, ahead: ParsedAhead | None) -> ParsedFile:
    read_before = ahead.get(str(path)) if ahead is not None else None
    raw, outcome = read_before if read_before is not None else (read_yaml_bytes(path), None)
    key = (path.name, raw)
    known = parsed.get(key) if parsed is not None else None
    if known is not None:
        return known
    if outcome is None:
        read = parse_manifest(path, raw)
    elif isinstance(outcome, ParsedFile):
        read = outcome
    else:
        raise outcome
    if parsed is not None:
        parsed[key] = read
    return read


def _load_desired_state(paths: Iterable[Path], *, env: Mapping[str, str] | None,
                        parsed: ParsedFiles | None, ahead: ParsedAhead | None) -> DesiredState:
    merged = _Merged(env)
    files_failed = False
    for path in manifest_paths(paths):
        try:
            read = _read_manifest(path, parsed, ahead)
        except ManifestErrors as exc:
            merged.errors += exc.errors
            files_failed = True
            continue
        except ManifestError as exc:
            merged.errors.append(exc)
            files_failed = True
            continue
        merged.add(read)
    if not files_failed:
        for region in merged.regions.values():
            merged.errors += _reference_errors(region)
    raise_collected(merged.errors)
    return DesiredState(regions=merged.regions, secrets_checked=env is not None, warnings=merged.warnings)


@dataclass
class _Merged:
    """Manifests merged into their regions one file at a time, with what was found wrong so far."""

    env: Mapping[str, str] | None
    regions: dict[str, RegionDesired] = field(default_factory=dict)
    warnings: list[ManifestWarning] = field(default_factory=list)
    errors: list[ManifestError] = field(default_factory=list)
    prune_sources: dict[str, tuple[bool, Location]] = field(default_factory=dict)
    # region -> (group, stage) -> the APIs bound there so far, to find an API bound twice (`_bound_once`).
    bound: dict[str, dict[tuple[str, Stage], FileBindings | set[str]]] = field(default_factory=dict)
    # region -> the same with each API's binding, for a region where an API is bound twice: from there on its
    # bindings are built and checked one at a time, so that each duplicate is reported with its place.
    bound_each: dict[str, _Bound] = field(default_factory=dict)

    def add(self, read: ParsedFile) -> None:
        doc, manifest = read.doc, read.manifest
        region = self.regions.setdefault(manifest.region, RegionDesired(region=manifest.region))
        region.files.append(doc.path)
        self._merge_prune(doc, manifest, region)
        region.ignore = tuple(dict.fromkeys((*region.ignore, *manifest.ignore)))
        try:
            _merge_policy(doc, manifest, region)
        except ManifestError as exc:  # reported with the others; the rest of the file is still checked
            self.errors.append(exc)
        self._add_signatures(doc, manifest, region)
        self._add_bindings(read.bindings, region)

    def _merge_prune(self, doc: YamlDocument, manifest: CheckedManifest, region: RegionDesired) -> None:
        if manifest.prune is None:
            return
        here = _location(doc, ("prune",))
        earlier = self.prune_sources.get(manifest.region)
        if earlier is not None and earlier[0] != manifest.prune:
            self.errors.append(ManifestError(doc.path, here.line, "prune",
                                             f"prune: {str(manifest.prune).lower()} conflicts with "
                                             f"prune: {str(earlier[0]).lower()} in {earlier[1]} (same region)"))
        else:
            self.prune_sources[manifest.region] = (manifest.prune, here)
            region.prune = manifest.prune

    def _add_signatures(self, doc: YamlDocument, manifest: CheckedManifest, region: RegionDesired) -> None:
        reference_of = ENV_REFERENCE.fullmatch
        for index, (name, key, secret_text) in enumerate(manifest.signatures):
            location = _location(doc, ("signatures", index, "name"))
            earlier = region.signatures.get(name)
            if earlier is not None:
                self.errors.append(ManifestError(doc.path, location.line, f"signatures[{index}].name",
                                                 f"signature '{name}' is already declared at {earlier.location}"))
                continue
            reference = reference_of(secret_text)
            variable = reference.group(1) if reference is not None else None
            try:
                secret = _resolve_secret(doc, index, name, secret_text, variable, self.env)
            except ManifestError as exc:
                # Declared all the same, so that its bindings are not reported as well.
                self.errors.append(exc)
                secret, variable = None, None
            if reference is None:
                self.warnings.append(ManifestWarning(
                    "literal secret", _location(doc, ("signatures", index, "secret")), f"signatures[{index}].secret",
                    "use ${env:VARIABLE} so the secret is not kept in the repository"))
            region.signatures[name] = DesiredSignature(
                name=name, key=key, secret=secret, secret_variable=variable, location=location)

    def _add_bindings(self, file_bindings: FileBindings, region: RegionDesired) -> None:
        """Check a file's bindings against each other and those of the files before; leave them unbuilt when
        no API is bound twice (the usual case: a set operation per scope, no object per API)."""
        doc = file_bindings.doc
        sources = region.scope_sources
        for scope, location in file_bindings.scope_sources().items():
            if scope not in sources:
                sources[scope] = location
        bound_each = self.bound_each.get(region.region)
        if bound_each is None:
            if _bound_once(file_bindings, self.bound.setdefault(region.region, {})):
                region._unbuilt.append(file_bindings)
                return
            bound_each = self.bound_each[region.region] = {}
            for binding in region.bindings:  # the files before, built
                bound_each.setdefault((binding.group, binding.stage), {})[binding.api] = binding
        _add_each_binding(region, doc, file_bindings.entries, bound_each, self.errors)


def _bound_once(file_bindings: FileBindings, bound: dict[tuple[str, Stage], FileBindings | set[str]]) -> bool:
    """Whether no API of `file_bindings` is bound twice in a (group, stage), in it or in `bound`; adds them to
    `bound`. A scope's APIs there are those of the one file that binds in it (whose own sets are shared by
    every load that reads the file: never changed, and made only where a second file binds in the scope),
    else a set of their own."""
    if not file_bindings.bound_once:
        return False
    for scope in file_bindings.first_entries:
        in_scope = bound.get(scope)
        if in_scope is None:
            bound[scope] = file_bindings
            continue
        apis = file_bindings.apis_in(scope)
        if isinstance(in_scope, FileBindings):
            earlier = in_scope.apis_in(scope)
            if not earlier.isdisjoint(apis):
                return False
            bound[scope] = set(earlier) | apis
        elif not in_scope.isdisjoint(apis):
            return False
        else:
            in_scope |= apis
    return True


def _stages(doc: YamlDocument, loc: tuple[str, ...], stages: list[Stage]) -> tuple[Stage, ...]:
    for index, stage in enumerate(stages):
        if stage == "PRE":
            raise ManifestError(doc.path, doc.line_of((*loc, index)), field_path((*loc, index)),
                                f"stage PRE cannot be required: {UNMANAGED_STAGE_HINT}")
        if stage in stages[:index]:
            raise ManifestError(doc.path, doc.line_of((*loc, index)), field_path((*loc, index)),
                                f"stage {stage} is listed twice")
    return tuple(stages)


def _merge_policy(doc: YamlDocument, manifest: CheckedManifest, region: RegionDesired) -> None:
    """Add one file's signature policy to its region (see the module docstring)."""
    if manifest.require_signature is not None:
        stages = _stages(doc, ("require_signature",), manifest.require_signature)
        here = Location(doc.path, doc.line_of(("require_signature",)))
        earlier = region.policy_sources.get("")
        if earlier is not None and set(stages) != set(region.require_signature):
            raise ManifestError(doc.path, here.line, "require_signature",
                                f"[{', '.join(stages)}] conflicts with [{', '.join(region.require_signature)}] "
                                f"in {earlier} (same region)")
        region.policy_sources[""] = here
        region.require_signature = stages
    for group, group_stages in manifest.require_signature_by_group.items():
        loc = ("require_signature_by_group", group)
        here = Location(doc.path, doc.line_of(loc))
        if not RESOURCE_ID_RULE.fullmatch(group):
            raise ManifestError(doc.path, here.line, "require_signature_by_group",
                                "a key must be an API group id (32 lowercase hex characters)")
        stages = _stages(doc, loc, group_stages)
        earlier = region.policy_sources.get(group)
        if earlier is not None:
            raise ManifestError(doc.path, here.line, f"require_signature_by_group.{group}",
                                f"group {group} is already given a policy at {earlier}")
        region.policy_sources[group] = here
        region.require_signature_by_group[group] = stages


_Bound = dict[tuple[str, Stage], dict[str, DesiredBinding]]
"""The bindings of one region so far: (group, stage) -> API -> binding."""


def _add_each_binding(region: RegionDesired, doc: YamlDocument, specs: Sequence[BindingEntry], bound: _Bound,
                      errors: list[ManifestError]) -> None:
    """The bindings of a manifest, built and each checked against every binding before it (`bound`), each
    duplicate reported with its place and the other's."""
    path, add, api_id = doc.path, region.bindings.append, RESOURCE_ID_RULE.fullmatch
    for index, (group, stage, signature, apis) in enumerate(specs):
        in_scope = bound.setdefault((group, stage), {})
        for api_index, (api, location) in enumerate(zip(apis, _api_locations(doc, index, len(apis)), strict=True)):
            other = in_scope.get(api)
            if other is not None:
                where = f"bindings[{index}].apis[{api_index}]"
                if other.signature != signature:
                    errors.append(ManifestError(
                        path, location.line, where,
                        f"API '{api}' in group {group} stage {stage} is given two "
                        f"signatures: '{signature}' here and '{other.signature}' at {other.location}"))
                else:
                    errors.append(ManifestError(
                        path, location.line, where,
                        f"API '{api}' in group {group} stage {stage} is already bound to "
                        f"'{other.signature}' at {other.location}"))
                continue
            binding = DesiredBinding(group, stage, signature, api, api_id(api) is not None, location)
            in_scope[api] = binding
            add(binding)


def env_names(desired: DesiredState) -> list[str]:
    """The environment variables the manifests' secrets read (`${env:NAME}`), each once, sorted: what a CI job
    must provide, so that a workflow derives the list from the manifests instead of keeping a copy of it."""
    return sorted({signature.secret_variable for region in desired.regions.values()
                   for signature in region.signatures.values() if signature.secret_variable is not None})


def _reference_errors(region: RegionDesired) -> list[ManifestError]:
    errors = []
    # One error per binding entry (its first API line), not one per API of a long list.
    reported: set[tuple[str, str]] = set()

    def first_undeclared(file: str, signature: str) -> bool:
        if signature in region.signatures or (file, signature) in reported:
            return False
        reported.add((file, signature))
        return True

    def undeclared(location: Location, signature: str) -> ManifestError:
        return ManifestError(location.file, location.line, "signature", f"binding refers to signature "
                             f"'{signature}', which no manifest of region {region.region} declares")

    for binding in region._built:
        if first_undeclared(binding.location.file, binding.signature):
            errors.append(undeclared(binding.location, binding.signature))
    for file_bindings in region._unbuilt:  # an entry's first API stands for the entry
        if file_bindings.first_uses.keys() <= region.signatures.keys():  # the usual file: every one declared
            continue
        doc = file_bindings.doc
        for signature, index in file_bindings.first_uses.items():
            if first_undeclared(doc.path, signature):
                errors.append(undeclared(_api_locations(doc, index, 1)[0], signature))
    for sig in region.signatures.values():
        if region.is_ignored(sig.name):
            errors.append(ManifestError(sig.location.file, sig.location.line, "name",
                                        f"signature '{sig.name}' is declared and also matched by an ignore "
                                        f"pattern"))
    return errors


def manifest_json_schema() -> dict[str, Any]:
    """The JSON Schema of a manifest file (`reconciler schema`; `manifests/schema.json`)."""
    from reconciler.manifest_model import ManifestFile

    schema = ManifestFile.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://github.com/reconciler/reconciler/raw/main/manifests/schema.json",
        **schema,
        "title": "reconciler manifest",
        "description": "Desired backend signature keys and API bindings of one Alibaba Cloud region.",
    }
