"""Snapshot -> manifest YAML, so a team adopts the tool with one command (`reconciler export`).

Pure: it turns a Snapshot into file names and texts; reading the live state and writing the
files are the caller's. The output loads with `manifest.load_desired_state`, and a plan of it
against the same live state has no changes (the round trip the tests pin).

Design notes:
- Every live signature of the region is declared, bound or not, so that plan reports none as
  unmanaged. `prune` is left out: it defaults to off, and an explicit `false` would conflict
  with a `prune: true` a team later writes in another file of the region.
- Only (group, stage) pairs with at least one binding are written: a pair a manifest mentions
  is owned (its unlisted bindings become unbinds), so an empty pair is left unowned.
- Order: signatures by name; bindings by group id, stage (RELEASE, TEST, PRE), signature name;
  APIs by name, then id. Same snapshot and header values, same bytes.
- An API is written by name when that name is unique among the group's APIs (the group's API
  list together with the names in its bindings, as the differ resolves names), is not blank and
  does not look like an id (32 lowercase hex characters, which the loader reads as an id);
  otherwise by id, with the name as a trailing comment.
- Secret variables: `<NAME>_SECRET` with the signature name upper-cased (ORDERS_BACKEND_SECRET).
  Names that differ only in case would share one; each of those gets the first 8 hex digits of
  SHA-256 over its exact name before `_SECRET` instead (orders_Key -> ORDERS_KEY_1A2B3C4D_SECRET).
  A name with any character outside A-Z, a-z, 0-9 and `_` (a Chinese name) becomes `SIG_<8 hex>_SECRET`
  from the same digest (订单签名_01 -> SIG_<8 hex>_SECRET): CI secret stores take only `[A-Z0-9_]`, and
  a transliteration would be a guess; the digest is stable, so the variable never changes.
  A variable that `${env:...}` would refuse as named like a credential gets `SIGNATURE_` in front
  (aliyun_market -> SIGNATURE_ALIYUN_MARKET_SECRET).
- Quoting is PyYAML's (the pure-Python SafeDumper, the same resolver the loader uses, so output
  bytes do not depend on whether libyaml is installed). A value with a character `inert` escapes
  (controls, bidi and other format characters, line separators) is forced into double quotes, where
  each such character is written as a YAML escape (`\\e`, `\\u202e`), so every value stays on its line
  and the file shows no invisible text.
- The header's time is given by the caller (`header_time`): the time the live state was read,
  or `SOURCE_DATE_EPOCH` when set, the reproducible-builds convention for pinning it.
- A file the loader would refuse (over `MAX_FILE_BYTES` or `MAX_NODES`) is an error that
  suggests `--split-by group`, rather than an export that cannot be planned.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import yaml

from reconciler.errors import InputError, ReconcilerError
from reconciler.inert import inert
from reconciler.inputfile import work_tree_of
from reconciler.manifest import allowed_secret_variable, manifest_json_schema
from reconciler.output import write_files_atomically
from reconciler.snapshot import LiveBinding, LiveSignature, Snapshot
from reconciler.vendor_rules import MANAGED_STAGES, REGION_RULE, RESOURCE_ID_RULE, STAGES, Stage, format_timestamp
from reconciler.yamlsource import MAX_FILE_BYTES, MAX_NODES

DEFAULT_STAGES = MANAGED_STAGES
SplitBy = Literal["none", "group"]

# Wide enough that PyYAML never folds a value onto a second line.
_UNLIMITED_WIDTH = 2**31 - 1


class ExportError(ReconcilerError):
    """The live state cannot be written as manifests that plan back to no changes."""


@dataclass(frozen=True)
class ExportedFile:
    name: str
    text: str


@dataclass(frozen=True)
class Export:
    region: str
    files: tuple[ExportedFile, ...]
    # Signature name -> the environment variable its secret is read from; empty with clear secrets.
    secret_variables: Mapping[str, str]
    signatures: int
    bindings: int
    scopes: int
    holds_secrets: bool

    def summary(self, destination: str) -> str:
        """One line; `destination` is where the files went ("stdout", "3 file(s) in manifests/")."""
        return (f"Exported {self.signatures} signature(s) and {self.bindings} binding(s) in {self.scopes} "
                f"(group, stage) pair(s) of region {self.region} to {destination}.")


_VARIABLE_SAFE = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def secret_variable_names(signature_names: Iterable[str]) -> dict[str, str]:
    """The `${env:...}` variable of each signature's secret (see the module's decisions)."""
    names = sorted(set(signature_names))
    plain = Counter(name.upper() for name in names)
    variables: dict[str, str] = {}
    for name in names:
        digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8].upper()
        stem = name.upper()
        if not _VARIABLE_SAFE.fullmatch(name):
            stem = f"SIG_{digest}"
        elif plain[stem] > 1:
            stem += "_" + digest
        variables[name] = allowed_secret_variable(f"{stem}_SECRET")
    clashes = [v for v, n in Counter(variables.values()).items() if n > 1]
    if clashes:
        raise ExportError(f"two signatures would read their secret from {clashes[0]}; rename one of them")
    return variables


def header_time(fetched_at: str | None, source_date_epoch: str | None) -> str:
    """The time the header states: SOURCE_DATE_EPOCH (seconds) when given, else when the state was read."""
    if source_date_epoch:
        try:
            seconds = int(source_date_epoch)
        except ValueError:
            raise InputError(f"SOURCE_DATE_EPOCH must be whole seconds since 1970, got {source_date_epoch!r}") from None
        return format_timestamp(datetime.fromtimestamp(seconds, UTC))
    return fetched_at or "an unknown time"


def source_label(snapshot: Snapshot, emulator_states: Sequence[Path]) -> str:
    """Where the header says the state was read: the embedded emulator's state files, or the endpoint."""
    if emulator_states:
        return f"embedded emulator of {' '.join(map(str, emulator_states))}"
    return f"endpoint {snapshot.endpoint}"


