"""Renderers of a plan: text (and its one-line-per-change view), markdown for a pull request, JSON.

Renderers only read a Plan; they never compare anything, and never print: each returns the text.
Colour in a terminal is our own few SGR sequences (`_paint`), so a renderer does not need click.

Every value of a plan may come from outside (the live state, a pull request's manifests): the text
renderers show each through `inert`, the markdown renderer through `md_code`/`md_text`. A value that
breaks the vendor's rule for its kind (a live API name, id, signature name or key the vendor would not
accept) is shown all the same, followed by a marker such as `(not a valid API name)`, in text, compact
and markdown (`marked`, `md_marked` in `common.py`; the scan's renderers show values the same way). JSON carries every
value exactly, escaped by JSON itself, and unmarked: its readers have the schema's rules.

The markdown's folded full plan is the text plan as a diff: it is drawn from the same lines as the text
(`_Line`, each knowing the action mark it starts with), the mark moved to the first column so that
GitHub colours it, never by reading the rendered text back.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from itertools import groupby
from typing import NamedTuple, assert_never

from reconciler.inert import inert, md_code, md_fence, md_text
from reconciler.plan import (
    Action,
    BindingChange,
    BindingValues,
    Change,
    Plan,
    Resource,
    SignatureChange,
    Violation,
)
from reconciler.render.common import GITHUB_COMMENT_LIMIT, invalid_mark, marked, md_marked
from reconciler.review import Label, Review, plan_document


def _group_text(plan: Plan, group: str) -> str:
    name = (plan.group_names or {}).get(group)
    shown = marked(group, "group id")
    return f"{shown} ({inert(name)})" if name else shown


def _group_markdown(plan: Plan, group: str) -> str:
    name = (plan.group_names or {}).get(group)
    shown = md_marked(group, "group id")
    return f"{shown} ({md_code(name)})" if name else shown


def _raw_marked(value: str, kind: str) -> str:
    """The value as it is, and its mark: for text that goes into one code span as a whole."""
    return value + invalid_mark(value, kind)


def summary_line(plan: Plan) -> str:
    if not plan.changes:
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
    show = show or marked
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


def label_line(review: Review, show: Callable[[str], str] = inert) -> str | None:
    """How the changes split against the base (None when the plan was not compared with one); `show` renders the
    base's name (escaped for a terminal by default)."""
    if review.base is None:
        return None
    counts = {label: sum(1 for c in review.listed if review.label(c) is label) for label in Label}
    return (f"Compared with the base {show(review.base.name)}: {counts[Label.INTRODUCED]} introduced, "
            f"{counts[Label.DRIFT]} drift (already pending on the base), {counts[Label.RESOLVED]} resolved.")


CHANGED_ONLY = ("Only what this change touches was read (--changed-only): the signatures and (group, stage) "
                "scopes whose declarations differ from the base. Drift elsewhere is not shown; the scheduled drift "
                "job reports it.")


def changed_only_line(review: Review) -> str | None:
    return CHANGED_ONLY if review.changed_only else None


def targets_line(review: Review, show: Callable[[str], str] = inert) -> str | None:
    if review.targets is None:
        return None
    return f"Only changes to {', '.join(map(show, review.targets))} are shown (--target); other changes may be pending."


SECRETS_NOT_CHECKED = "Secrets were not checked (--skip-secrets): only keys and bindings were compared."

_MARK = {Action.CREATE: "+", Action.UPDATE: "~", Action.DELETE: "-", Action.BIND: "+",
         Action.UNBIND: "-", Action.REBIND: "~", Action.UNMANAGED: "?", Action.DELETE_BLOCKED: "!"}
# Select Graphic Rendition foreground colours: green, yellow, red, cyan, magenta.
_COLOUR = {"+": "32", "~": "33", "-": "31", "?": "36", "!": "35"}
# GitHub colours a diff line by its first character: + added, - removed, ! changed.
_DIFF_MARK = {"+": "+", "-": "-", "~": "!"}


def _paint(text: str, mark: str) -> str:
    """`text` in the colour of an action `mark`, for a terminal (the text itself is inert already)."""
    return f"\x1b[{_COLOUR[mark]}m{text}\x1b[0m"


