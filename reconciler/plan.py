"""The Plan (a list of changes, each an action on one addressed resource) and its renderers.

Renderers only read a Plan; they never compare anything. A Plan never holds a
secret: a signature's secret is always the marker `(sensitive value)` (or
`(not checked)` under --skip-secrets), and a changed secret shows up only as
the attribute name `secret` in `changed`.

JSON format (`-o json`), version "1": the serialisation of `Plan` below; its
JSON Schema is `plan_json_schema()` (kept in `docs/plan.schema.json`).
Matching resources (no-ops) are counted in `summary.no_op`, not listed, so the
document grows with the drift, not with the size of the tenant.

Optional fields, added within version "1" (a reader of the first documents
keeps working, and a plan made without these options is byte for byte what it
was): `base` and each change's `label` (plan --base/--base-ref), `targets`
(plan --target), `group_names` (the names of the API groups the changes
mention, as the live state gave them), `violations` (a signature policy left
unmet; see policy.py), `changed_only` (plan --changed-only). They are left out
of the document when unset rather than written as null. A change labelled
`resolved` is pending only on the base: it is listed for the reviewer but is
not counted in `summary`, and does not make the plan have changes.

Blocked deletes (also within version "1"): under `prune: true`, a signature in
no manifest that is still bound in a (group, stage) this plan does not unbind
cannot be deleted (the service refuses). The plan says so up front rather than
letting apply fail halfway: the change's action is `delete_blocked` instead of
`delete`, `still_bound` lists those bindings, `summary.delete_blocked` counts
them (left out when 0), every format shows them, and apply refuses to start a
plan holding one, before any call. The rest of the plan is shown as usual, so
a drift job still sees everything; with --detailed-exitcode it exits 2.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from itertools import groupby
from typing import Annotated, Any, Literal, assert_never

import click
from pydantic import BaseModel, ConfigDict, Field

from reconciler import __version__
from reconciler.inert import inert, md_code, md_fence, md_text
from reconciler.snapshot import Stage
from reconciler.vendor_rules import API_NAME_RULE, RESOURCE_ID_RULE, SIGNATURE_KEY_RULE, SIGNATURE_NAME_RULE

SENSITIVE = "(sensitive value)"
NOT_CHECKED = "(not checked)"


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    BIND = "bind"
    UNBIND = "unbind"
    REBIND = "rebind"
    UNMANAGED = "unmanaged"
    DELETE_BLOCKED = "delete_blocked"


# What apply carries out. `delete_blocked` is a delete the manifests ask for that cannot be carried out
# (see `Change.still_bound`): shown, counted, never applied; apply refuses a plan holding one.
ACTIONABLE = frozenset(Action) - {Action.UNMANAGED, Action.DELETE_BLOCKED}


class Label(StrEnum):
    """Where a change comes from, when the plan was compared with the base branch's plan."""

    INTRODUCED = "introduced"
    DRIFT = "drift"
    RESOLVED = "resolved"


class Resource(StrEnum):
    SIGNATURE = "signature"
    BINDING = "binding"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SignatureValues(_Model):
    name: str
    key: str
    secret: Literal["(sensitive value)", "(not checked)"]


class BindingValues(_Model):
    group: str
    stage: Stage
    api_id: str
    api_name: str
    signature: str


SignatureAction = Literal[Action.CREATE, Action.UPDATE, Action.DELETE, Action.UNMANAGED, Action.DELETE_BLOCKED]
BindingAction = Literal[Action.BIND, Action.UNBIND, Action.REBIND]

_ADDRESS = "Stable identity: signature.REGION.NAME or binding.REGION.GROUP.STAGE.API_ID"
_BEFORE = "Live values; null for create/bind"
_AFTER = "Desired values; null for delete/unbind/unmanaged"
_CHANGED = "Attributes that differ (update, rebind)"
_SOURCE = "FILE:LINE of the manifest entry, when there is one"
_LABEL = ("Only with plan --base/--base-ref: introduced (not in the base's plan), drift (the same change is in the "
          "base's plan) or resolved (in the base's plan only; not counted in summary)")


