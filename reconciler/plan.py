"""The Plan: a list of changes, each an action on one addressed resource (its renderers: `render.py`).

A Plan never holds a secret: a signature's secret is always the marker `(sensitive value)` (or
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

from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field

from reconciler import __version__
from reconciler.model import FrozenModel
from reconciler.snapshot import Stage

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


class SignatureValues(FrozenModel):
    name: str
    key: str
    secret: Literal["(sensitive value)", "(not checked)"]


class BindingValues(FrozenModel):
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


class SignatureChange(FrozenModel):
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


class BindingChange(FrozenModel):
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


class Summary(FrozenModel):
    create: int = 0
    update: int = 0
    delete: int = 0
    bind: int = 0
    unbind: int = 0
    rebind: int = 0
    unmanaged: int = 0
    delete_blocked: int = Field(default=0, description="Deletes that cannot be carried out (left out when 0)")
    no_op: int = Field(default=0, description="Managed signatures and bindings that already match")


class Violation(FrozenModel):
    """A published API left without a backend signature in a stage the signature policy requires, once the plan
    is applied. Reported, never applied: a plan does not choose a key for an API."""

    address: str = Field(description="policy.REGION.GROUP.STAGE.API_ID")
    region: str
    group: str
    stage: Stage
    api_id: str
    api_name: str
    source: str | None = Field(default=None, description="FILE:LINE of the require_signature that applies")


class Plan(FrozenModel):
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
