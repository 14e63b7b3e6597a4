"""The emulator's region: signatures, API groups with their APIs, and bindings, held in memory.

State file (YAML), validated strictly (unknown fields are errors)::

    region: cn-hangzhou                  # RegionId in every response
    signatures:                          # backend signature keys, in the vendor's rules
      - name: orders_backend             # 4-50 chars: letters, digits, _; starts with a letter; unique
        key: ordersKey01                 # 6-20 chars: letters, digits, _; starts with a letter
        secret: ordersSecret01           # 6-30 chars: letters, digits, _ @ # ! *; starts with a letter
        id: 5a1e...                      # optional; default: derived from the name
        created: "2024-01-01T00:00:00Z"  # optional CreatedTime / ModifiedTime (UTC, ...Z)
        modified: "2024-01-01T00:00:00Z"
    groups:
      - name: orders                     # unique in the region
        id: 0009db9c828549768a200320714b8930   # optional; default: derived from the name
        apis:
          - {name: orders_list, id: 46fbb52840d146f186e38e8e70fc8c90}   # id optional; names unique in the group
          - {name: orders_get, deployed: [RELEASE, TEST]}   # optional: stages the API is published in
        bindings:                        # per stage (RELEASE, TEST or PRE): API -> signature name
          RELEASE: {orders_list: orders_backend}

The same content may be given as JSON in a file whose name ends in ``.json``: JSON loads some ten
times faster than YAML, which matters for benchmark-sized states (1,000 groups x 100 APIs).

An API is published in the stages its ``deployed`` lists (none when absent, as a new API is in the
vendor's service until DeployApi publishes it); DescribeApis reports them in ``DeployedInfos``.

A binding names its API by id or by name (an id is tried first) and its signature by name.
A missing id is the first 32 hex digits of SHA-256 over ``signature:<name>``, ``group:<name>`` or
``api:<group id>:<name>``, so the same file always yields the same ids. Bound times are not part
of the file; every binding loaded from it reports the time the state was loaded.

`EmulatorState.dump_state` writes the current state back in this format (clear secrets included:
it is the emulator's own data, as the file it was loaded from).

Cost per request: bindings are indexed by (group, stage) and by signature, so no request walks
the whole region; listing APIs of the whole region uses a list built once (groups and APIs never
change at run time). Every public method takes one lock, so the state may be read from another
thread (a test, `dump_state`) while the server writes to it.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from reconciler.emulator.apierror import VendorErrorAnswer, invalid, not_found
from reconciler.errors import InputError
from reconciler.inputfile import read_input_text
from reconciler.output import write_atomically
from reconciler.vendor_rules import (
    REGION_RULE,
    SIGNATURE_KEY_HINT,
    SIGNATURE_KEY_RULE,
    SIGNATURE_NAME_HINT,
    SIGNATURE_NAME_RULE,
    SIGNATURE_SECRET_HINT,
    SIGNATURE_SECRET_RULE,
    STAGES,
    TIMESTAMP_FORMAT,
    Stage,
    timestamp_now,
)

_ID_RULE = re.compile(r"[A-Za-z0-9_.-]{1,64}")

# Times for entries of a state file that give none: fixed, so that loading is deterministic.
DEFAULT_TIME = "2024-01-01T00:00:00Z"
# Room for the benchmark's 200,000 bindings (7 MB of YAML) many times over.
STATE_FILE_MAX_BYTES = 256 * 1024 * 1024


def derived_id(kind: str, *parts: str) -> str:
    return hashlib.sha256(":".join((kind, *parts)).encode("utf-8")).hexdigest()[:32]


# --- the state file --------------------------------------------------------------------------


def _must_match(pattern: re.Pattern[str], hint: str) -> AfterValidator:
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"must be {hint}")
        return value

    return AfterValidator(check)


def _check_time(value: str) -> str:
    try:
        datetime.strptime(value, TIMESTAMP_FORMAT)
    except ValueError:
        raise ValueError("must be a UTC time like 2024-01-01T00:00:00Z") from None
    return value


_Id = Annotated[str, _must_match(_ID_RULE, "1-64 characters: letters, digits, _ . -")]
_Time = Annotated[str, AfterValidator(_check_time)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class StateSignature(_Strict):
    name: Annotated[str, _must_match(SIGNATURE_NAME_RULE, SIGNATURE_NAME_HINT)]
    key: Annotated[str, _must_match(SIGNATURE_KEY_RULE, SIGNATURE_KEY_HINT)]
    secret: Annotated[str, _must_match(SIGNATURE_SECRET_RULE, SIGNATURE_SECRET_HINT)]
    id: _Id | None = None
    created: _Time | None = None
    modified: _Time | None = None


class ApiSpec(_Strict):
    name: Annotated[str, _must_match(re.compile(r"\S{1,128}"), "1-128 characters without spaces")]
    id: _Id | None = None
    deployed: list[Stage] = []  # stages the API is published in


class GroupSpec(_Strict):
    name: Annotated[str, _must_match(re.compile(r"\S{1,128}"), "1-128 characters without spaces")]
    id: _Id | None = None
    apis: list[ApiSpec] = []
    bindings: dict[Stage, dict[str, str]] = {}


class StateFile(_Strict):
    region: Annotated[str, _must_match(REGION_RULE, "a region id such as cn-hangzhou")]
    signatures: list[StateSignature] = []
    groups: list[GroupSpec] = []


_FIELD_NAMES = sorted({name for model in (StateFile, StateSignature, GroupSpec, ApiSpec)
                       for name in model.model_fields})


class _FieldError(InputError):
    """A state file error at a field: `loc` finds its line in the file, `message` starts with the field."""

    def __init__(self, source: str, loc: tuple[str | int, ...], message: str) -> None:
        self.loc = loc
        self.message = message
        super().__init__(f"{source}: {message}")


# Makes the error of a field of the state file: (dotted field path, message).
_Fail = Callable[[str, str], InputError]


def _line_in_yaml(text: str, loc: Sequence[str | int]) -> int | None:
    """The 1-based line of the field at `loc` (of its key, for a mapping entry), or None."""
    try:
        node = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        return None
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            entry = next(((key, value) for key, value in node.value
                          if isinstance(key, yaml.ScalarNode) and key.value == str(part)), None)
            if entry is None:
                break
            line, node = entry[0].start_mark.line + 1, entry[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


# --- records held in memory ------------------------------------------------------------------


@dataclass(slots=True)
class SignatureRecord:
    id: str
    name: str
    key: str
    secret: str = field(repr=False)
    created: str
    modified: str


@dataclass(frozen=True, slots=True)
class ApiRecord:
    id: str
    name: str
    group_id: str
    position: int  # order within its group: the order bindings and APIs are listed in
    deployed: tuple[Stage, ...] = ()  # stages the API is published in, in STAGES order


@dataclass(slots=True)
class GroupRecord:
    id: str
    name: str
    apis: dict[str, ApiRecord] = field(default_factory=dict)
    api_ids_by_name: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class BindingRecord:
    api: ApiRecord
    signature: SignatureRecord
    bound_time: str


_T = TypeVar("_T")


def page_of(items: Iterable[_T], page_number: int, page_size: int) -> list[_T]:
    start = (page_number - 1) * page_size
    return list(islice(items, start, start + page_size))


class EmulatorState:
    """One region's signatures, groups, APIs and bindings, with the vendor's rules on writes.

    Decisions where the vendor's documentation is silent or where the emulator chose:

    - `set_signature_apis` on an API already bound to another signature in that stage *replaces*
      that binding (one signature per API per stage holds afterwards); binding an API again to
      the signature it already has keeps the original bound time.
    - `delete_signature` of a signature still bound to any API fails with HTTP 400
      ``DependencyViolation.Signature``: the vendor's reference says bound keys cannot be deleted
      until their APIs are unbound.
    - `remove_signature_apis` ignores listed APIs that are not bound to that signature (an API
      bound to another signature keeps its binding); an API id unknown in the group is
      ``NotFoundApi``.
    - Signature names are unique in the region (``RepeatedSignatureName``); keys need not be.
    """

    def __init__(self, region: str) -> None:
        self.region = region
        # What DescribeRegions lists: the regions of the account being emulated. One state file is one
        # region; an embedded run with several state files sets every region it was given.
        self.account_regions: tuple[str, ...] = (region,)
        self._lock = threading.RLock()
        self._signatures: dict[str, SignatureRecord] = {}
        self._signature_ids_by_name: dict[str, str] = {}
        self._groups: dict[str, GroupRecord] = {}
        self._group_ids_by_name: dict[str, str] = {}
        self._all_apis: list[ApiRecord] = []
        self._bindings: dict[tuple[str, Stage], dict[str, BindingRecord]] = {}
        self._bound_by_signature: dict[str, set[tuple[str, Stage, str]]] = {}

    # --- loading and saving ---

    @classmethod
    def from_file(cls, path: Path) -> EmulatorState:
        text = read_input_text(path, limit=STATE_FILE_MAX_BYTES, what="emulator state")
        if path.suffix == ".json":
            try:
                return cls.from_dict(json.loads(text), source=str(path))
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{exc.lineno}: emulator state is not valid JSON: {exc.msg}") from None
        try:
            data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
            raise InputError(f"{where}: emulator state is not valid YAML: {exc.problem}") from None
        except yaml.YAMLError as exc:
            raise InputError(f"{path}: emulator state is not valid YAML: {exc}") from None
        try:
            return cls.from_dict(data, source=str(path))
        except _FieldError as exc:
            # Lines are looked up only for an error: the node tree of a large state costs as much as loading it.
            line = _line_in_yaml(text, exc.loc)
            raise InputError(f"{path}{f':{line}' if line else ''}: {exc.message}") from None

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<emulator state>") -> EmulatorState:
        """Validate `data` (the parsed YAML) and build the state; `source` names it in errors."""
        if not isinstance(data, dict):
            raise InputError(f"{source}: emulator state must be a mapping with 'region', 'signatures', 'groups'")
        try:
            spec = StateFile.model_validate(data)
        except ValidationError as exc:
            # A misspelt field first: it is also why a required one is missing ('regin:' for 'region:').
            err = min(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
            loc = tuple(err["loc"])
            where = ".".join(str(part) for part in loc)
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                close = difflib.get_close_matches(str(loc[-1]), _FIELD_NAMES, n=1)
                message = f"unknown field{f' (did you mean {close[0]!r}?)' if close else ''}"
            elif err["type"] == "missing":
                loc = loc[:-1]  # reported at the mapping that lacks it
            raise _FieldError(source, loc, f"field '{where}': {message}") from None
        return cls.from_spec(spec, source=source)

    @classmethod
    def from_spec(cls, spec: StateFile, *, source: str = "<emulator state>") -> EmulatorState:
        state = cls(spec.region)
        loaded_at = timestamp_now()

        def fail(where: str, message: str) -> InputError:
            # At most 5 parts: an API name in a binding may itself hold dots.
            loc = tuple(int(part) if part.isdigit() else part for part in where.split(".", 4))
            return _FieldError(source, loc, f"field '{where}': {message}")

        state._load_signatures(spec.signatures, fail)
        all_api_ids: set[str] = set()
        for g_index, group_spec in enumerate(spec.groups):
            group = state._load_group(g_index, group_spec, all_api_ids, fail)
            state._load_bindings(g_index, group, group_spec.bindings, loaded_at, fail)
        return state

    def _load_signatures(self, signatures: Sequence[StateSignature], fail: _Fail) -> None:
        for index, sig in enumerate(signatures):
            sig_id = sig.id or derived_id("signature", sig.name)
            if sig.name in self._signature_ids_by_name:
                raise fail(f"signatures.{index}.name", f"signature name {sig.name!r} is declared twice")
            if sig_id in self._signatures:
                raise fail(f"signatures.{index}.id", f"signature id {sig_id!r} is declared twice")
            created = sig.created or DEFAULT_TIME
            self._add_signature(
                SignatureRecord(sig_id, sig.name, sig.key, sig.secret, created, sig.modified or created)
            )

    def _load_group(self, g_index: int, group_spec: GroupSpec, all_api_ids: set[str], fail: _Fail) -> GroupRecord:
        """The group and its APIs; `all_api_ids` (the ids of every group's APIs so far) gains its APIs' ids."""
        group_id = group_spec.id or derived_id("group", group_spec.name)
        if group_spec.name in self._group_ids_by_name:
            raise fail(f"groups.{g_index}.name", f"group name {group_spec.name!r} is declared twice")
        if group_id in self._groups:
            raise fail(f"groups.{g_index}.id", f"group id {group_id!r} is declared twice")
        group = GroupRecord(group_id, group_spec.name)
        for a_index, api_spec in enumerate(group_spec.apis):
            where = f"groups.{g_index}.apis.{a_index}"
            api_id = api_spec.id or derived_id("api", group_id, api_spec.name)
            if api_spec.name in group.api_ids_by_name:
                raise fail(f"{where}.name",
                           f"API name {api_spec.name!r} is declared twice in group {group_spec.name!r}")
            if api_id in all_api_ids:
                raise fail(f"{where}.id", f"API id {api_id!r} is declared twice")
            all_api_ids.add(api_id)
            if len(set(api_spec.deployed)) != len(api_spec.deployed):
                raise fail(f"{where}.deployed", "a stage is listed twice")
            deployed = tuple(s for s in STAGES if s in api_spec.deployed)
            api = ApiRecord(api_id, api_spec.name, group_id, a_index, deployed)
            group.apis[api_id] = api
            group.api_ids_by_name[api_spec.name] = api_id
            self._all_apis.append(api)
        self._groups[group_id] = group
        self._group_ids_by_name[group.name] = group_id
        return group

    def _load_bindings(self, g_index: int, group: GroupRecord, bindings: Mapping[Stage, Mapping[str, str]],
                       loaded_at: str, fail: _Fail) -> None:
        for stage, by_api in bindings.items():
            for api_ref, sig_name in by_api.items():
                where = f"groups.{g_index}.bindings.{stage}.{api_ref}"
                api_id = api_ref if api_ref in group.apis else group.api_ids_by_name.get(api_ref, "")
                if not api_id:
                    raise fail(where, f"no API {api_ref!r} (name or id) in group {group.name!r}")
                bound_id = self._signature_ids_by_name.get(sig_name)
                if bound_id is None:
                    raise fail(where, f"signature {sig_name!r} is not declared under 'signatures'")
                if api_id in self._bindings.get((group.id, stage), {}):
                    raise fail(where, f"API {group.apis[api_id].name!r} is bound twice in {stage}")
                self._bind(group.apis[api_id], stage, self._signatures[bound_id], loaded_at)

    def to_spec(self) -> StateFile:
        with self._lock:
            signatures = [
                StateSignature(name=s.name, key=s.key, secret=s.secret, id=s.id, created=s.created,
                              modified=s.modified)
                for s in self._signatures.values()
            ]
            groups = []
            for group in self._groups.values():
                bindings: dict[Stage, dict[str, str]] = {}
                for stage in STAGES:
                    scope = self._sorted_scope(group.id, stage)
                    if scope:
                        bindings[stage] = {b.api.name: b.signature.name for b in scope}
                groups.append(GroupSpec(
                    name=group.name, id=group.id,
                    apis=[ApiSpec(name=a.name, id=a.id, deployed=list(a.deployed)) for a in group.apis.values()],
                    bindings=bindings,
                ))
            return StateFile(region=self.region, signatures=signatures, groups=groups)

    def dump_state(self, path: Path) -> None:
        """Write the current state as a state file (JSON if `path` ends in .json, else YAML), atomically
        (temp file + rename), mode 0600 (or the file's own, when stricter)."""
        data = self.to_spec().model_dump(exclude_none=True, exclude_defaults=True)
        if path.suffix == ".json":
            text = json.dumps(data, indent=1) + "\n"
        else:
            text = yaml.dump(data, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False,
                             allow_unicode=True)
        write_atomically(path, text, secret=True)  # it holds the signature secrets: 0600

    # --- internal index maintenance ---

    def _add_signature(self, record: SignatureRecord) -> None:
        self._signatures[record.id] = record
        self._signature_ids_by_name[record.name] = record.id
        self._bound_by_signature[record.id] = set()

    def _bind(self, api: ApiRecord, stage: Stage, signature: SignatureRecord, when: str) -> None:
        # The vendor documents one key per API and stage, and SetSignatureApis only as "binds a signature
        # key to APIs"; it is silent on an API already bound to another key. The emulator replaces that
        # binding (the console guide says the key "can be replaced"); reconciler's apply does not rely on
        # it and removes the old binding first.
        scope = self._bindings.setdefault((api.group_id, stage), {})
        previous = scope.get(api.id)
        if previous is not None:
            if previous.signature.id == signature.id:
                return
            self._bound_by_signature[previous.signature.id].discard((api.group_id, stage, api.id))
        scope[api.id] = BindingRecord(api, signature, when)
        self._bound_by_signature[signature.id].add((api.group_id, stage, api.id))

    def _unbind(self, api: ApiRecord, stage: Stage) -> None:
        binding = self._bindings[(api.group_id, stage)].pop(api.id)
        self._bound_by_signature[binding.signature.id].discard((api.group_id, stage, api.id))

    def _sorted_scope(self, group_id: str, stage: Stage) -> list[BindingRecord]:
        scope = self._bindings.get((group_id, stage), {})
        return sorted(scope.values(), key=lambda b: b.api.position)

    def _group(self, group_id: str) -> GroupRecord:
        group = self._groups.get(group_id)
        if group is None:
            raise not_found("ApiGroup", group_id)
        return group

    def _signature(self, signature_id: str) -> SignatureRecord:
        signature = self._signatures.get(signature_id)
        if signature is None:
            raise not_found("Signature", signature_id)
        return signature

    def _apis(self, group: GroupRecord, api_ids: Sequence[str]) -> list[ApiRecord]:
        apis = []
        for api_id in dict.fromkeys(api_ids):
            api = group.apis.get(api_id)
            if api is None:
                raise not_found("Api", api_id)
            apis.append(api)
        return apis

    # --- reads ---

    def signature_count(self) -> int:
        with self._lock:
            return len(self._signatures)

    def signature_by_name(self, name: str) -> SignatureRecord | None:
        with self._lock:
            sig_id = self._signature_ids_by_name.get(name)
            return None if sig_id is None else self._signatures[sig_id]

    def describe_signatures(
        self, ids: Sequence[str], names: Sequence[str], page_number: int, page_size: int
    ) -> tuple[list[SignatureRecord], int]:
        """Signatures in creation order, optionally only those with one of `ids` / `names`."""
        with self._lock:
            if ids or names:
                wanted_ids = set(ids)
                wanted_names = set(names)
                matches = [
                    s for s in self._signatures.values()
                    if (not ids or s.id in wanted_ids) and (not names or s.name in wanted_names)
                ]
                return page_of(matches, page_number, page_size), len(matches)
            return page_of(self._signatures.values(), page_number, page_size), len(self._signatures)

    def describe_api_signatures(
        self, group_id: str, stage: Stage, api_ids: Sequence[str], page_number: int, page_size: int
    ) -> tuple[list[BindingRecord], int]:
        """Bindings of one (group, stage) in the group's API order, optionally only `api_ids`."""
        with self._lock:
            self._group(group_id)
            scope = self._sorted_scope(group_id, stage)
            if api_ids:
                wanted = set(api_ids)
                scope = [b for b in scope if b.api.id in wanted]
            return page_of(scope, page_number, page_size), len(scope)

    def describe_apis_by_signature(
        self, signature_id: str, page_number: int, page_size: int
    ) -> tuple[list[tuple[Stage, BindingRecord]], int]:
        """Every binding of one signature, across groups and stages (group, stage, API order)."""
        with self._lock:
            self._signature(signature_id)
            keys = sorted(self._bound_by_signature[signature_id],
                          key=lambda k: (k[0], STAGES.index(k[1]), self._bindings[(k[0], k[1])][k[2]].api.position))
            found = [(stage, self._bindings[(group, stage)][api_id]) for group, stage, api_id in keys]
            return page_of(found, page_number, page_size), len(found)

    def describe_api_groups(
        self, group_id: str | None, group_name: str | None, page_number: int, page_size: int
    ) -> tuple[list[GroupRecord], int]:
        with self._lock:
            groups: Iterable[GroupRecord] = self._groups.values()
            if group_id is not None or group_name is not None:
                if group_id is not None:
                    found = self._groups.get(group_id)
                    groups = [found] if found is not None else []
                if group_name is not None:
                    groups = [g for g in groups if g.name == group_name]
                matches = list(groups)
                return page_of(matches, page_number, page_size), len(matches)
            return page_of(groups, page_number, page_size), len(self._groups)

    def group_of(self, api: ApiRecord) -> GroupRecord:
        return self._groups[api.group_id]

    def describe_apis(
        self, group_id: str | None, api_id: str | None, api_name: str | None, page_number: int, page_size: int
    ) -> tuple[list[ApiRecord], int]:
        """APIs of one group (or of the region), optionally one id or names containing `api_name`."""
        with self._lock:
            apis: Sequence[ApiRecord]
            if group_id is not None:
                group = self._groups.get(group_id)
                apis = list(group.apis.values()) if group is not None else []
            else:
                apis = self._all_apis
            if api_id is not None:
                apis = [a for a in apis if a.id == api_id]
            if api_name is not None:
                apis = [a for a in apis if api_name in a.name]
            return page_of(apis, page_number, page_size), len(apis)

    # --- writes ---

    def create_signature(self, name: str, key: str, secret: str) -> SignatureRecord:
        with self._lock:
            if name in self._signature_ids_by_name:
                raise VendorErrorAnswer(400, "RepeatedSignatureName", f"A signature named {name!r} already exists.")
            now = timestamp_now()
            record = SignatureRecord(uuid.uuid4().hex, name, key, secret, now, now)
            self._add_signature(record)
            return record

    def modify_signature(
        self, signature_id: str, name: str | None, key: str | None, secret: str | None
    ) -> SignatureRecord:
        with self._lock:
            record = self._signature(signature_id)
            if name is not None and name != record.name:
                if name in self._signature_ids_by_name:
                    raise VendorErrorAnswer(400, "RepeatedSignatureName", f"A signature named {name!r} already exists.")
                del self._signature_ids_by_name[record.name]
                self._signature_ids_by_name[name] = record.id
                record.name = name
            if key is not None:
                record.key = key
            if secret is not None:
                record.secret = secret
            record.modified = timestamp_now()
            return record

    def delete_signature(self, signature_id: str) -> None:
        with self._lock:
            record = self._signature(signature_id)
            bound = len(self._bound_by_signature[signature_id])
            if bound:
                raise VendorErrorAnswer(
                    400, "DependencyViolation.Signature",
                    f"The signature {signature_id!r} is still bound to {bound} API(s); "
                    "unbind them with RemoveSignatureApis first.",
                )
            del self._signatures[signature_id]
            del self._signature_ids_by_name[record.name]
            del self._bound_by_signature[signature_id]

    def set_signature_apis(self, group_id: str, signature_id: str, stage: Stage, api_ids: Sequence[str]) -> None:
        with self._lock:
            group = self._group(group_id)
            signature = self._signature(signature_id)
            apis = self._apis(group, api_ids)
            now = timestamp_now()
            for api in apis:
                self._bind(api, stage, signature, now)

    def remove_signature_apis(
        self, group_id: str, signature_id: str, stage: Stage, api_ids: Sequence[str] | None
    ) -> None:
        """Unbind `api_ids` (or, when None, every API of that group and stage) from the signature."""
        with self._lock:
            group = self._group(group_id)
            self._signature(signature_id)
            scope = self._bindings.get((group_id, stage), {})
            apis = [b.api for b in scope.values()] if api_ids is None else self._apis(group, api_ids)
            for api in apis:
                binding = scope.get(api.id)
                if binding is not None and binding.signature.id == signature_id:
                    self._unbind(api, stage)


def validate_signature_fields(name: str | None, key: str | None, secret: str | None) -> None:
    """The vendor's rules for SignatureName / SignatureKey / SignatureSecret (None = not given)."""
    if name is not None and not SIGNATURE_NAME_RULE.fullmatch(name):
        raise invalid("SignatureName", f"must be {SIGNATURE_NAME_HINT}")
    if key is not None and not SIGNATURE_KEY_RULE.fullmatch(key):
        raise invalid("SignatureKey", f"must be {SIGNATURE_KEY_HINT}")
    if secret is not None and not SIGNATURE_SECRET_RULE.fullmatch(secret):
        raise invalid("SignatureSecret", f"must be {SIGNATURE_SECRET_HINT}")