class SignatureChange(_Model):
    """A change to a signature: its key and secret, or its existence."""

    action: SignatureAction
    resource: Literal[Resource.SIGNATURE]
    address: str = Field(description=_ADDRESS)
    region: str
    before: SignatureValues | None = Field(description=_BEFORE)
    after: SignatureValues | None = Field(description=_AFTER)
    changed: tuple[str, ...] = Field(default=(), description=_CHANGED)
    source: str | None = Field(default=None, description=_SOURCE)
    label: Label | None = Field(default=None, description=_LABEL)
    still_bound: tuple[BindingValues, ...] | None = Field(
        default=None,
        description="Only on delete_blocked: every binding that keeps the signature from being deleted, in (group, "
                    "stage) pairs this plan does not unbind (from DescribeApisBySignature)")

    @property
    def values(self) -> SignatureValues:
        """The desired values, else the live ones (every action has one of them)."""
        values = self.after or self.before
        assert values is not None
        return values

    @property
    def writes_secret(self) -> bool:
        """Whether carrying it out sets the secret (a create, or an update of the secret)."""
        return self.action is Action.CREATE or (self.action is Action.UPDATE and "secret" in self.changed)

    @property
    def pending(self) -> bool:
        """Part of what this plan would do (a `resolved` change was pending on the base only)."""
        return self.label is not Label.RESOLVED


class BindingChange(_Model):
    """A change to which signature an API is bound to in one (group, stage)."""

    action: BindingAction
    resource: Literal[Resource.BINDING]
    address: str = Field(description=_ADDRESS)
    region: str
    before: BindingValues | None = Field(description=_BEFORE)
    after: BindingValues | None = Field(description=_AFTER)
    changed: tuple[str, ...] = Field(default=(), description=_CHANGED)
    source: str | None = Field(default=None, description=_SOURCE)
    label: Label | None = Field(default=None, description=_LABEL)

    @property
    def api(self) -> BindingValues:
        """The API (group, stage, id, name): the desired values, else the live ones (every action has one)."""
        values = self.after or self.before
        assert values is not None
        return values

    @property
    def old_signature(self) -> str | None:
        """The signature the API is bound to now (None for a bind)."""
        return self.before.signature if self.before is not None else None

    @property
    def new_signature(self) -> str | None:
        """The signature the API is bound to after the change (None for an unbind)."""
        return self.after.signature if self.after is not None else None

    @property
    def pending(self) -> bool:
        """Part of what this plan would do (a `resolved` change was pending on the base only)."""
        return self.label is not Label.RESOLVED


# The resource says which values a change holds, and which actions it can take.
Change = Annotated[SignatureChange | BindingChange, Field(discriminator="resource")]


class Summary(_Model):
    create: int = 0
    update: int = 0
    delete: int = 0
    bind: int = 0
    unbind: int = 0
    rebind: int = 0
    unmanaged: int = 0
    delete_blocked: int = Field(default=0, description="Deletes that cannot be carried out (left out when 0)")
    no_op: int = Field(default=0, description="Managed signatures and bindings that already match")


class Violation(_Model):
    """A published API left without a backend signature in a stage the signature policy requires, once the plan
    is applied. Reported, never applied: a plan does not choose a key for an API."""

    address: str = Field(description="policy.REGION.GROUP.STAGE.API_ID")
    region: str
    group: str
    stage: Stage
    api_id: str
    api_name: str
    source: str | None = Field(default=None, description="FILE:LINE of the require_signature that applies")


class Plan(_Model):
    format_version: Literal["1"] = "1"
    tool_version: str = __version__
    regions: tuple[str, ...]
    secrets_checked: bool = Field(description="false under --skip-secrets: secrets were not compared")
    changes: tuple[Change, ...]
    summary: Summary
    base: str | None = Field(default=None, description="Only with plan --base/--base-ref: the base the changes "
                                                       "are labelled against (a git ref or a folder)")
    targets: tuple[str, ...] | None = Field(
        default=None, description="Only with plan --target: the selection (signature=NAME, group=ID); other "
                                  "changes are left out, and summary.no_op still counts every match")
    group_names: dict[str, str] | None = Field(
        default=None, description="API group id -> the group's name, for the groups the changes mention whose "
                                  "name the live state gave (absent when none did)")
    violations: tuple[Violation, ...] | None = Field(
        default=None, description="Only when there are any (a manifest sets require_signature): published APIs "
                                  "that stay unsigned in a required stage after this plan (never applied; exit "
                                  "code 2 under --detailed-exitcode)")
    changed_only: bool | None = Field(
        default=None, description="Only with plan --changed-only: only the signatures and (group, stage) scopes "
                                  "whose declarations differ from the base were read and planned; drift elsewhere "
                                  "is not shown")

    @property
    def has_changes(self) -> bool:
        """True when the live state differs from the manifests (unmanaged entries are a report, not a change; a
        blocked delete is a change, which apply refuses)."""
        return any(c.action is not Action.UNMANAGED and c.pending for c in self.changes)

    @property
    def blocked(self) -> tuple[SignatureChange, ...]:
        """The blocked deletes of this plan: apply refuses to start while there is one."""
        return tuple(c for c in self.changes
                     if c.resource is Resource.SIGNATURE and c.action is Action.DELETE_BLOCKED and c.pending)

    @property
    def pending_changes(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.pending)