class _Line(NamedTuple):
    """A line of the text plan: `indent` spaces, the action `mark` and a space (when it has one), `text`, then
    `tail` (a label). In a terminal the line is coloured after its mark, but for `tail`; in the markdown's
    folded diff the mark moves to the first column."""

    text: str = ""
    mark: str = ""
    indent: int = 0
    tail: str = ""

    def terminal(self, color: bool) -> str:
        body = " " * self.indent + (f"{self.mark} " if self.mark else "") + self.text
        return (_paint(body, self.mark) if color and self.mark else body) + self.tail

    def diff(self) -> str:
        if self.mark in _DIFF_MARK:
            return _DIFF_MARK[self.mark] + " " * (self.indent + 1) + self.text + self.tail
        line = self.terminal(color=False)
        return " " + line if line else ""


def _tag(review: Review, change: Change) -> str:
    label = review.label(change)
    return f"  [{label.value}]" if label is not None else ""


def _signature_lines(change: SignatureChange, tag: str, group_names: Mapping[str, str] | None) -> Iterator[_Line]:
    mark = _MARK[change.action]
    values = change.values
    name = f'"{inert(values.name)}"{invalid_mark(values.name, "signature name")}'
    source = f"  ({inert(change.source)})" if change.source else ""
    match change.action:
        case Action.UNMANAGED:
            heading = "is unmanaged: live, but in no manifest; left alone (prune is off)"
            body = None
        case Action.DELETE_BLOCKED:
            heading = "cannot be deleted (prune: true): still bound where no manifest manages bindings"
            body = [_Line(f"bound in {scope}", mark, 6) for scope in still_bound_scopes(change, marked, group_names)]
        case Action.UPDATE:
            heading = "will be updated in place"
            body = list(_update_lines(change))
        case Action.CREATE | Action.DELETE:
            heading = "will be created" if change.action is Action.CREATE else "will be deleted (prune: true)"
            body = [_Line(f'key    = "{inert(values.key)}"{invalid_mark(values.key, "key")}', mark, 6),
                    _Line(f"secret = {values.secret}", mark, 6)]
        case unreachable:
            assert_never(unreachable)
    yield _Line(f"# signature {name} {heading}{source}{tag}", indent=2)
    if body is None:  # an unmanaged signature is named, not shown: it is no change
        yield _Line(f"signature {name}", mark, 2)
        return
    yield _Line(f"signature {name} {{", mark, 2)
    yield from body
    yield _Line("}", indent=4)


def _update_lines(change: SignatureChange) -> Iterator[_Line]:
    """What an update changes: the key, old and new, and the secret, which is never shown."""
    before, after = change.before, change.after
    if "key" in change.changed and before is not None and after is not None:
        yield _Line(f'key    = "{inert(before.key)}"{invalid_mark(before.key, "key")} -> '
                    f'"{inert(after.key)}"{invalid_mark(after.key, "key")}', "~", 6)
    if "secret" in change.changed:
        yield _Line("secret = (sensitive value changed)", "~", 6)


def _api_label(values: BindingValues) -> str:
    """The API as text: `name (id)`, or the id alone when the name is not known."""
    api_id = marked(values.api_id, "API id")
    return f"{marked(values.api_name, 'API name')} ({api_id})" if values.api_name else api_id


def _md_api_label(values: BindingValues, *, in_table: bool = False) -> str:
    """The API as markdown: one code span `name (id)`, then the marks of whichever breaks its rule."""
    text = f"{values.api_name} ({values.api_id})" if values.api_name else values.api_id
    marks = invalid_mark(values.api_name, "API name") if values.api_name else ""
    return md_code(text, in_table=in_table) + marks + invalid_mark(values.api_id, "API id")


def _shown_signature(name: str | None) -> str:
    return marked(name or "", "signature name")


def _binding_line(change: BindingChange, tag: str) -> _Line:
    api, old, new = change.api, change.old_signature, change.new_signature
    match change.action:
        case Action.BIND:
            text = f"bind   {_api_label(api)} -> {_shown_signature(new)}"
        case Action.UNBIND:
            text = f"unbind {_api_label(api)} from {_shown_signature(old)}"
        case Action.REBIND:
            text = f"rebind {_api_label(api)}: {_shown_signature(old)} -> {_shown_signature(new)}"
        case unreachable:
            assert_never(unreachable)
    return _Line(text, _MARK[change.action], 2, tag)


def _binding_scope(change: BindingChange) -> tuple[str, str]:
    return change.api.group, change.api.stage


