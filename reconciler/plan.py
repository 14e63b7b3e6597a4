"""The Plan (a list of changes, each an action on one addressed resource) and its renderers.

Renderers only read a Plan; they never compare anything. A Plan never holds a
secret: a signature's secret is always the marker `(sensitive value)` (or
`(not checked)` under --skip-secrets), and a changed secret shows up only as
the attribute name `secret` in `changed`.

JSON format (`-o json`), version "1": the serialisation of `Plan` below; its
JSON Schema is `plan_json_schema()` (kept in `docs/plan.schema.json`).
Matching resources (no-ops) are counted in `summary.no_op`, not listed, so the
document grows with the drift, not with the size of the tenant.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from enum import StrEnum
from itertools import groupby
from typing import Any, Literal

import click
from pydantic import BaseModel, ConfigDict, Field

from reconciler import __version__
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


ACTIONABLE = frozenset(Action) - {Action.UNMANAGED}


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


class Change(_Model):
    action: Action
    resource: Resource
    address: str = Field(description="Stable identity: signature.REGION.NAME or binding.REGION.GROUP.STAGE.API_ID")
    region: str
    before: SignatureValues | BindingValues | None = Field(description="Live values; null for create/bind")
    after: SignatureValues | BindingValues | None = Field(
        description="Desired values; null for delete/unbind/unmanaged")
    changed: tuple[str, ...] = Field(default=(), description="Attributes that differ (update, rebind)")
    source: str | None = Field(default=None, description="FILE:LINE of the manifest entry, when there is one")


class Summary(_Model):
    create: int = 0
    update: int = 0
    delete: int = 0
    bind: int = 0
    unbind: int = 0
    rebind: int = 0
    unmanaged: int = 0
    no_op: int = Field(default=0, description="Managed signatures and bindings that already match")


class Plan(_Model):
    format_version: Literal["1"] = "1"
    tool_version: str = __version__
    regions: tuple[str, ...]
    secrets_checked: bool = Field(description="false under --skip-secrets: secrets were not compared")
    changes: tuple[Change, ...]
    summary: Summary

    @property
    def has_changes(self) -> bool:
        """True when applying would do something (unmanaged entries are a report, not a change)."""
        return any(c.action in ACTIONABLE for c in self.changes)


def summarize(changes: tuple[Change, ...], no_op: int) -> Summary:
    counts = {action.value: 0 for action in Action}
    for change in changes:
        counts[change.action.value] += 1
    return Summary(no_op=no_op, **counts)


def plan_json_schema() -> dict[str, Any]:
    schema = Plan.model_json_schema(mode="serialization")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema,
            "title": "reconciler plan", "description": "Output of `reconciler plan -o json`."}


# ---------------------------------------------------------------- renderers


def summary_line(plan: Plan) -> str:
    if not plan.changes:
        return "No changes. Live state matches the manifests."
    s = plan.summary
    line = (f"Plan: {s.create} to create, {s.update} to update, {s.delete} to delete, "
            f"{s.bind} to bind, {s.unbind} to unbind, {s.rebind} to rebind")
    if s.unmanaged:
        line += f", {s.unmanaged} unmanaged"
    return line + "."


SECRETS_NOT_CHECKED = "Secrets were not checked (--skip-secrets): only keys and bindings were compared."

_MARK = {Action.CREATE: "+", Action.UPDATE: "~", Action.DELETE: "-", Action.BIND: "+",
         Action.UNBIND: "-", Action.REBIND: "~", Action.UNMANAGED: "?"}
_COLOUR = {"+": "green", "~": "yellow", "-": "red", "?": "cyan"}


def _paint(text: str, mark: str, color: bool) -> str:
    return click.style(text, fg=_COLOUR[mark]) if color else text


def _secret_text(change: Change) -> str:
    if "secret" in change.changed:
        return "(sensitive value changed)"
    values = change.after or change.before
    assert isinstance(values, SignatureValues)
    return values.secret


def _signature_lines(change: Change, color: bool) -> Iterator[str]:
    mark = _MARK[change.action]
    before, after = change.before, change.after
    values = after or before
    assert isinstance(values, SignatureValues)
    name = values.name
    heading = {
        Action.CREATE: "will be created",
        Action.UPDATE: "will be updated in place",
        Action.DELETE: "will be deleted (prune: true)",
        Action.UNMANAGED: "is unmanaged: live, but in no manifest; left alone (prune is off)",
    }[change.action]
    source = f"  ({change.source})" if change.source else ""
    yield f'  # signature "{name}" {heading}{source}'
    if change.action is Action.UNMANAGED:
        yield _paint(f'  {mark} signature "{name}"', mark, color)
        return
    yield _paint(f'  {mark} signature "{name}" {{', mark, color)
    if change.action is Action.UPDATE:
        assert isinstance(before, SignatureValues) and isinstance(after, SignatureValues)
        if "key" in change.changed:
            yield _paint(f'      ~ key    = "{before.key}" -> "{after.key}"', "~", color)
        if "secret" in change.changed:
            yield _paint("      ~ secret = (sensitive value changed)", "~", color)
    else:
        yield _paint(f'      {mark} key    = "{values.key}"', mark, color)
        yield _paint(f"      {mark} secret = {_secret_text(change)}", mark, color)
    yield "    }"


def _api_label(values: BindingValues) -> str:
    return f"{values.api_name} ({values.api_id})" if values.api_name else values.api_id


def _binding_line(change: Change, color: bool) -> str:
    mark = _MARK[change.action]
    before, after = change.before, change.after
    if change.action is Action.BIND:
        assert isinstance(after, BindingValues)
        text = f"  + bind   {_api_label(after)} -> {after.signature}"
    elif change.action is Action.UNBIND:
        assert isinstance(before, BindingValues)
        text = f"  - unbind {_api_label(before)} from {before.signature}"
    else:
        assert isinstance(before, BindingValues) and isinstance(after, BindingValues)
        text = f"  ~ rebind {_api_label(after)}: {before.signature} -> {after.signature}"
    return _paint(text, mark, color)


def _binding_scope(change: Change) -> tuple[str, str]:
    values = change.after or change.before
    assert isinstance(values, BindingValues)
    return values.group, values.stage


def render_text(plan: Plan, *, color: bool = False) -> str:
    """Terraform-like text: signatures first, then bindings grouped by group and stage."""
    lines: list[str] = []
    if plan.changes:
        lines.append("reconciler will perform the following actions:")
    for region, region_changes in groupby(plan.changes, key=lambda c: c.region):
        lines.append("")
        lines.append(f"Region {region}:")
        changes = list(region_changes)
        for change in changes:
            if change.resource is Resource.SIGNATURE:
                lines.append("")
                lines.extend(_signature_lines(change, color))
        bindings = [c for c in changes if c.resource is Resource.BINDING]
        for (group, stage), scope_changes in groupby(bindings, key=_binding_scope):
            lines.append("")
            lines.append(f"  # bindings in group {group}, stage {stage}")
            lines.extend(_binding_line(c, color) for c in scope_changes)
    if not plan.secrets_checked:
        lines.append("")
        lines.append(f"Note: {SECRETS_NOT_CHECKED}")
    if lines:
        lines.append("")
    lines.append(summary_line(plan))
    return "\n".join(lines) + "\n"


def render_json(plan: Plan) -> str:
    return json.dumps(plan.model_dump(mode="json"), indent=2) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _detail(change: Change) -> str:
    before, after = change.before, change.after
    if isinstance(after or before, SignatureValues):
        if change.action is Action.UPDATE:
            parts = []
            if "key" in change.changed:
                assert isinstance(before, SignatureValues) and isinstance(after, SignatureValues)
                parts.append(f"key `{before.key}` → `{after.key}`")
            if "secret" in change.changed:
                parts.append("secret (sensitive value changed)")
            return ", ".join(parts)
        values = after or before
        assert isinstance(values, SignatureValues)
        return f"key `{values.key}`" + ("" if change.action is not Action.UNMANAGED
                                         else " (in no manifest; left alone)")
    if change.action is Action.BIND:
        assert isinstance(after, BindingValues)
        return f"`{_api_label(after)}` → `{after.signature}` ({after.stage})"
    if change.action is Action.UNBIND:
        assert isinstance(before, BindingValues)
        return f"`{_api_label(before)}` from `{before.signature}` ({before.stage})"
    assert isinstance(before, BindingValues) and isinstance(after, BindingValues)
    return f"`{_api_label(after)}`: `{before.signature}` → `{after.signature}` ({after.stage})"


def render_markdown(plan: Plan) -> str:
    """For a pull-request comment: summary first, a table of changes, the full plan folded."""
    out = ["### reconciler plan", ""]
    if plan.changes:
        out.append(f"**{summary_line(plan)}**")
    else:
        out.append(f"**No changes.** Live state matches the manifests ({', '.join(plan.regions)}).")
    if not plan.secrets_checked:
        out += ["", "> [!WARNING]", f"> {SECRETS_NOT_CHECKED}"]
    if plan.changes:
        out += ["", "| Action | Resource | Address | Detail |", "|---|---|---|---|"]
        for change in plan.changes:
            out.append(f"| **{change.action.value}** | {change.resource.value} | `{_cell(change.address)}` "
                       f"| {_cell(_detail(change))} |")
        text = render_text(plan, color=False)
        diff_lines = []
        for line in text.splitlines():
            stripped = line.lstrip()
            if stripped[:1] in ("+", "-", "~"):
                # Move the marker to column 0 so GitHub's diff highlighting colours the line.
                marker = "!" if stripped[0] == "~" else stripped[0]
                diff_lines.append(marker + line.replace(stripped[0], " ", 1)[1:])
            else:
                diff_lines.append(" " + line if line else "")
        out += ["", "<details><summary>Full plan</summary>", "", "```diff", *diff_lines, "```", "",
                "</details>"]
    return "\n".join(out) + "\n"

