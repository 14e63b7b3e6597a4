"""Account-wide scan: signatures in no manifest (in every region, declared or not) and backend-signature
coverage of the published APIs, per (group, stage); the Scan model and its renderers.

Inputs: the desired state (manifests; secrets are never needed) and one Snapshot per region read by
`fetcher.fetch_for_scan` (every group, every API with the stages it is published in, the bindings of each
(group, published stage)). Compares; never prints.

Decisions:
- `scan` is a command of its own, not a `plan` mode: it reads what no plan needs (DescribeRegions, every
  API group of every region), answers another question (how much of the estate is signed, and what exists
  that nobody declared) and needs two more read permissions. `plan` stays a plan of what the manifests
  manage; it checks the signature policy on the groups it reads (see `policy.py`).
- Published = DescribeApis' DeployedInfos say DEPLOYED for that stage. Signed = a backend signature is
  bound to the API in that (group, stage), whatever the signature (an ignored or unmanaged one counts).
- Coverage rows exist for each (group, stage) with at least one published API; percent = signed /
  published x 100, one decimal. Only RELEASE and TEST are measured: the vendor documents reading bindings
  (DescribeApiSignatures) in those two stages only, so an API published in PRE is not counted.
- Signatures in no manifest: in a declared region, a live signature that no manifest declares and no
  `ignore` glob matches; in a region no manifest declares, every signature.
- Findings (exit code 2 under --detailed-exitcode): a signature policy violation (an unsigned API published
  in a stage `require_signature` names for its group), or a signature in no manifest. Unsigned APIs that
  no policy covers are reported in the coverage and are not findings, so coverage can be raised step by
  step without a red drift job every morning.

Outside text: every live value is shown as the plan shows it, through `inert` in text and as a code span
in markdown, marked when it breaks the vendor's rule for its kind (`render.marked` / `render.md_marked`).

JSON format (`scan -o json`), version "1": the serialisation of `Scan`; its JSON Schema is
`scan_json_schema()` (kept in `docs/scan.schema.json`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from reconciler import __version__
from reconciler.inert import inert, md_code
from reconciler.manifest import DesiredState, RegionDesired
from reconciler.model import FrozenModel
from reconciler.plan import Violation
from reconciler.render import GITHUB_COMMENT_LIMIT, marked, md_marked
from reconciler.snapshot import LiveGroup, Snapshot
from reconciler.vendor_rules import MANAGED_STAGES, STAGES, Stage

SCAN_FORMAT_VERSION = "1"


class ApiRef(FrozenModel):
    api_id: str
    api_name: str


class Coverage(FrozenModel):
    group: str
    group_name: str | None
    stage: Stage
    published: int = Field(description="APIs of the group published in the stage")
    signed: int = Field(description="Of those, APIs with a backend signature bound in the stage")
    percent: float = Field(description="signed / published x 100, one decimal")
    required: bool = Field(description="The signature policy requires a signature in this stage for this group")
    unsigned: tuple[ApiRef, ...] = Field(description="Published APIs without a backend signature, by name")


class UnmanagedSignature(FrozenModel):
    name: str
    signature_id: str


class RegionScan(FrozenModel):
    region: str
    declared: bool = Field(description="A manifest declares the region")
    signatures: int = Field(description="Signatures live in the region")
    unmanaged_signatures: tuple[UnmanagedSignature, ...] = Field(description="Live signatures in no manifest")
    groups: int = Field(description="API groups in the region")
    published: int
    signed: int
    coverage: tuple[Coverage, ...]


class ScanSummary(FrozenModel):
    regions: int
    undeclared_regions: int = Field(description="Regions no manifest declares")
    unmanaged_signatures: int
    published: int = Field(description="(API, stage) pairs published, over every region")
    signed: int
    percent: float | None = Field(description="signed / published x 100, one decimal; null when nothing is published")
    violations: int


class Scan(FrozenModel):
    format_version: Literal["1"] = "1"
    tool_version: str = __version__
    regions: tuple[RegionScan, ...]
    violations: tuple[Violation, ...] = Field(
        description="Unsigned APIs published in a stage the signature policy requires (require_signature)")
    summary: ScanSummary

    @property
    def has_findings(self) -> bool:
        """A policy violation or a signature in no manifest (exit code 2 under --detailed-exitcode)."""
        return bool(self.violations) or self.summary.unmanaged_signatures > 0


def scan_json_schema() -> dict[str, Any]:
    schema = Scan.model_json_schema(mode="serialization")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema,
            "title": "reconciler scan", "description": "Output of `reconciler scan -o json`."}


def _percent(signed: int, published: int) -> float:
    return round(100 * signed / published, 1) if published else 100.0


# ---------------------------------------------------------------- building the scan


def build_scan(desired: DesiredState, snapshots: Mapping[str, Snapshot]) -> Scan:
    regions = []
    violations: list[Violation] = []
    for name in sorted(snapshots):
        region_desired = desired.regions.get(name)
        region, found = _region_scan(snapshots[name], region_desired)
        regions.append(region)
        violations += found
    published = sum(r.published for r in regions)
    signed = sum(r.signed for r in regions)
    summary = ScanSummary(
        regions=len(regions), undeclared_regions=sum(1 for r in regions if not r.declared),
        unmanaged_signatures=sum(len(r.unmanaged_signatures) for r in regions),
        published=published, signed=signed, percent=_percent(signed, published) if published else None,
        violations=len(violations))
    return Scan(regions=tuple(regions), violations=tuple(violations), summary=summary)


def _region_scan(snapshot: Snapshot, desired: RegionDesired | None) -> tuple[RegionScan, list[Violation]]:
    region = snapshot.region
    unmanaged = tuple(UnmanagedSignature(name=s.name, signature_id=s.id)
                      for s in sorted(snapshot.signatures, key=lambda s: s.name)
                      if desired is None or (s.name not in desired.signatures and not desired.is_ignored(s.name)))
    signed_keys = {(b.group, b.stage, b.api_id) for b in snapshot.bindings}
    rows: list[Coverage] = []
    violations: list[Violation] = []
    for group in sorted(snapshot.groups, key=lambda g: g.id):
        required = desired.required_stages(group.id) if desired is not None else ()
        for stage, published in _published_by_stage(group):
            unsigned = [a for a in published if (group.id, stage, a.id) not in signed_keys]
            signed = len(published) - len(unsigned)
            rows.append(Coverage(
                group=group.id, group_name=group.name, stage=stage, published=len(published), signed=signed,
                percent=_percent(signed, len(published)), required=stage in required,
                unsigned=tuple(ApiRef(api_id=a.id, api_name=a.name) for a in unsigned)))
            if stage in required:
                source = desired.policy_sources.get(group.id if group.id in desired.require_signature_by_group
                                                    else "") if desired is not None else None
                violations += [Violation(address=f"policy.{region}.{group.id}.{stage}.{a.id}", region=region,
                                         group=group.id, stage=stage, api_id=a.id, api_name=a.name,
                                         source=str(source) if source is not None else None) for a in unsigned]
    result = RegionScan(region=region, declared=desired is not None, signatures=len(snapshot.signatures),
                        unmanaged_signatures=unmanaged, groups=len(snapshot.groups),
                        published=sum(r.published for r in rows), signed=sum(r.signed for r in rows),
                        coverage=tuple(rows))
    return result, violations


def _published_by_stage(group: LiveGroup) -> list[tuple[Stage, list[Any]]]:
    by_stage: dict[Stage, list[Any]] = {}
    for api in sorted(group.apis, key=lambda a: (a.name, a.id)):
        for stage in api.deployed:
            by_stage.setdefault(stage, []).append(api)
    return [(stage, by_stage[stage]) for stage in STAGES if stage in MANAGED_STAGES and stage in by_stage]


# ---------------------------------------------------------------- renderers


def summary_line(scan: Scan) -> str:
    s = scan.summary
    coverage = (f"{s.signed} of {s.published} published APIs signed ({s.percent:.1f}%)" if s.percent is not None
                else "no published APIs")
    return (f"Scan: {s.regions} region(s) ({s.undeclared_regions} in no manifest), {s.unmanaged_signatures} "
            f"signature(s) in no manifest, {coverage}, {s.violations} policy violation(s).")


def _group_label(group: str, name: str | None) -> str:
    return f"{marked(group, 'group id')} ({inert(name)})" if name else marked(group, "group id")


def _api_label(api: ApiRef) -> str:
    api_id = marked(api.api_id, "API id")
    return f"{marked(api.api_name, 'API name')} ({api_id})" if api.api_name else api_id


def render_text(scan: Scan) -> str:
    """Per region: signatures in no manifest, unsigned published APIs (policy violations marked `!`), then the
    coverage table; the summary line last."""
    lines: list[str] = []
    violating = {v.address for v in scan.violations}
    for region in scan.regions:
        lines += ["", f"Region {inert(region.region)}" + ("" if region.declared else " (in no manifest)") + ":"]
        if region.unmanaged_signatures:
            lines.append("  Signatures in no manifest:")
            lines += [f"    ? {marked(s.name, 'signature name')} ({inert(s.signature_id)})"
                      for s in region.unmanaged_signatures]
        if not region.coverage:
            lines.append(f"  No published APIs ({region.groups} API group(s)).")
            continue
        unsigned = [(row, api) for row in region.coverage for api in row.unsigned]
        if unsigned:
            lines.append("  Unsigned published APIs (! = the signature policy requires a signature):")
            for row, api in unsigned:
                address = f"policy.{region.region}.{row.group}.{row.stage}.{api.api_id}"
                mark = "!" if address in violating else "-"
                lines.append(f"    {mark} {_api_label(api)} in group {_group_label(row.group, row.group_name)}, "
                             f"stage {row.stage}")
        lines.append("  Coverage (published APIs with a backend signature):")
        table = [("group", "stage", "signed", "published", "coverage")]
        table += [(_group_label(r.group, r.group_name), r.stage + ("*" if r.required else ""), str(r.signed),
                   str(r.published), f"{r.percent:.1f}%") for r in region.coverage]
        widths = [max(len(row[i]) for row in table) for i in range(5)]
        for cells in table:
            lines.append("    " + "  ".join([cells[0].ljust(widths[0]), cells[1].ljust(widths[1]),
                                            *(cell.rjust(width) for cell, width in zip(cells[2:], widths[2:],
                                                                                      strict=True))]).rstrip())
        if any(r.required for r in region.coverage):
            lines.append("    (* = a stage the signature policy requires)")
    lines += ["", summary_line(scan)]
    return "\n".join(lines).lstrip("\n") + "\n"


def render_json(scan: Scan) -> str:
    return json.dumps(scan.model_dump(mode="json"), indent=2) + "\n"


# GitHub refuses a comment (and an issue body) over 65,536 characters; the rest is room for what a CI job wraps
# around the scan (a marker to find its issue again, a heading, a link to the run).
MARKDOWN_MAX_CHARS = GITHUB_COMMENT_LIMIT - 1_536


def _md_cell(value: str) -> str:
    return md_code(value, in_table=True)


def _md_api(api: ApiRef) -> str:
    return (md_marked(api.api_name, "API name", in_table=True) if api.api_name
            else md_marked(api.api_id, "API id", in_table=True))


def render_markdown(scan: Scan, *, max_chars: int = MARKDOWN_MAX_CHARS) -> str:
    """For the drift issue: the summary, policy violations, then per region the signatures in no manifest,
    the unsigned published APIs and a coverage table per stage (lowest coverage first).

    Longer than `max_chars`, rows are left out from the end of each list, lowest priority first (coverage
    rows, then unsigned APIs that no policy covers), and a note says how many were left out."""
    head = ["### reconciler scan", "", f"**{summary_line(scan)}**"]
    if scan.violations:
        head += ["", "> [!CAUTION]", f"> **{len(scan.violations)} published API(s) have no backend signature in "
                                     f"a stage the signature policy requires** (listed first below)."]
    violating = {v.address for v in scan.violations}
    # Blocks in the order shown; each is (priority, lines that always show, rows). Rows are dropped lowest
    # priority first when the text is too long.
    blocks: list[tuple[int, list[str], list[str]]] = []
    for region in scan.regions:
        title = f"#### Region {md_code(region.region)}" + ("" if region.declared else " (in no manifest)")
        totals = (f"{region.signed} of {region.published} published APIs signed "
                  f"({_percent(region.signed, region.published):.1f}%) in {region.groups} API group(s); "
                  f"{region.signatures} signature(s), {len(region.unmanaged_signatures)} in no manifest.")
        blocks.append((9, ["", title, "", totals], []))
        if region.unmanaged_signatures:
            blocks.append((2, ["", "Signatures in no manifest:", ""],
                           [f"- {md_marked(s.name, 'signature name')} ({md_code(s.signature_id)})"
                            for s in region.unmanaged_signatures]))
        unsigned = [(row, api) for row in region.coverage for api in row.unsigned]
        unsigned.sort(key=lambda item: f"policy.{region.region}.{item[0].group}.{item[0].stage}."
                                       f"{item[1].api_id}" not in violating)
        for required in (True, False):
            rows = [f"| {_md_api(api)} | {md_marked(api.api_id, 'API id', in_table=True)} | "
                    f"{_md_cell(row.group_name or row.group)} | {row.stage} |"
                    for row, api in unsigned
                    if (f"policy.{region.region}.{row.group}.{row.stage}.{api.api_id}" in violating) is required]
            if rows:
                heading = ("Unsigned published APIs, **required by the signature policy**:" if required
                           else "Unsigned published APIs (no policy requires them):")
                blocks.append((3 if required else 1, ["", heading, "", "| API | API id | Group | Stage |",
                                                      "|---|---|---|---|"], rows))
        for stage in (s for s in STAGES if s in MANAGED_STAGES):
            rows_of_stage = sorted((r for r in region.coverage if r.stage == stage),
                                   key=lambda r: (r.percent, r.group))
            if rows_of_stage:
                every = all(r.required for r in rows_of_stage)
                blocks.append((0, ["", f"Coverage in {stage}" + (" (required)" if every else "") + ":",
                                   "", "| Group | Signed | Published | Coverage |", "|---|---:|---:|---:|"],
                               [f"| {_md_cell(r.group_name or r.group)} | {r.signed} | {r.published} | "
                                f"{r.percent:.1f}%{' (required)' if r.required and not every else ''} |"
                                for r in rows_of_stage]))
    text = _join(head, blocks, None)
    if len(text) <= max_chars:
        return text
    budget = max_chars - 400  # room for the note
    kept = [len(rows) for _, _, rows in blocks]
    size = len(_join(head, blocks, kept))
    for priority in range(10):
        for index in reversed(range(len(blocks))):
            if blocks[index][0] != priority:
                continue
            rows = blocks[index][2]
            while kept[index] and size > budget:
                kept[index] -= 1
                size -= len(rows[kept[index]]) + 1
                if not kept[index]:
                    size -= sum(len(line) + 1 for line in blocks[index][1])
            if size <= budget:
                break
        if size <= budget:
            break
    left_out = sum(len(rows) for _, _, rows in blocks) - sum(kept)
    note = ["", "> [!NOTE]", f"> The scan is too long for one issue: {left_out} row(s) are left out (coverage rows "
                             "first, then unsigned APIs no policy covers). Run `reconciler scan -o json` to see "
                             "all of it."]
    return _join(head, blocks, kept, note)


def _join(head: list[str], blocks: list[tuple[int, list[str], list[str]]], kept: list[int] | None,
          note: list[str] | None = None) -> str:
    lines = list(head)
    for index, (_priority, intro, rows) in enumerate(blocks):
        shown_rows = rows if kept is None else rows[:kept[index]]
        if rows and not shown_rows:
            continue  # a table whose rows were all left out loses its heading too
        lines += intro
        lines += shown_rows
    return "\n".join([*lines, *(note or [])]) + "\n"