def _review(shown: Plan | Review) -> Review:
    """What a renderer shows: a review, or a plan that nobody compared or narrowed."""
    match shown:
        case Review():
            return shown
        case Plan():
            return Review(shown)
        case unreachable:
            assert_never(unreachable)


def render_text(shown: Plan | Review, *, color: bool = False) -> str:
    """Terraform-like text: signatures first, then bindings grouped by group and stage; changes only the base
    had (label `resolved`) come last, one line each."""
    return "\n".join(line.terminal(color) for line in _text_lines(_review(shown))) + "\n"


def _text_lines(review: Review) -> list[_Line]:
    plan = review.plan
    lines: list[_Line] = []
    if plan.has_changes:
        lines.append(_Line("reconciler will perform the following actions:"))
    elif plan.changes:
        lines.append(_Line("Nothing to change; reported for information:"))
    for region, region_changes in groupby(plan.changes, key=lambda c: c.region):
        lines += [_Line(), _Line(f"Region {inert(region)}:")]
        changes = list(region_changes)
        for change in changes:
            if change.resource is Resource.SIGNATURE:
                lines.append(_Line())
                lines.extend(_signature_lines(change, _tag(review, change), plan.group_names))
        bindings = [c for c in changes if c.resource is Resource.BINDING]
        for (group, stage), scope_changes in groupby(bindings, key=_binding_scope):
            lines += [_Line(), _Line(f"# bindings in group {_group_text(plan, group)}, stage {inert(stage)}", indent=2)]
            lines.extend(_binding_line(c, _tag(review, c)) for c in scope_changes)
    if review.resolved:
        lines += [_Line(), _Line("Pending on the base, resolved by these manifests:")]
        lines += [_compact_line(review, c)._replace(indent=2) for c in review.resolved]
    after = [*violation_lines(plan), *_notes(review)]
    lines += [_Line(text) for text in [*after, *([""] if lines or after else []), summary_line(plan)]]
    return lines


def violation_lines(plan: Plan) -> list[str]:
    """The policy section of the text plan (nothing when no published API is left unsigned), count line last."""
    if not plan.violations:
        return []
    lines = ["", "Signature policy violations (reported, never applied):"]
    for v in plan.violations:
        source = f"  ({inert(v.source)})" if v.source else ""
        api = marked(v.api_id, "API id")
        name = f"{marked(v.api_name, 'API name')} ({api})" if v.api_name else api
        lines.append(f"  ! {name} in group {marked(v.group, 'group id')}, stage {v.stage}: published, no backend "
                     f"signature{source}")
    return [*lines, "", policy_line(plan.violations)]


def policy_line(violations: tuple[Violation, ...]) -> str:
    return (f"Signature policy: {len(violations)} published API(s) without a backend signature in a required "
            f"stage.")


def _notes(review: Review) -> list[str]:
    notes = [line for line in (blocked_line(review.plan), changed_only_line(review), targets_line(review),
                               label_line(review)) if line is not None]
    if not review.plan.secrets_checked:
        notes.append(f"Note: {SECRETS_NOT_CHECKED}")
    return [part for note in notes for part in ("", note)]


def _address_marks(change: Change) -> str:
    """The marks of the values the address is made of (the address itself is shown escaped)."""
    match change:
        case SignatureChange():
            return invalid_mark(change.values.name, "signature name")
        case BindingChange():
            return invalid_mark(change.api.group, "group id") + invalid_mark(change.api.api_id, "API id")
        case unreachable:
            assert_never(unreachable)


def _compact_detail(change: Change) -> str:
    match change:
        case SignatureChange(action=Action.DELETE_BLOCKED):
            return f" (still bound: {'; '.join(still_bound_scopes(change, marked))})"
        case SignatureChange():
            return f" ({', '.join(map(inert, change.changed))})" if change.changed else ""
        case BindingChange():
            api, old, new = change.api, change.old_signature, change.new_signature
            name = marked(api.api_name, "API name") if api.api_name else inert(api.api_id)
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


def _compact_line(review: Review, change: Change) -> _Line:
    text = f"{change.action.value:<9} {inert(change.address)}{_address_marks(change)}{_compact_detail(change)}"
    if review.label(change) is Label.RESOLVED:
        # Not an action of this plan: no +/-/~ that would read (and colour) as one.
        return _Line(f"= {text}", tail=_tag(review, change))
    return _Line(text, _MARK[change.action], tail=_tag(review, change))


