"""A review of a plan: the plan, and what a reviewer is shown beside it; and the plan's JSON document.

Plan and Review: a `Plan` (plan.py) holds the changes applying it would make, and what it is (its
regions, whether secrets were compared, the summary, the names of the groups it mentions, the signature
policy it leaves unmet). A `Review` holds a plan and how it was looked at: compared with the base
branch's plan (`BaseComparison`: a label per change, and the base's changes this plan resolves, which
are not the plan's), narrowed to some targets, read for the change only (`--changed-only`). drift.py
compares, targets.py selects, and the renderers show a Review; apply carries out a Plan, never a review.

JSON format (`-o json`), version "1": `plan_document(review)`; its JSON Schema is `plan_json_schema()`
(kept in `docs/plan.schema.json`). Matching resources (no-ops) are counted in `summary.no_op`, not
listed, so the document grows with the drift, not with the size of the tenant.

Optional fields, added within version "1" (a reader of the first documents keeps working, and a plan
made without these options is byte for byte what it was): `base` and each change's `label` (plan
--base/--base-ref), `targets` (plan --target), `group_names` (the names of the API groups the changes
mention, as the live state gave them), `violations` (a signature policy left unmet; see policy.py),
`changed_only` (plan --changed-only). `-o json` leaves them out when unset rather than writing null (a
saved plan writes them as null). A change labelled `resolved` is pending only on the base: it is listed
for the reviewer but is not counted in `summary`, and does not make the plan have changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Annotated, Any, Literal, assert_never

from pydantic import Field

from reconciler import __version__
from reconciler.model import FrozenModel
from reconciler.plan import BindingChange, Change, Plan, SignatureChange, Summary, Violation, group_names_of


class Label(StrEnum):
    """Where a change comes from, when the plan was compared with the base branch's plan."""

    INTRODUCED = "introduced"
    DRIFT = "drift"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class BaseComparison:
    """How a plan compares with the plan of the base's manifests against the same live state."""

    name: str  # the base: a git ref or a folder
    labels: Mapping[str, Label]  # address -> introduced or drift, for each change of the plan
    resolved: tuple[Change, ...]  # the base's changes to resources the plan leaves alone
    regions: tuple[str, ...]  # the base plan's regions


@dataclass(frozen=True)
class Review:
    """A plan, and how it is looked at (see the module docstring)."""

    plan: Plan
    base: BaseComparison | None = None
    targets: tuple[str, ...] | None = None
    changed_only: bool = False

    @property
    def regions(self) -> tuple[str, ...]:
        return self.plan.regions if self.base is None else tuple(sorted({*self.plan.regions, *self.base.regions}))

    @property
    def resolved(self) -> tuple[Change, ...]:
        """The base's changes this plan makes unnecessary (none without a base)."""
        return () if self.base is None else self.base.resolved

    @property
    def listed(self) -> tuple[Change, ...]:
        """Every change a reviewer is shown: the plan's, then those it resolves."""
        return (*self.plan.changes, *self.resolved)

    def label(self, change: Change) -> Label | None:
        """`change`'s label against the base (None without a base)."""
        if self.base is None:
            return None
        return self.base.labels.get(change.address, Label.RESOLVED)

    def with_group_names(self, names: Mapping[str, str | None]) -> Review:
        """The names of the groups the listed changes mention (the plan grows with the drift, not with the
        number of groups of the tenant)."""
        return replace(self, plan=self.plan.model_copy(update={"group_names": group_names_of(self.listed, names)}))


# ---------------------------------------------------------------- the JSON document (format "1")

_LABEL = ("Only with plan --base/--base-ref: introduced (not in the base's plan), drift (the same change is in the "
          "base's plan) or resolved (in the base's plan only; not counted in summary)")


class SignatureChangeEntry(SignatureChange):
    """A change to a signature: its key and secret, or its existence."""

    label: Label | None = Field(default=None, description=_LABEL)


class BindingChangeEntry(BindingChange):
    """A change to which signature an API is bound to in one (group, stage)."""

    label: Label | None = Field(default=None, description=_LABEL)
    still_bound: None = Field(default=None, description="Signature changes only (a saved plan writes null)")


ChangeEntry = Annotated[SignatureChangeEntry | BindingChangeEntry, Field(discriminator="resource")]


# The JSON document of a reviewed plan (`-o json`, and the plan in a saved plan).
class PlanDocument(FrozenModel):
    format_version: Literal["1"] = "1"
    tool_version: str = __version__
    regions: tuple[str, ...]
    secrets_checked: bool = Field(description="false under --skip-secrets: secrets were not compared")
    changes: tuple[ChangeEntry, ...]
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


def plan_json_schema() -> dict[str, Any]:
    schema = PlanDocument.model_json_schema(mode="serialization")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema,
            "title": "reconciler plan", "description": "Output of `reconciler plan -o json`."}


def _entry(change: dict[str, Any], label: Label | None) -> dict[str, Any]:
    still_bound = change.pop("still_bound", None)
    return {**change, "label": label, "still_bound": still_bound}


def plan_document(review: Review) -> dict[str, Any]:
    """The JSON document of `review`, every optional field present (null when unset)."""
    plan = review.plan.model_dump(mode="json")  # one call for the whole plan: far cheaper than one per change
    changes = [*plan["changes"], *(c.model_dump(mode="json") for c in review.resolved)]
    labels = [review.label(c) for c in review.listed]
    return {
        "format_version": plan["format_version"], "tool_version": plan["tool_version"],
        "regions": list(review.regions), "secrets_checked": plan["secrets_checked"],
        "changes": [_entry(change, label) for change, label in zip(changes, labels, strict=True)],
        "summary": plan["summary"], "base": None if review.base is None else review.base.name,
        "targets": None if review.targets is None else list(review.targets), "group_names": plan["group_names"],
        "violations": plan["violations"], "changed_only": review.changed_only or None,
    }


def entry_change(entry: SignatureChangeEntry | BindingChangeEntry) -> Change:
    """The change an entry of a document describes (its label is the review's)."""
    match entry:
        case SignatureChangeEntry():
            return SignatureChange(**entry.model_dump(exclude={"label"}))
        case BindingChangeEntry():
            return BindingChange(**entry.model_dump(exclude={"label", "still_bound"}))
        case unreachable:
            assert_never(unreachable)