def with_group_names(plan: Plan, names: Mapping[str, str | None]) -> Plan:
    """`plan` with the names of the groups its changes mention (the plan grows with the drift, not with the
    number of groups of the tenant)."""
    mentioned = {c.api.group if c.resource is Resource.BINDING else "" for c in plan.changes}
    mentioned |= {b.group for c in plan.changes if c.resource is Resource.SIGNATURE for b in c.still_bound or ()}
    mentioned.discard("")
    known = {group: name for group in sorted(mentioned) if (name := names.get(group))}
    return plan.model_copy(update={"group_names": known or None})


def _group_text(plan: Plan, group: str) -> str:
    name = (plan.group_names or {}).get(group)
    shown = _shown(group, "group id")
    return f"{shown} ({inert(name)})" if name else shown


def _group_markdown(plan: Plan, group: str) -> str:
    name = (plan.group_names or {}).get(group)
    shown = _md_shown(group, "group id")
    return f"{shown} ({md_code(name)})" if name else shown


def summarize(changes: tuple[Change, ...], no_op: int) -> Summary:
    counts = {action.value: 0 for action in Action}
    for change in changes:
        if change.pending:
            counts[change.action.value] += 1
    return Summary(no_op=no_op, **counts)


def plan_json_schema() -> dict[str, Any]:
    schema = Plan.model_json_schema(mode="serialization")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema,
            "title": "reconciler plan", "description": "Output of `reconciler plan -o json`."}


# ---------------------------------------------------------------- renderers
#
# Every value of a plan may come from outside (the live state, a pull request's manifests): the text
# renderers show each through `inert`, the markdown renderer through `md_code`/`md_text`. A value that
# breaks the vendor's rule for its kind (a live API name, id, signature name or key the vendor would not
# accept) is shown all the same, followed by a marker such as `(not a valid API name)`, in text, compact
# and markdown. JSON carries every value exactly, escaped by JSON itself, and unmarked: its readers have
# the schema's rules.

_RULES = {
    "signature name": SIGNATURE_NAME_RULE,
    "key": SIGNATURE_KEY_RULE,
    "API name": API_NAME_RULE,
    "API id": RESOURCE_ID_RULE,
    "group id": RESOURCE_ID_RULE,
    # Group names are shown beside their ids for the reader and never marked: no rule of the vendor's for them
    # is among the facts this tool relies on.
    "group name": re.compile(r".*", re.DOTALL),
}


def _mark(value: str, kind: str) -> str:
    """` (not a valid KIND)` when `value` breaks the vendor's rule for `kind`, else nothing."""
    return "" if _RULES[kind].fullmatch(value) else f" (not a valid {kind})"


def _shown(value: str, kind: str) -> str:
    return inert(value) + _mark(value, kind)


def _md_shown(value: str, kind: str, *, in_table: bool = False) -> str:
    return md_code(value, in_table=in_table) + _mark(value, kind)


def marked(value: str, kind: str) -> str:
    """A live value for a terminal: inert, and marked when it breaks the vendor's rule for `kind` (the scan's
    renderers show values as the plan's do)."""
    return _shown(value, kind)


def md_marked(value: str, kind: str, *, in_table: bool = False) -> str:
    """A live value for markdown: a code span, and marked when it breaks the vendor's rule for `kind`."""
    return _md_shown(value, kind, in_table=in_table)


def _raw_marked(value: str, kind: str) -> str:
    """The value as it is, and its mark: for text that goes into one code span as a whole."""
    return value + _mark(value, kind)


def summary_line(plan: Plan) -> str:
    if not plan.pending_changes:
        return "No changes. Live state matches the manifests."
    s = plan.summary
    line = (f"Plan: {s.create} to create, {s.update} to update, {s.delete} to delete, "
            f"{s.bind} to bind, {s.unbind} to unbind, {s.rebind} to rebind")
    if s.delete_blocked:
        line += f", {s.delete_blocked} delete blocked"
    if s.unmanaged:
        line += f", {s.unmanaged} unmanaged"
    return line + "."


BOUND_NAMES_SHOWN = 3