def render_compact(shown: Plan | Review, *, color: bool = False) -> str:
    """One line per change (`--compact`), then the notes and the summary line of the text view."""
    review = _review(shown)
    plan = review.plan
    lines = [_compact_line(review, c).terminal(color) for c in review.listed]
    lines += [f"! violation {inert(v.address)}" for v in plan.violations or ()]  # an address: escaped, unmarked
    lines += ["", policy_line(plan.violations)] if plan.violations else []
    lines += _notes(review)
    if lines:
        lines.append("")
    lines.append(summary_line(plan))
    return "\n".join(lines) + "\n"


def render_json(shown: Plan | Review) -> str:
    document = plan_document(_review(shown))
    # Optional fields added within format "1" are left out when unset (see review.py).
    for name in ("base", "targets", "group_names", "violations", "changed_only"):
        if document[name] is None:
            del document[name]
    if not document["summary"]["delete_blocked"]:
        del document["summary"]["delete_blocked"]
    for change in document["changes"]:
        for name in ("label", "still_bound"):
            if change[name] is None:
                del change[name]
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
                parts.append(f"key {md_marked(before.key, 'key', in_table=True)} → "
                             f"{md_marked(after.key, 'key', in_table=True)}")
            if "secret" in change.changed:
                parts.append("secret (sensitive value changed)")
            return ", ".join(parts)
        case Action.DELETE_BLOCKED:
            return "not deleted, still bound: " + "; ".join(
                md_code(scope, in_table=True) for scope in still_bound_scopes(change, _raw_marked, plan.group_names))
        case Action.UNMANAGED:
            return f"key {md_marked(change.values.key, 'key', in_table=True)} (in no manifest; left alone)"
        case Action.CREATE | Action.DELETE:
            return f"key {md_marked(change.values.key, 'key', in_table=True)}"
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
    return md_marked(name or "", "signature name", in_table=in_table)


# The rest of GitHub's limit is room for what a CI job wraps around the plan (a marker to find its comment
# again, a heading).
MARKDOWN_MAX_CHARS = GITHUB_COMMENT_LIMIT - 1_536
DESTRUCTIVE_LISTED = 20


@dataclass(frozen=True)
class _Table:
    intro: list[str]
    rows: list[str]


def _destructive_item(review: Review, change: Change) -> str:
    # Drift was not brought by the pull request: the reviewer should know it is not the author's doing.
    drift = (" - **drift**: already pending on the base, not introduced here"
             if review.label(change) is Label.DRIFT else "")
    region = md_text(change.region)
    match change:
        case SignatureChange():
            return f"delete signature {_md_signature(change.values.name)} ({region}){drift}"
        case BindingChange():
            api = change.api
            return (f"unbind {_md_api_label(api)} from {_md_signature(change.old_signature)} "
                    f"(group {_group_markdown(review.plan, api.group)}, {md_text(api.stage)}, {region}){drift}")
        case unreachable:
            assert_never(unreachable)


