"""Saved plans: `plan --out-plan FILE` writes one, `apply --plan-file FILE` carries it out.

A saved plan holds exactly the changes the plan showed, Terraform's rule: with `--target`, the
selection and nothing else (the changes left out stay pending). `apply --plan-file` re-reads the
live state, re-plans, selects the same targets again, and carries the saved changes out only when

- the live state of every region is the one the plan was made against (a SHA-256 fingerprint of
  its canonical form, secrets, times and endpoint left out),
- the manifests still give exactly the saved changes (manifest line numbers aside), and
- the secrets are the same: every live secret the plan was made against and every secret the plan
  will set (a create, or an update of the secret).

Otherwise it is a stale plan: refused, nothing changed. When the manifests no longer give the saved
changes, the error says which changes differ and in which attribute (deepdiff over the two sets of
changes by address), the first `DIFFERENCES_SHOWN`, then how many more: what a reviewer approved and
what apply would now do, side by side, without a second `plan` to compare by eye.

How the secrets are bound without making them guessable: the file holds one scrypt digest
(N=2^17, r=8, p=1: 128 MiB and about half a second of one core per evaluation) of all those
secrets together, with a random 16-byte salt of its own. Whoever has the file can only test a
guess of a secret by paying one scrypt per guess, and must guess every secret of the plan at
once; the salt rules out precomputation and comparing two plans. A key kept out of the file
(from the environment, or the machine) was not chosen: plan and apply usually run in different
CI jobs, and a key both must share is one more secret to provision and to lose. The cost is paid
twice per saved plan (plan, apply), never by a plain `plan`.

The file is validated completely before anything else happens: JSON without repeated keys,
strict types, no unknown field, a known format version, unique regions, every change's address
matching its values and its action's shape, and the summary matching the changes. A file that
fails any of it is refused in one line.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal, assert_never

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reconciler.errors import InputError
from reconciler.inert import inert
from reconciler.inputfile import read_input
from reconciler.live import delete_candidates
from reconciler.manifest import DesiredState, RegionDesired
from reconciler.output import write_atomically
from reconciler.plan import (
    Action,
    BindingChange,
    BindingValues,
    Change,
    Plan,
    Resource,
    SignatureChange,
    SignatureValues,
    summarize,
)
from reconciler.review import PlanDocument, Review, entry_change, plan_document
from reconciler.snapshot import Snapshot
from reconciler.targets import parse_target, selected_changes

SAVED_PLAN_KIND = "reconciler-saved-plan"
SAVED_PLAN_FORMAT = "2"
NEW_PLAN_HINT = "make a new plan with `reconciler plan --out-plan`"

# scrypt at the parameters OWASP names as the minimum for passwords; see the module docstring.
SCRYPT_N: Literal[131072] = 131072  # 2**17
SCRYPT_R: Literal[8] = 8
SCRYPT_P: Literal[1] = 1
SCRYPT_MAXMEM = 256 * 1024 * 1024
SALT_BYTES = 16
# Read at most this much of a --plan-file (a plan of 2,000,000 changes is far less).
SAVED_PLAN_MAX_BYTES = 1024 * 1024 * 1024


class StalePlanError(InputError):
    """A saved plan no longer fits the live state, the manifests or the secrets; nothing was changed."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class SecretsBinding(_Strict):
    """One scrypt digest over every live secret and every secret the plan sets (see the module docstring)."""

    kdf: Literal["scrypt"] = "scrypt"
    n: Literal[131072] = SCRYPT_N
    r: Literal[8] = SCRYPT_R
    p: Literal[1] = SCRYPT_P
    salt: str = Field(pattern=r"^[A-Za-z0-9+/]{22}==$", description="base64 of 16 random bytes")
    digest: str = Field(pattern=r"^[0-9a-f]{64}$")