def still_bound_scopes(change: SignatureChange, show: Callable[[str, str], str] | None = None,
                       group_names: Mapping[str, str] | None = None) -> list[str]:
    """Where a blocked delete's signature is still bound, one entry per (group, stage): "group G (name), stage
    S: N APIs (a, b, c and 2 more)"; `show(value, kind)` renders each group id, group name and API name or id
    (escaped and marked for a terminal by default)."""
    show = show or _shown
    group_names = group_names or {}
    scopes: dict[tuple[str, str], list[BindingValues]] = {}
    for binding in change.still_bound or ():
        scopes.setdefault((binding.group, binding.stage), []).append(binding)
    out = []
    for (group, stage), bindings in scopes.items():
        names = [show(b.api_name, "API name") if b.api_name else show(b.api_id, "API id")
                 for b in bindings[:BOUND_NAMES_SHOWN]]
        more = f" and {len(bindings) - BOUND_NAMES_SHOWN} more" if len(bindings) > BOUND_NAMES_SHOWN else ""
        count = "1 API" if len(bindings) == 1 else f"{len(bindings)} APIs"
        name = group_names.get(group)
        named = f" ({show(name, 'group name')})" if name else ""
        out.append(f"group {show(group, 'group id')}{named}, stage {stage}: {count} ({', '.join(names)}{more})")
    return out


def blocked_line(plan: Plan, show: Callable[[str], str] | None = None) -> str | None:
    """The note on blocked deletes; `show` renders each signature name (escaped and marked for a terminal by
    default)."""
    blocked = plan.blocked
    if not blocked:
        return None
    show_name = show or _shown_signature
    names = ", ".join(show_name(c.values.name) for c in blocked)
    return (f"Apply refuses this plan: {len(blocked)} delete(s) blocked ({names}): each signature is still bound "
            f"in a group and stage no manifest manages. Unbind it there, manage that group and stage in a "
            f"manifest, or list the signature under ignore.")


def label_line(plan: Plan, show: Callable[[str], str] = inert) -> str | None:
    """How the changes split against the base (None when the plan was not compared with one); `show` renders the
    base's name (escaped for a terminal by default)."""
    if plan.base is None:
        return None
    counts = {label: sum(1 for c in plan.changes if c.label is label) for label in Label}
    return (f"Compared with the base {show(plan.base)}: {counts[Label.INTRODUCED]} introduced, "
            f"{counts[Label.DRIFT]} drift (already pending on the base), {counts[Label.RESOLVED]} resolved.")


CHANGED_ONLY = ("Only what this change touches was read (--changed-only): the signatures and (group, stage) "
                "scopes whose declarations differ from the base. Drift elsewhere is not shown; the scheduled drift "
                "job reports it.")


def changed_only_line(plan: Plan) -> str | None:
    return CHANGED_ONLY if plan.changed_only else None


def targets_line(plan: Plan, show: Callable[[str], str] = inert) -> str | None:
    if plan.targets is None:
        return None
    return f"Only changes to {', '.join(map(show, plan.targets))} are shown (--target); other changes may be pending."


SECRETS_NOT_CHECKED = "Secrets were not checked (--skip-secrets): only keys and bindings were compared."

_MARK = {Action.CREATE: "+", Action.UPDATE: "~", Action.DELETE: "-", Action.BIND: "+",
         Action.UNBIND: "-", Action.REBIND: "~", Action.UNMANAGED: "?", Action.DELETE_BLOCKED: "!"}
_COLOUR = {"+": "green", "~": "yellow", "-": "red", "?": "cyan", "!": "magenta"}


def _paint(text: str, mark: str, color: bool) -> str:
    return click.style(text, fg=_COLOUR[mark]) if color else text


def _tag(change: Change) -> str:
    return f"  [{change.label.value}]" if change.label is not None else ""


def _secret_text(change: SignatureChange) -> str:
    return "(sensitive value changed)" if "secret" in change.changed else change.values.secret