def _markdown_head(review: Review) -> list[str]:
    plan = review.plan
    out = ["### reconciler plan", ""]
    if plan.changes:
        out.append(f"**{summary_line(plan)}**")
    else:
        # --changed-only with nothing that differs from the base reads no region: no empty "()" then.
        regions = f" ({', '.join(map(md_text, review.regions))})" if review.regions else ""
        out.append(f"**No changes.** Live state matches the manifests{regions}.")
    destructive = [c for c in plan.changes if c.action in (Action.DELETE, Action.UNBIND)]
    if destructive:
        # First thing a reviewer reads: what this plan takes away.
        takes = [text for count, text in ((plan.summary.delete, f"deletes {plan.summary.delete} signature(s)"),
                                          (plan.summary.unbind, f"unbinds {plan.summary.unbind} API(s)")) if count]
        out += ["", "> [!CAUTION]", f"> **This plan {' and '.join(takes)}:**"]
        out += [f"> - {_destructive_item(review, c)}" for c in destructive[:DESTRUCTIVE_LISTED]]
        if len(destructive) > DESTRUCTIVE_LISTED:
            out.append(f"> - ... and {len(destructive) - DESTRUCTIVE_LISTED} more, listed below")
    blocked = blocked_line(plan, _md_signature)
    if blocked is not None:
        out += ["", "> [!WARNING]", f"> {blocked}"]
    if not plan.secrets_checked:
        out += ["", "> [!WARNING]", f"> {SECRETS_NOT_CHECKED}"]
    for note in (changed_only_line(review), targets_line(review, md_text)):
        if note is not None:
            out += ["", "> [!NOTE]", f"> {note}"]
    if plan.violations:
        out += ["", "> [!IMPORTANT]", f"> {policy_line(plan.violations)} Reported, never applied:"]
        out += [f"> - {md_marked(v.api_name, 'API name') if v.api_name else md_marked(v.api_id, 'API id')} "
                f"({md_marked(v.api_id, 'API id')}) in group {md_marked(v.group, 'group id')}, {v.stage}, "
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


def _markdown_tables(review: Review) -> list[_Table]:
    """One table per section (label, when there is a base) and, over several regions, per region."""
    sections: list[tuple[list[str], list[Change]]] = []
    line = label_line(review, md_text)
    if line is None:
        sections.append(([], list(review.listed)))
    else:
        for label, (heading, explanation) in _SECTIONS.items():
            changes = [c for c in review.listed if review.label(c) is label]
            if changes:
                intro = [] if sections else ["", line]
                sections.append(([*intro, "", heading, *([explanation] if explanation else [])], changes))
    tables = []
    for intro, changes in sections:
        for index, (region, region_changes) in enumerate(groupby(changes, key=lambda c: c.region)):
            lead = intro if index == 0 else []
            if len(review.regions) > 1:
                lead = [*lead, "", f"**Region {md_text(region)}**"]
            rows = [f"| **{c.action.value}** | {c.resource.value} | {md_code(c.address, in_table=True)}"
                    f"{_address_marks(c)} | {_detail(review.plan, c)} |" for c in region_changes]
            tables.append(_Table([*lead, "", "| Action | Resource | Address | Detail |", "|---|---|---|---|"],
                                 rows))
    return tables


def _markdown_details(review: Review) -> list[str]:
    # Every line of the text plan starts with the renderer's own words, never with a value, and values are
    # escaped to one line each; the fence is longer than any backtick run all the same.
    diff_lines = [line.diff() for line in _text_lines(review)]
    return ["", "<details><summary>Full plan</summary>", "", *md_fence(diff_lines, "diff"), "", "</details>"]


def render_markdown(shown: Plan | Review, *, max_chars: int = MARKDOWN_MAX_CHARS) -> str:
    """For a pull-request comment: summary first, deletions and unbinds called out, a table of changes (a
    section each for introduced, drift and resolved when compared with a base), the full plan folded.

    Longer than `max_chars`, the folded full plan is left out, then table rows from the end, and a note
    says how many changes are listed."""
    review = _review(shown)
    head = _markdown_head(review)
    if not review.listed and not review.plan.violations:
        return "\n".join(head) + "\n"
    tables = _markdown_tables(review)
    text = "\n".join([*head, *(line for t in tables for line in (*t.intro, *t.rows)),
                      *_markdown_details(review)]) + "\n"
    if len(text) <= max_chars:
        return text
    body, listed = _fitted_tables(tables, room=max_chars - len("\n".join(head)) - 1 - 400)  # 400: the note
    total = len(review.listed)
    which = "every change is listed above" if listed == total else f"{listed} of {total} changes are listed above"
    note = ["", "> [!NOTE]", f"> The plan is too long for one comment: the full text plan is left out and {which}. "
                             "Run `reconciler plan` (or `-o json`) to see all of it."]
    return "\n".join([*head, *body, *note]) + "\n"


def _fitted_tables(tables: list[_Table], *, room: int) -> tuple[list[str], int]:
    """The lines of the tables that fit in `room` characters, rows left out from the end of each table (a
    table left without rows loses its intro too), and how many rows (changes) are listed."""
    used = 0
    body: list[str] = []
    listed = 0
    for table in tables:
        block = list(table.intro)
        size = sum(len(line) + 1 for line in block)
        for row in table.rows:
            if used + size + len(row) + 1 > room:
                break
            block.append(row)
            size += len(row) + 1
        if len(block) > len(table.intro):
            body += block
            used += size
            listed += len(block) - len(table.intro)
    return body, listed