class SavedPlan(_Strict):
    kind: Literal["reconciler-saved-plan"] = "reconciler-saved-plan"
    format_version: Literal["2"] = "2"
    live_fingerprints: dict[str, str]
    secrets: SecretsBinding
    plan: PlanDocument

    @property
    def review(self) -> Review:
        """The saved plan, and the targets it was narrowed to."""
        document = self.plan
        plan = Plan(tool_version=document.tool_version, regions=document.regions,
                    secrets_checked=document.secrets_checked, changes=tuple(map(entry_change, document.changes)),
                    summary=document.summary)
        return Review(plan, targets=document.targets)


# ---------------------------------------------------------------- fingerprints and the secrets digest


def _needed(snapshot: Snapshot, region: RegionDesired) -> Snapshot:
    """What of `snapshot` the plan of `region` depends on: `plan --base-ref` reads more (the base's scopes
    too), and the extra must not make the plan stale against apply's own read."""
    scopes = set(region.scopes())
    groups = {group for group, _ in scopes}
    may_delete = delete_candidates(region) or (lambda _: False)
    return snapshot.model_copy(update={
        "signatures": tuple(s if may_delete(s.name) else s.model_copy(update={"bindings_in_region": None})
                            for s in snapshot.signatures),
        "scopes": tuple(s for s in snapshot.scopes if (s.group, s.stage) in scopes),
        "bindings": tuple(b for b in snapshot.bindings if (b.group, b.stage) in scopes),
        "groups": tuple(g for g in snapshot.groups if g.id in groups)})


