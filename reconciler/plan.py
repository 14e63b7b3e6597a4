"""The Plan: a list of changes, each an action on one addressed resource (its renderers: `render/plan.py`).

A Plan never holds a secret: a signature's secret is always the marker `(sensitive value)` (or
`(not checked)` under --skip-secrets), and a changed secret shows up only as
the attribute name `secret` in `changed`.

A Plan holds only what applying it would do; a review's annotations (labels against a base, targets,
--changed-only) are a `Review`'s, and the JSON document is a reviewed plan's: see review.py.

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

from collections import Counter
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Annotated, Literal, assert_never

from pydantic import Field

from reconciler import __version__
from reconciler.model import FrozenModel
from reconciler.vendor_rules import Stage

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
    """The changes applying it would make (see review.py for what a reviewer is shown beside them)."""

    format_version: Literal["1"] = "1"
    tool_version: str = __version__
    regions: tuple[str, ...]
    secrets_checked: bool = Field(description="false under --skip-secrets: secrets were not compared")
    changes: tuple[Change, ...]
    summary: Summary
    group_names: dict[str, str] | None = None
    violations: tuple[Violation, ...] | None = None

    @property
    def has_changes(self) -> bool:
        """True when the live state differs from the manifests (unmanaged entries are a report, not a change; a
        blocked delete is a change, which apply refuses)."""
        return any(c.action is not Action.UNMANAGED for c in self.changes)

    @property
    def blocked(self) -> tuple[SignatureChange, ...]:
        """The blocked deletes of this plan: apply refuses to start while there is one."""
        return tuple(c for c in self.changes if c.resource is Resource.SIGNATURE and c.action is Action.DELETE_BLOCKED)


def group_names_of(changes: Iterable[Change], names: Mapping[str, str | None]) -> dict[str, str] | None:
    """The names of the groups `changes` mention, of those `names` knows (None when it knows none)."""
    mentioned: set[str] = set()
    for change in changes:
        match change:
            case SignatureChange():
                mentioned |= {b.group for b in change.still_bound or ()}
            case BindingChange():
                mentioned.add(change.api.group)
            case unreachable:
                assert_never(unreachable)
    return {group: name for group in sorted(mentioned) if (name := names.get(group))} or None


def summarize(changes: tuple[Change, ...], no_op: int) -> Summary:
    counts = Counter(change.action for change in changes)
    return Summary(no_op=no_op, **{action.value: counts[action] for action in Action})