def _signature_lines(change: SignatureChange, color: bool, group_names: Mapping[str, str] | None = None
                     ) -> Iterator[str]:
    mark = _MARK[change.action]
    before, after = change.before, change.after
    values = change.values
    name = f'"{inert(values.name)}"{_mark(values.name, "signature name")}'
    heading = {
        Action.CREATE: "will be created",
        Action.UPDATE: "will be updated in place",
        Action.DELETE: "will be deleted (prune: true)",
        Action.UNMANAGED: "is unmanaged: live, but in no manifest; left alone (prune is off)",
        Action.DELETE_BLOCKED: "cannot be deleted (prune: true): still bound where no manifest manages bindings",
    }[change.action]
    source = f"  ({inert(change.source)})" if change.source else ""
    yield f"  # signature {name} {heading}{source}{_tag(change)}"
    if change.action is Action.UNMANAGED:
        yield _paint(f"  {mark} signature {name}", mark, color)
        return
    yield _paint(f"  {mark} signature {name} {{", mark, color)
    if change.action is Action.DELETE_BLOCKED:
        for scope in still_bound_scopes(change, _shown, group_names):
            yield _paint(f"      {mark} bound in {scope}", mark, color)
    elif change.action is Action.UPDATE and before is not None and after is not None:
        if "key" in change.changed:
            yield _paint(f'      ~ key    = "{inert(before.key)}"{_mark(before.key, "key")} -> '
                         f'"{inert(after.key)}"{_mark(after.key, "key")}', "~", color)
        if "secret" in change.changed:
            yield _paint("      ~ secret = (sensitive value changed)", "~", color)
    else:
        yield _paint(f'      {mark} key    = "{inert(values.key)}"{_mark(values.key, "key")}', mark, color)
        yield _paint(f"      {mark} secret = {_secret_text(change)}", mark, color)
    yield "    }"


def _api_label(values: BindingValues) -> str:
    """The API as text: `name (id)`, or the id alone when the name is not known."""
    api_id = _shown(values.api_id, "API id")
    return f"{_shown(values.api_name, 'API name')} ({api_id})" if values.api_name else api_id


def _md_api_label(values: BindingValues, *, in_table: bool = False) -> str:
    """The API as markdown: one code span `name (id)`, then the marks of whichever breaks its rule."""
    text = f"{values.api_name} ({values.api_id})" if values.api_name else values.api_id
    marks = _mark(values.api_name, "API name") if values.api_name else ""
    return md_code(text, in_table=in_table) + marks + _mark(values.api_id, "API id")


def _shown_signature(name: str | None) -> str:
    return _shown(name or "", "signature name")


def _binding_line(change: BindingChange, color: bool) -> str:
    api, old, new = change.api, change.old_signature, change.new_signature
    match change.action:
        case Action.BIND:
            text = f"  + bind   {_api_label(api)} -> {_shown_signature(new)}"
        case Action.UNBIND:
            text = f"  - unbind {_api_label(api)} from {_shown_signature(old)}"
        case Action.REBIND:
            text = f"  ~ rebind {_api_label(api)}: {_shown_signature(old)} -> {_shown_signature(new)}"
        case unreachable:
            assert_never(unreachable)
    return _paint(text, _MARK[change.action], color) + _tag(change)


def _binding_scope(change: BindingChange) -> tuple[str, str]:
    return change.api.group, change.api.stage


def render_text(plan: Plan, *, color: bool = False) -> str:
    """Terraform-like text: signatures first, then bindings grouped by group and stage; changes only the base
    had (label `resolved`) come last, one line each."""
    lines: list[str] = []
    pending = plan.pending_changes
    if plan.has_changes:
        lines.append("reconciler will perform the following actions:")
    elif pending:
        lines.append("Nothing to change; reported for information:")
    for region, region_changes in groupby(pending, key=lambda c: c.region):
        lines.append("")
        lines.append(f"Region {inert(region)}:")
        changes = list(region_changes)
        for change in changes:
            if change.resource is Resource.SIGNATURE:
                lines.append("")
                lines.extend(_signature_lines(change, color, plan.group_names))
        bindings = [c for c in changes if c.resource is Resource.BINDING]
        for (group, stage), scope_changes in groupby(bindings, key=_binding_scope):
            lines.append("")
            lines.append(f"  # bindings in group {_group_text(plan, group)}, stage {inert(stage)}")
            lines.extend(_binding_line(c, color) for c in scope_changes)
    resolved = [c for c in plan.changes if not c.pending]
    if resolved:
        lines += ["", "Pending on the base, resolved by these manifests:"]
        lines.extend("  " + _compact_line(c, color) for c in resolved)
    lines += violation_lines(plan)
    lines += _notes(plan)
    if lines:
        lines.append("")
    lines.append(summary_line(plan))
    return "\n".join(lines) + "\n"