# ------------------------------------------------------------------ rendering


class _DoubleQuoted(str):
    """A value PyYAML must write double-quoted (escaped), because it holds a character `inert` escapes."""


class _Dumper(yaml.SafeDumper):
    pass


def _represent_double_quoted(dumper: yaml.SafeDumper, value: _DoubleQuoted) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(value), style='"')


_Dumper.add_representer(_DoubleQuoted, _represent_double_quoted)


def _yaml_scalars(values: list[str]) -> list[str]:
    """Each value as PyYAML writes it as a block sequence item (quoted where YAML needs it)."""
    if not values:
        return []
    marked = [value if inert(value) == value else _DoubleQuoted(value) for value in values]
    text = yaml.dump(marked, Dumper=_Dumper, default_flow_style=False, allow_unicode=True,
                     width=_UNLIMITED_WIDTH, sort_keys=False)
    # PyYAML leaves format characters (U+202E...) raw inside double quotes; inert's escapes (\u202e, \x85)
    # are YAML's own double-quoted escapes, so they read back as the same characters.
    lines = [line.removeprefix("- ") for line in text.split("\n")[:-1]]
    return [inert(line) if isinstance(value, _DoubleQuoted) else line
            for value, line in zip(marked, lines, strict=True)]


def _comment(text: str) -> str:
    """Text safe inside a `#` comment: as is when printable, else escaped like a JSON string."""
    return text if text.isprintable() and inert(text) == text else json.dumps(text)


@dataclass
class _Document:
    """Lines of one manifest; a value is rendered later, all of a file's values in one PyYAML call."""

    lines: list[tuple[str, str | None, str | None]]  # (prefix, value to render or None, trailing comment)

    def literal(self, text: str) -> None:
        self.lines.append((text, None, None))

    def value(self, prefix: str, value: str, comment: str | None = None) -> None:
        self.lines.append((prefix, value, comment))

    def render(self, header: list[str]) -> str:
        scalars = iter(_yaml_scalars([value for _, value, _ in self.lines if value is not None]))
        out = [f"# {_comment(line)}" for line in header]
        for prefix, value, comment in self.lines:
            line = prefix if value is None else prefix + next(scalars)
            out.append(line if comment is None else f"{line}  # {_comment(comment)}")
        return "\n".join(out) + "\n"


@dataclass(frozen=True)
class _BindingBlock:
    """One entry of a manifest's `bindings`: the APIs of one (group, stage) bound to one signature."""

    group: str
    stage: Stage
    signature: str
    apis: tuple[tuple[str, str | None], ...]  # (written as, trailing comment)


def _api_names(snapshot: Snapshot) -> dict[str, dict[str, str]]:
    """Group id -> API id -> name, as the differ builds it: the group's list, then live bindings' names."""
    names: dict[str, dict[str, str]] = defaultdict(dict)
    for group in snapshot.groups:
        names[group.id].update((api.id, api.name) for api in group.apis)
    for binding in snapshot.bindings:
        names[binding.group].setdefault(binding.api_id, binding.api_name)
    return names