def live_fingerprint(snapshot: Snapshot, region: RegionDesired) -> str:
    """SHA-256 over the live state the plan of `region` depends on, in canonical form: no secret (they are
    bound apart), no times, no endpoint."""
    data = _needed(snapshot, region).model_dump(mode="json", exclude={"fetched_at", "endpoint", "format_version"})
    # Times say when, not what: an emulator restart or a no-op rebind by hand does not stale a plan.
    for signature in data["signatures"]:
        for volatile in ("secret", "secret_scrypt", "created", "modified"):
            signature.pop(volatile, None)
        for binding in signature.get("bindings_in_region") or ():
            binding.pop("bound_time", None)
    for binding in data["bindings"]:
        binding.pop("bound_time", None)
    for name in ("signatures", "scopes", "bindings", "groups"):
        data[name] = sorted(data[name], key=lambda item: json.dumps(item, sort_keys=True))
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _secret_material(plan: Plan, desired: DesiredState, snapshots: Mapping[str, Snapshot]) -> bytes:
    entries: list[list[str]] = []
    for region in plan.regions:
        for live in sorted(snapshots[region].signatures, key=lambda s: s.id):
            if live.secret is None:
                raise InputError("--out-plan needs the live state from the API (not --snapshot): a saved plan is "
                                 "tied to the live secrets")
            entries.append(["live", region, live.id, live.secret.get_secret_value()])
    for change in plan.changes:
        if change.resource is Resource.SIGNATURE and change.writes_secret:
            name = change.values.name
            wanted = desired.regions[change.region].signatures[name].secret
            if wanted is None:
                raise InputError("a saved plan needs the secrets: do not use --skip-secrets")
            entries.append(["set", change.region, name, wanted.get_secret_value()])
    return json.dumps(entries, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _scrypt(material: bytes, salt: bytes) -> str:
    return hashlib.scrypt(material, salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, maxmem=SCRYPT_MAXMEM,
                          dklen=32).hex()


# ---------------------------------------------------------------- writing


def save_plan(review: Review, desired: DesiredState, snapshots: Mapping[str, Snapshot], path: Path) -> None:
    """Write the plan of `review` (what was shown: with --target, the selection, and its targets) for
    `apply --plan-file`."""
    plan = review.plan
    if not plan.secrets_checked:
        raise InputError("--out-plan needs the secrets: a saved plan is meant to be applied, and one made with "
                         "--skip-secrets never compared them")
    salt = secrets.token_bytes(SALT_BYTES)
    binding = SecretsBinding(salt=base64.b64encode(salt).decode("ascii"),
                             digest=_scrypt(_secret_material(plan, desired, snapshots), salt))
    # The plan is the JSON document of `plan -o json`, every optional field written (null when unset).
    document = {"kind": SAVED_PLAN_KIND, "format_version": SAVED_PLAN_FORMAT,
                "live_fingerprints": {region: live_fingerprint(snapshots[region], desired.regions[region])
                                      for region in plan.regions},
                "secrets": binding.model_dump(mode="json"), "plan": plan_document(review)}
    write_atomically(path, json.dumps(document, indent=2) + "\n")


# ---------------------------------------------------------------- reading


def _no_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("a key is repeated in an object")
    return dict(pairs)


_PLAIN = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


def _plain_part(part: object) -> str:
    """A location part from the file, shown only when it is a plain word (the file may have been tampered with)."""
    text = str(part)
    return text if _PLAIN.fullmatch(text) else "<key>"


def load_saved_plan(path: Path) -> SavedPlan:
    """Read and validate a saved plan completely; any problem is one InputError line naming the file."""
    try:
        text = read_input(path, limit=SAVED_PLAN_MAX_BYTES, what="saved plan").decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a saved plan (not UTF-8 text); {NEW_PLAN_HINT}") from None
    try:
        raw = json.loads(text, object_pairs_hook=_no_repeated_keys)
    except ValueError as exc:  # JSONDecodeError included
        why = "a key is repeated" if "repeated" in str(exc) else "not JSON"
        raise InputError(f"{path}: not a valid saved plan ({why}); {NEW_PLAN_HINT}") from None
    if not isinstance(raw, dict) or raw.get("kind") != SAVED_PLAN_KIND:
        raise InputError(f"{path}: not a saved plan; {NEW_PLAN_HINT} (`plan -o json` output cannot be applied)")
    if raw.get("format_version") != SAVED_PLAN_FORMAT:
        version = raw.get("format_version")
        shown = f"format {version}" if isinstance(version, str) and _PLAIN.fullmatch(version) else "unknown format"
        raise InputError(f"{path}: saved plan of {shown}; this reconciler reads format {SAVED_PLAN_FORMAT}; "
                         f"{NEW_PLAN_HINT}")
    try:
        saved = SavedPlan.model_validate_json(text, strict=True)
    except ValidationError as exc:
        err = exc.errors()[0]
        # A change's location is its index; the resource pydantic adds after it (the union's tag) is left out.
        loc = [part for index, part in enumerate(err["loc"])
               if not (index and isinstance(err["loc"][index - 1], int) and part in tuple(Resource))]
        where = ".".join(_plain_part(part) for part in loc) or "(top)"
        raise InputError(f"{path}: not a valid saved plan: field '{where}': {err['msg']}; {NEW_PLAN_HINT}") from None
    problem = inconsistency(saved)
    if problem:
        raise InputError(f"{path}: not a valid saved plan: {problem}; {NEW_PLAN_HINT}")
    return saved


def _address(change: Change) -> str:
    match change:
        case SignatureChange():
            return f"signature.{change.region}.{change.values.name}"
        case BindingChange():
            api = change.api
            return f"binding.{change.region}.{api.group}.{api.stage}.{api.api_id}"
        case unreachable:
            assert_never(unreachable)


# Which of before/after each action has (True: present).
_SHAPE = {Action.CREATE: (False, True), Action.UPDATE: (True, True), Action.DELETE: (True, False),
          Action.DELETE_BLOCKED: (True, False), Action.UNMANAGED: (True, False), Action.BIND: (False, True),
          Action.UNBIND: (True, False), Action.REBIND: (True, True)}


def _change_problem(change: Change) -> str:
    """What makes `change` one that plan cannot make ('' when nothing does); its type already says which actions
    and values go with its resource."""
    if (change.before is not None, change.after is not None) != _SHAPE[change.action]:
        return f"a {change.action.value} has the wrong before/after"
    if _address(change) != change.address:
        return "the address does not match the values"
    problem = _values_problem(change)
    if problem:
        return problem
    if change.resource is Resource.SIGNATURE and \
            (change.still_bound is not None) != (change.action is Action.DELETE_BLOCKED):
        return "'still_bound' goes with delete_blocked only"
    return ""


def _values_problem(change: Change) -> str:
    """What makes before, after and `changed` disagree ('' when nothing does)."""
    match change:
        case SignatureChange(before=SignatureValues() as before, after=SignatureValues() as after):
            if before.name != after.name:
                return "before and after name different signatures"
            key_changed = before.key != after.key
            if not change.changed or len(set(change.changed)) != len(change.changed) \
                    or not set(change.changed) <= {"key", "secret"} or ("key" in change.changed) != key_changed:
                return "'changed' does not match the values"
        case BindingChange(before=BindingValues() as before, after=BindingValues() as after):
            if (before.group, before.stage, before.api_id) != (after.group, after.stage, after.api_id):
                return "before and after name different APIs"
            if change.changed != ("signature",) or before.signature == after.signature:
                return "'changed' does not match the values"
        case SignatureChange() | BindingChange():
            if change.changed:
                return f"a {change.action.value} lists changed attributes"
        case unreachable:
            assert_never(unreachable)
    return ""


def inconsistency(saved: SavedPlan) -> str:
    """What makes this (well-typed) saved plan impossible, as plan made it; '' when nothing does."""
    plan = saved.plan
    if not plan.regions or len(set(plan.regions)) != len(plan.regions):
        return "'plan.regions' must list each region once"
    if not all(_PLAIN.fullmatch(region) for region in plan.regions):
        return "'plan.regions' holds something that is not a region"
    if set(saved.live_fingerprints) != set(plan.regions):
        return "'live_fingerprints' must have one entry per region of the plan"
    if not all(re.fullmatch(r"sha256:[0-9a-f]{64}", f) for f in saved.live_fingerprints.values()):
        return "'live_fingerprints' holds something that is not a fingerprint"
    if not plan.secrets_checked:
        return "a saved plan always compared the secrets"
    if plan.base is not None:
        return "a saved plan is not compared with a base"
    if plan.group_names is not None:  # apply shows the names it reads live, never the file's
        return "a saved plan holds no group names"
    seen: set[str] = set()
    for index, change in enumerate(plan.changes):
        if change.region not in plan.regions:
            return f"'plan.changes[{index}]' is in a region the plan does not cover"
        problem = _change_problem(change) or ("a saved plan has no labels" if change.label is not None else "")
        if problem:
            return f"'plan.changes[{index}]': {problem}"
        if change.address in seen:
            return f"'plan.changes[{index}]': the same address twice"
        seen.add(change.address)
    for target in plan.targets or ():
        try:
            parse_target(target)
        except InputError:
            return "'plan.targets' holds something that is not a target"
        if not target.isprintable():  # shown again at apply: no control or format character
            return "'plan.targets' holds something that is not a target"
    if summarize(plan.changes, plan.summary.no_op) != plan.summary:
        return "'plan.summary' does not count the changes"
    return ""


# ---------------------------------------------------------------- checking at apply


def _comparable(changes: Sequence[Change]) -> dict[str, dict[str, Any]]:
    """Each change by address, as compared: without its `source` (a manifest line may move)."""
    return {change.address: change.model_dump(mode="json", exclude={"source"}) for change in changes}


# A stale plan's error names this many differences at most, then says how many more there are.
DIFFERENCES_SHOWN = 5


def _differences(was: dict[str, dict[str, Any]], now: dict[str, dict[str, Any]]) -> list[str]:
    """What differs between the saved changes (`was`) and those the manifests give now, one entry per change and
    attribute (`ADDRESS: ATTRIBUTE OLD -> NEW`), in plan order; values are the plan's, so a secret is only ever
    a marker."""
    from deepdiff import DeepDiff  # imported for a stale plan only (0.1 s of start-up otherwise)

    found: dict[tuple[str, tuple[str, ...]], None] = {}
    for levels in DeepDiff(was, now, view="tree").values():
        for level in levels:
            path = [str(part) for part in level.path(output_format="list")]
            # A value of before/after is named itself; a list (changed, still_bound) as a whole.
            found[(path[0], tuple(path[1:3] if path[1:2] in (["before"], ["after"]) else path[1:2]))] = None
    order = {address: index for index, address in enumerate([*was, *(a for a in now if a not in was)])}
    lines = []
    for address, attribute in sorted(found, key=lambda entry: (order[entry[0]], entry[1])):
        if address not in now:
            lines.append(f"{inert(address)}: no longer planned (was {_shown(was[address]['action'])})")
        elif address not in was:
            lines.append(f"{inert(address)}: not in the saved plan (now {_shown(now[address]['action'])})")
        else:
            old, new = _value_at(was[address], attribute), _value_at(now[address], attribute)
            lines.append(f"{inert(address)}: {_attribute_name(attribute)} {_shown(old)} -> {_shown(new)}")
    if not lines:  # the same changes, in another order
        return ["the same changes in another order"]
    more = len(lines) - DIFFERENCES_SHOWN
    return lines[:DIFFERENCES_SHOWN] + ([f"and {more} more"] if more > 0 else [])


def _value_at(change: dict[str, Any], attribute: tuple[str, ...]) -> Any:
    value: Any = change
    for name in attribute:
        value = value.get(name) if isinstance(value, dict) else None
    return value


def _attribute_name(attribute: tuple[str, ...]) -> str:
    """The desired values by their own names (`key`, `signature`), the live ones as `live key`."""
    match attribute:
        case ("after", name):
            return name
        case ("before", name):
            return f"live {name}"
        case ("after",):
            return "desired values"
        case ("before",):
            return "live values"
        case ("changed",):
            return "changed attributes"
        case _:
            return " ".join(attribute).replace("_", " ")


def _shown(value: Any) -> str:
    """A value of a change, for one inert line: text escaped, lists and values joined, nothing as `none`."""
    match value:
        case None | [] | {}:
            return "none"
        case str():
            return inert(value)
        case [dict(), *_]:
            return f"{len(value)} binding(s)"
        case list():
            return ", ".join(map(_shown, value))
        case dict():
            return ", ".join(f"{name} {_shown(item)}" for name, item in value.items())
        case _:
            return inert(str(value))


def check_saved_plan(saved: SavedPlan, current: Plan, desired: DesiredState,
                     snapshots: Mapping[str, Snapshot]) -> Review:
    """The saved plan (and its targets), if it still holds against this live state, these manifests and these
    secrets; else StalePlanError. `current` is the whole plan of the same manifests against `snapshots`."""
    review = saved.review
    plan = review.plan
    if set(plan.regions) != set(current.regions):
        raise StalePlanError(f"the saved plan covers region(s) {', '.join(plan.regions)}, the manifests "
                             f"{', '.join(current.regions)}; nothing was changed; {NEW_PLAN_HINT}")
    for region in plan.regions:
        fingerprint = live_fingerprint(snapshots[region], desired.regions[region])
        if not hmac.compare_digest(saved.live_fingerprints[region], fingerprint):
            raise StalePlanError(f"stale plan: the live state of region {region} changed since the plan was saved; "
                                 f"nothing was changed; {NEW_PLAN_HINT}")
    changes = current.changes
    if review.targets is not None:
        changes = selected_changes(changes, [parse_target(t) for t in review.targets])
    was, now = _comparable(plan.changes), _comparable(changes)
    if list(was.items()) != list(now.items()):
        raise StalePlanError(f"the manifests (or the secrets in the environment) no longer give the saved plan "
                             f"({'; '.join(_differences(was, now))}); nothing was changed; {NEW_PLAN_HINT}")
    salt = base64.b64decode(saved.secrets.salt, validate=True)
    if not hmac.compare_digest(saved.secrets.digest, _scrypt(_secret_material(plan, desired, snapshots), salt)):
        raise StalePlanError(f"stale plan: a secret differs from when the plan was made (a secret the plan sets, "
                             f"from the environment, or a live secret); nothing was changed; {NEW_PLAN_HINT}")
    # The same changes, but the file's `source`s are not shown: they were not compared (a line may have moved),
    # and the manifests read now say where each change comes from.
    return replace(review, plan=plan.model_copy(update={"changes": tuple(changes)}))