def violation_lines(plan: Plan) -> list[str]:
    """The policy section of the text plan (nothing when no published API is left unsigned), count line last."""
    if not plan.violations:
        return []
    lines = ["", "Signature policy violations (reported, never applied):"]
    for v in plan.violations:
        source = f"  ({inert(v.source)})" if v.source else ""
        api = _shown(v.api_id, "API id")
        name = f"{_shown(v.api_name, 'API name')} ({api})" if v.api_name else api
        lines.append(f"  ! {name} in group {_shown(v.group, 'group id')}, stage {v.stage}: published, no backend "
                     f"signature{source}")
    return [*lines, "", policy_line(plan.violations)]


def policy_line(violations: tuple[Violation, ...]) -> str:
    return (f"Signature policy: {len(violations)} published API(s) without a backend signature in a required "
            f"stage.")


def _notes(plan: Plan) -> list[str]:
    notes = [line for line in (blocked_line(plan), changed_only_line(plan), targets_line(plan), label_line(plan))
             if line is not None]
    if not plan.secrets_checked:
        notes.append(f"Note: {SECRETS_NOT_CHECKED}")
    return [part for note in notes for part in ("", note)]


def _address_marks(change: Change) -> str:
    """The marks of the values the address is made of (the address itself is shown escaped)."""
    match change:
        case SignatureChange():
            return _mark(change.values.name, "signature name")
        case BindingChange():
            return _mark(change.api.group, "group id") + _mark(change.api.api_id, "API id")
        case unreachable:
            assert_never(unreachable)


def _compact_detail(change: Change) -> str:
    match change:
        case SignatureChange(action=Action.DELETE_BLOCKED):
            return f" (still bound: {'; '.join(still_bound_scopes(change, _shown))})"
        case SignatureChange():
            return f" ({', '.join(map(inert, change.changed))})" if change.changed else ""
        case BindingChange():
            api, old, new = change.api, change.old_signature, change.new_signature
            name = _shown(api.api_name, "API name") if api.api_name else inert(api.api_id)
            match change.action:
                case Action.BIND:
                    return f" {name} -> {_shown_signature(new)}"
                case Action.UNBIND:
                    return f" {name} from {_shown_signature(old)}"
                case Action.REBIND:
                    return f" {name}: {_shown_signature(old)} -> {_shown_signature(new)}"
                case unreachable_action:
                    assert_never(unreachable_action)
        case unreachable:
            assert_never(unreachable)


def _compact_line(change: Change, color: bool) -> str:
    if not change.pending:
        # Not an action of this plan: no +/-/~ that would read (and colour) as one.
        return (f"= {change.action.value:<9} {inert(change.address)}{_address_marks(change)}"
                f"{_compact_detail(change)}{_tag(change)}")
    mark = _MARK[change.action]
    text = f"{mark} {change.action.value:<9} {inert(change.address)}{_address_marks(change)}{_compact_detail(change)}"
    return _paint(text, mark, color) + _tag(change)


def render_compact(plan: Plan, *, color: bool = False) -> str:
    """One line per change (`--compact`), then the notes and the summary line of the text view."""
    lines = [_compact_line(c, color) for c in (*plan.pending_changes, *(c for c in plan.changes if not c.pending))]
    lines += [f"! violation {inert(v.address)}" for v in plan.violations or ()]  # an address: escaped, unmarked
    lines += ["", policy_line(plan.violations)] if plan.violations else []
    lines += _notes(plan)
    if lines:
        lines.append("")
    lines.append(summary_line(plan))
    return "\n".join(lines) + "\n"


def render_json(plan: Plan) -> str:
    document = plan.model_dump(mode="json")
    # Optional fields added within format "1" are left out when unset (see the module docstring).
    for name in ("base", "targets", "group_names", "violations", "changed_only"):
        if document[name] is None:
            del document[name]
    if not document["summary"]["delete_blocked"]:
        del document["summary"]["delete_blocked"]
    for change in document["changes"]:
        for name in ("label", "still_bound"):  # a binding change has no `still_bound`
            if change.get(name, None) is None:
                change.pop(name, None)
    return json.dumps(document, indent=2) + "\n"


def _detail(plan: Plan, change: Change) -> str:
    """The Detail cell of a change's table row (values in code spans, `|` escaped for the table)."""
    match change:
        case SignatureChange():
            return _signature_detail(plan, change)
        case BindingChange():
            return _binding_detail(plan, change)
        case unreachable:
            assert_never(unreachable)