def _api_entry(binding: LiveBinding, name_of: Mapping[str, str], name_counts: Counter[str]
               ) -> tuple[str, str | None]:
    name = name_of[binding.api_id]
    if name.strip() and name_counts[name] == 1 and not RESOURCE_ID_RULE.fullmatch(name):
        return name, None
    if not RESOURCE_ID_RULE.fullmatch(binding.api_id):
        raise ExportError(f"API {name!r} of group {binding.group} cannot be named in a manifest: its name is "
                          f"not unique in the group and its id {binding.api_id!r} is not 32 hex characters")
    return binding.api_id, name


def _binding_blocks(snapshot: Snapshot, signature_names: set[str]) -> list[_BindingBlock]:
    api_names = _api_names(snapshot)
    name_counts = {group: Counter(names.values()) for group, names in api_names.items()}
    # (group, stage order, signature) -> (API name, API id, written as, comment)
    by_block: dict[tuple[str, int, str], list[tuple[str, str, str, str | None]]] = defaultdict(list)
    for binding in snapshot.bindings:
        if binding.signature_name not in signature_names:
            raise ExportError(f"API {binding.api_name!r} ({binding.group} {binding.stage}) is bound to signature "
                              f"{binding.signature_name!r}, which the signature list did not hold: the live state "
                              f"changed while it was read; export again")
        name_of = api_names[binding.group]
        written, comment = _api_entry(binding, name_of, name_counts[binding.group])
        key = (binding.group, STAGES.index(binding.stage), binding.signature_name)
        by_block[key].append((name_of[binding.api_id], binding.api_id, written, comment))
    return [_BindingBlock(group, STAGES[stage_index], signature,
                   tuple((written, comment) for _, _, written, comment in sorted(apis)))
            for (group, stage_index, signature), apis in sorted(by_block.items())]


def _signature_lines(doc: _Document, signatures: list[LiveSignature], variables: Mapping[str, str],
                     include_secrets: bool) -> None:
    if not signatures:
        doc.literal("signatures: []")
        return
    doc.literal("signatures:")
    for sig in signatures:
        if include_secrets:
            if sig.secret is None:
                raise ExportError(f"the live state holds no clear secret of signature {sig.name!r}")
            secret = sig.secret.get_secret_value()
        else:
            secret = f"${{env:{variables[sig.name]}}}"
        doc.value("  - name: ", sig.name)
        doc.value("    key: ", sig.key)
        doc.value("    secret: ", secret)


def _binding_lines(doc: _Document, blocks: list[_BindingBlock], group_names: Mapping[str, str | None]) -> None:
    if not blocks:
        doc.literal("bindings: []")
        return
    doc.literal("bindings:")
    for block in blocks:
        doc.value("  - group: ", block.group, group_names.get(block.group))
        doc.value("    stage: ", block.stage)
        doc.value("    signature: ", block.signature)
        doc.literal("    apis:")
        for written, comment in block.apis:
            doc.value("      - ", written, comment)


def export_manifests(snapshot: Snapshot, *, exported_at: str, source: str, split_by: SplitBy = "none",
                     include_secrets: bool = False) -> Export:
    """The manifests of `snapshot`: one file `<region>.yaml`, or with split_by="group" that file for the
    signatures and `<region>.<group id>.yaml` per group. `source` names the endpoint in the header."""
    if not REGION_RULE.fullmatch(snapshot.region):
        raise ExportError(f"region {snapshot.region!r} is not a region id a manifest accepts (e.g. cn-hangzhou)")
    signatures = sorted(snapshot.signatures, key=lambda s: s.name)
    variables = {} if include_secrets else secret_variable_names(s.name for s in signatures)
    blocks = _binding_blocks(snapshot, {s.name for s in signatures})
    main = _new_document(snapshot.region)
    _signature_lines(main, signatures, variables, include_secrets)
    main_nodes = 3 + 2 + 7 * len(signatures)  # root, region; signatures: key, list, 7 per entry
    files = _documents(snapshot, main, main_nodes, blocks, split_by)
    header = _header(snapshot.region, source, exported_at)
    secrets_note = ["Secrets are read from environment variables: set each to the live secret before plan."]
    rendered = []
    for name, doc, nodes in files:
        text = doc.render(header + (secrets_note if variables and doc is main else []))
        _check_loadable(name, text, nodes)
        rendered.append(ExportedFile(name, text))
    return Export(region=snapshot.region, files=tuple(rendered), secret_variables=variables,
                  signatures=len(signatures), bindings=len(snapshot.bindings),
                  # (group, stage) pairs; `blocks` has an entry per signature within a pair.
                  scopes=len({(b.group, b.stage) for b in blocks}),
                  holds_secrets=include_secrets and bool(signatures))


