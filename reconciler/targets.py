"""`plan --target`: show the changes to a few resources only.

A target is `signature=NAME` (the signature's own change, and every binding change that binds,
unbinds or rebinds an API to or from it) or `group=ID` (every binding change in that API group).
NAME and ID may be globs (`orders_*`), as in a manifest's `ignore`. Several targets select the union.

Design notes:
- The whole plan is still computed (the differ needs the whole region to tell an unbind from a
  binding that moved), then filtered; `summary` counts the changes shown, `no_op` every match.
- A target that names nothing the manifests declare and no change touches is an error, so a typo
  does not pass as "No changes".
- A selected bind or rebind to a signature this plan creates selects that create too (Terraform's
  `-target` takes a target's dependencies along): without it the binding could not be made.
- `plan --target ... --out-plan F` saves the selection, nothing else, and `apply --plan-file F`
  carries out exactly that (see `saved_plan`); the other changes stay pending.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal, assert_never

from reconciler.errors import InputError
from reconciler.manifest import DesiredState
from reconciler.plan import Action, BindingChange, Change, Resource, SignatureChange, summarize
from reconciler.review import Review

TargetKind = Literal["signature", "group"]


@dataclass(frozen=True)
class Target:
    kind: TargetKind
    pattern: str

    def __str__(self) -> str:
        return f"{self.kind}={self.pattern}"

    def matches(self, change: Change) -> bool:
        match change:
            case SignatureChange():
                touched = [change.values.name] if self.kind == "signature" else []
            case BindingChange():
                touched = ([change.api.group] if self.kind == "group"
                           else [s for s in (change.old_signature, change.new_signature) if s is not None])
            case unreachable:
                assert_never(unreachable)
        return any(fnmatch.fnmatchcase(value, self.pattern) for value in touched)

    def declared(self, desired: DesiredState) -> bool:
        if self.kind == "group":
            return any(fnmatch.fnmatchcase(b.group, self.pattern) for r in desired.regions.values()
                       for b in r.bindings)
        return any(fnmatch.fnmatchcase(name, self.pattern) for r in desired.regions.values() for name in r.signatures)


def parse_target(text: str) -> Target:
    kind, sep, pattern = text.partition("=")
    if not sep or kind not in ("signature", "group") or not pattern:
        raise InputError(f"--target {text!r}: expected signature=NAME or group=ID")
    return Target("signature" if kind == "signature" else "group", pattern)


def selected_changes(changes: Sequence[Change], targets: Sequence[Target]) -> tuple[Change, ...]:
    """The changes that touch at least one target, and the creates of the signatures they bind to; in plan order."""
    chosen = [any(t.matches(c) for t in targets) for c in changes]
    needed = {(c.region, c.new_signature) for c, keep in zip(changes, chosen, strict=True)
              if keep and c.resource is Resource.BINDING}
    return tuple(c for c, keep in zip(changes, chosen, strict=True)
                 if keep or (c.resource is Resource.SIGNATURE and c.action is Action.CREATE
                             and (c.region, c.values.name) in needed))


def select_targets(review: Review, targets: Sequence[Target], desired: DesiredState) -> Review:
    """The review narrowed to `selected_changes` of the plan and of what it resolves; a target that matches
    nothing at all is an error."""
    plan = review.plan
    changes = selected_changes(review.listed, targets)
    for target in targets:
        if not target.declared(desired) and not any(target.matches(c) for c in changes):
            raise InputError(f"--target {target}: no {target.kind} of the manifests or of the plan matches")
    planned = {c.address for c in plan.changes}
    selected = tuple(c for c in changes if c.address in planned)
    base = review.base if review.base is None else replace(
        review.base, resolved=tuple(c for c in changes if c.address not in planned))
    return replace(review, base=base, targets=tuple(map(str, targets)), plan=plan.model_copy(
        update={"changes": selected, "summary": summarize(selected, plan.summary.no_op)}))