def _signature_detail(plan: Plan, change: SignatureChange) -> str:
    before, after = change.before, change.after
    match change.action:
        case Action.UPDATE:
            parts = []
            if "key" in change.changed and before is not None and after is not None:
                parts.append(f"key {_md_shown(before.key, 'key', in_table=True)} → "
                             f"{_md_shown(after.key, 'key', in_table=True)}")
            if "secret" in change.changed:
                parts.append("secret (sensitive value changed)")
            return ", ".join(parts)
        case Action.DELETE_BLOCKED:
            return "not deleted, still bound: " + "; ".join(
                md_code(scope, in_table=True) for scope in still_bound_scopes(change, _raw_marked, plan.group_names))
        case Action.UNMANAGED:
            return f"key {_md_shown(change.values.key, 'key', in_table=True)} (in no manifest; left alone)"
        case Action.CREATE | Action.DELETE:
            return f"key {_md_shown(change.values.key, 'key', in_table=True)}"
        case unreachable:
            assert_never(unreachable)


def _binding_detail(plan: Plan, change: BindingChange) -> str:
    api, old, new = change.api, change.old_signature, change.new_signature
    label = _md_api_label(api, in_table=True)
    name = (plan.group_names or {}).get(api.group)
    stage = md_text(api.stage, in_table=True)
    where = f"group {md_code(name, in_table=True)}, {stage}" if name else stage
    match change.action:
        case Action.BIND:
            return f"{label} → {_md_signature(new, in_table=True)} ({where})"
        case Action.UNBIND:
            return f"{label} from {_md_signature(old, in_table=True)} ({where})"
        case Action.REBIND:
            return f"{label}: {_md_signature(old, in_table=True)} → {_md_signature(new, in_table=True)} ({where})"
        case unreachable:
            assert_never(unreachable)


def _md_signature(name: str | None, *, in_table: bool = False) -> str:
    return _md_shown(name or "", "signature name", in_table=in_table)


# GitHub refuses a comment over 65,536 characters; the rest is room for what a CI job wraps around the plan
# (a marker to find its comment again, a heading).
GITHUB_COMMENT_LIMIT = 65_536
MARKDOWN_MAX_CHARS = GITHUB_COMMENT_LIMIT - 1_536
DESTRUCTIVE_LISTED = 20


@dataclass(frozen=True)
class _Table:
    intro: list[str]
    rows: list[str]


def _destructive_item(plan: Plan, change: Change) -> str:
    # Drift was not brought by the pull request: the reviewer should know it is not the author's doing.
    drift = " - **drift**: already pending on the base, not introduced here" if change.label is Label.DRIFT else ""
    region = md_text(change.region)
    match change:
        case SignatureChange():
            return f"delete signature {_md_signature(change.values.name)} ({region}){drift}"
        case BindingChange():
            api = change.api
            return (f"unbind {_md_api_label(api)} from {_md_signature(change.old_signature)} "
                    f"(group {_group_markdown(plan, api.group)}, {md_text(api.stage)}, {region}){drift}")
        case unreachable:
            assert_never(unreachable)


def _markdown_head(plan: Plan) -> list[str]:
    out = ["### reconciler plan", ""]
    if plan.pending_changes:
        out.append(f"**{summary_line(plan)}**")
    else:
        # --changed-only with nothing that differs from the base reads no region: no empty "()" then.
        regions = f" ({', '.join(map(md_text, plan.regions))})" if plan.regions else ""
        out.append(f"**No changes.** Live state matches the manifests{regions}.")
    destructive = [c for c in plan.pending_changes if c.action in (Action.DELETE, Action.UNBIND)]
    if destructive:
        # First thing a reviewer reads: what this plan takes away.
        takes = [text for count, text in ((plan.summary.delete, f"deletes {plan.summary.delete} signature(s)"),
                                          (plan.summary.unbind, f"unbinds {plan.summary.unbind} API(s)")) if count]
        out += ["", "> [!CAUTION]", f"> **This plan {' and '.join(takes)}:**"]
        out += [f"> - {_destructive_item(plan, c)}" for c in destructive[:DESTRUCTIVE_LISTED]]
        if len(destructive) > DESTRUCTIVE_LISTED:
            out.append(f"> - ... and {len(destructive) - DESTRUCTIVE_LISTED} more, listed below")
    blocked = blocked_line(plan, _md_signature)
    if blocked is not None:
        out += ["", "> [!WARNING]", f"> {blocked}"]
    if not plan.secrets_checked:
        out += ["", "> [!WARNING]", f"> {SECRETS_NOT_CHECKED}"]
    for note in (changed_only_line(plan), targets_line(plan, md_text)):
        if note is not None:
            out += ["", "> [!NOTE]", f"> {note}"]
    if plan.violations:
        out += ["", "> [!IMPORTANT]", f"> {policy_line(plan.violations)} Reported, never applied:"]
        out += [f"> - {_md_shown(v.api_name, 'API name') if v.api_name else _md_shown(v.api_id, 'API id')} "
                f"({_md_shown(v.api_id, 'API id')}) in group {_md_shown(v.group, 'group id')}, {v.stage}, "
                f"{md_text(v.region)}" for v in plan.violations[:DESTRUCTIVE_LISTED]]
        if len(plan.violations) > DESTRUCTIVE_LISTED:
            out.append(f"> - ... and {len(plan.violations) - DESTRUCTIVE_LISTED} more (`-o json` lists them all)")
    return out