def _header(region: str, source: str, exported_at: str) -> list[str]:
    return [
        f"yaml-language-server: $schema={manifest_json_schema()['$id']}",
        f"Exported by `reconciler export` from region {region} ({source}) at {exported_at}.",
        "Every live signature of the region is declared, so plan reports none as unmanaged; prune is left off.",
        "Bindings are authoritative for each (group, stage) listed here; other stages are not managed.",
    ]


def _new_document(region: str) -> _Document:
    doc = _Document([])
    doc.value("region: ", region)
    return doc


def _documents(snapshot: Snapshot, main: _Document, main_nodes: int, blocks: list[_BindingBlock],
               split_by: SplitBy) -> list[tuple[str, _Document, int]]:
    """(file name, document, YAML nodes the loader will count in it) of each file: the bindings go into
    `main` (which holds the signatures), or with split_by="group" into a document per group."""
    group_names = {g.id: g.name for g in snapshot.groups}
    if split_by == "none":
        _binding_lines(main, blocks, group_names)
        return [(f"{snapshot.region}.yaml", main, main_nodes + _binding_nodes(blocks))]
    files = [(f"{snapshot.region}.yaml", main, main_nodes)]
    for group in sorted({b.group for b in blocks}):
        in_group = [b for b in blocks if b.group == group]
        doc = _new_document(snapshot.region)
        _binding_lines(doc, in_group, group_names)
        files.append((f"{snapshot.region}.{_file_safe(group)}.yaml", doc, 3 + _binding_nodes(in_group)))
    return files


def _binding_nodes(blocks: list[_BindingBlock]) -> int:
    """bindings: key and list; per entry its mapping, three keys with values, apis: key and list, each API."""
    return 2 + sum(9 + len(block.apis) for block in blocks)


def _file_safe(group_id: str) -> str:
    if not group_id or group_id.startswith(".") or not all(c.isascii() and (c.isalnum() or c in "_.-")
                                                              for c in group_id):
        raise ExportError(f"group id {group_id!r} cannot be part of a file name; export with --split-by none")
    return group_id


def _check_loadable(name: str, text: str, nodes: int) -> None:
    size = len(text.encode("utf-8"))
    if size > MAX_FILE_BYTES or nodes > MAX_NODES:
        raise ExportError(f"{name} would be {size} bytes with {nodes} values, more than a manifest may hold "
                          f"({MAX_FILE_BYTES} bytes, {MAX_NODES} values); export with --split-by group")


def work_tree_exposing(path: Path) -> Path | None:
    """The git work tree `path` is in when git does not ignore it there (so `git add -A` would take it);
    None outside any work tree or when ignored. Without a working git, a folder holding `.git` counts."""
    import subprocess

    folder = path.absolute().parent
    while not folder.is_dir():
        folder = folder.parent
    try:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=folder, capture_output=True, check=False)
        if top.returncode != 0:
            return None
        ignored = subprocess.run(["git", "check-ignore", "-q", "--", str(path.absolute())], cwd=folder,
                                 capture_output=True, check=False)
    except OSError:
        return work_tree_of(path)
    return None if ignored.returncode == 0 else Path(os.fsdecode(top.stdout.strip()))


def refuse_exposed_secrets(paths: Sequence[Path]) -> None:
    """Clear secrets are never written where `git add -A` would take them (`--force` skips this check)."""
    exposed = next(((p, tree) for p in paths if (tree := work_tree_exposing(p)) is not None), None)
    if exposed is not None:
        raise InputError(f"{exposed[0]} is in the git work tree {exposed[1]} and git does not ignore it; "
                         f"refusing to write clear secrets there (write outside the repository, add it "
                         f"to .gitignore, or --force)")


def write_export_files(result: Export, out_dir: Path) -> list[Path]:
    """Write every file into `out_dir` (made if missing), all or none (`write_files_atomically`); with clear
    secrets, mode 0600. Returns the other manifests of the folder: this export did not write them."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir}: not a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out {out_dir}: cannot create the folder: {exc.strerror}") from None
    write_files_atomically([(out_dir / exported.name, exported.text) for exported in result.files],
                           secret=result.holds_secrets)
    written = {f.name for f in result.files}
    return sorted(p for p in out_dir.iterdir() if p.suffix in (".yaml", ".yml") and p.name not in written)