_SECTIONS = {
    Label.INTRODUCED: ("#### Introduced by this change", None),
    Label.DRIFT: ("#### Drift: already pending on the base",
                  "The base's manifests differ from the live state here too: someone changed the live state by "
                  "hand, or the base was never applied."),
    Label.RESOLVED: ("#### Resolved by this change",
                     "Pending on the base, but not in this plan: these manifests make them unnecessary."),
}


def _markdown_tables(plan: Plan) -> list[_Table]:
    """One table per section (label, when there is a base) and, over several regions, per region."""
    sections: list[tuple[list[str], list[Change]]] = []
    line = label_line(plan, md_text)
    if line is None:
        sections.append(([], list(plan.changes)))
    else:
        for label, (heading, explanation) in _SECTIONS.items():
            changes = [c for c in plan.changes if c.label is label]
            if changes:
                intro = [] if sections else ["", line]
                sections.append(([*intro, "", heading, *([explanation] if explanation else [])], changes))
    tables = []
    for intro, changes in sections:
        for index, (region, region_changes) in enumerate(groupby(changes, key=lambda c: c.region)):
            lead = intro if index == 0 else []
            if len(plan.regions) > 1:
                lead = [*lead, "", f"**Region {md_text(region)}**"]
            rows = [f"| **{c.action.value}** | {c.resource.value} | {md_code(c.address, in_table=True)}"
                    f"{_address_marks(c)} | {_detail(plan, c)} |" for c in region_changes]
            tables.append(_Table([*lead, "", "| Action | Resource | Address | Detail |", "|---|---|---|---|"],
                                 rows))
    return tables


def _markdown_details(plan: Plan) -> list[str]:
    diff_lines = []
    for line in render_text(plan, color=False).splitlines():
        stripped = line.lstrip()
        if stripped[:1] in ("+", "-", "~"):
            # Move the marker to column 0 so GitHub's diff highlighting colours the line.
            marker = "!" if stripped[0] == "~" else stripped[0]
            diff_lines.append(marker + line.replace(stripped[0], " ", 1)[1:])
        else:
            diff_lines.append(" " + line if line else "")
    # Every line of the text plan starts with the renderer's own words, never with a value, and values are
    # escaped to one line each; the fence is longer than any backtick run all the same.
    return ["", "<details><summary>Full plan</summary>", "", *md_fence(diff_lines, "diff"), "", "</details>"]


def render_markdown(plan: Plan, *, max_chars: int = MARKDOWN_MAX_CHARS) -> str:
    """For a pull-request comment: summary first, deletions and unbinds called out, a table of changes (a
    section each for introduced, drift and resolved when compared with a base), the full plan folded.

    Longer than `max_chars`, the folded full plan is left out, then table rows from the end, and a note
    says how many changes are listed."""
    head = _markdown_head(plan)
    if not plan.changes and not plan.violations:
        return "\n".join(head) + "\n"
    tables = _markdown_tables(plan)
    text = "\n".join([*head, *(line for t in tables for line in (*t.intro, *t.rows)),
                      *_markdown_details(plan)]) + "\n"
    if len(text) <= max_chars:
        return text
    note_room = 400
    used = len("\n".join(head)) + 1 + note_room
    body: list[str] = []
    listed = 0
    for table in tables:
        block = list(table.intro)
        size = sum(len(line) + 1 for line in block)
        for row in table.rows:
            if used + size + len(row) + 1 > max_chars:
                break
            block.append(row)
            size += len(row) + 1
        if len(block) > len(table.intro):
            body += block
            used += size
            listed += len(block) - len(table.intro)
    total = len(plan.changes)
    shown = "every change is listed above" if listed == total else f"{listed} of {total} changes are listed above"
    note = ["", "> [!NOTE]", f"> The plan is too long for one comment: the full text plan is left out and {shown}. "
                             "Run `reconciler plan` (or `-o json`) to see all of it."]
    return "\n".join([*head, *body, *note]) + "\n"
