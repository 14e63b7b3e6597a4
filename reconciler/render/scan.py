"""Renderers of a scan: text for a terminal, markdown for the drift issue, JSON (`scan_json_schema`).

Every live value is shown as the plan shows it: through `inert` in text and as a code span in markdown,
marked when it breaks the vendor's rule for its kind (`common.py`).
"""

from __future__ import annotations

import json

from reconciler.inert import inert, md_code
from reconciler.render.common import GITHUB_COMMENT_LIMIT, marked, md_marked
from reconciler.scan import ApiRef, RegionScan, Scan, coverage_percent
from reconciler.vendor_rules import MANAGED_STAGES, STAGES


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
        lines += _coverage_table(region)
    lines += ["", summary_line(scan)]
    return "\n".join(lines).lstrip("\n") + "\n"


def _coverage_table(region: RegionScan) -> list[str]:
    """The region's coverage rows as a table: names left-aligned, numbers right-aligned."""
    lines = ["  Coverage (published APIs with a backend signature):"]
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
    return lines


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


# A block of the markdown, in the order shown: (priority, lines that always show, rows). Rows are dropped lowest
# priority first when the text is too long.
_Block = tuple[int, list[str], list[str]]


def render_markdown(scan: Scan, *, max_chars: int = MARKDOWN_MAX_CHARS) -> str:
    """For the drift issue: the summary, policy violations, then per region the signatures in no manifest,
    the unsigned published APIs and a coverage table per stage (lowest coverage first).

    Longer than `max_chars`, rows are left out from the end of each list, lowest priority first (coverage
    rows, then unsigned APIs that no policy covers), and a note says how many were left out."""
    head = _markdown_head(scan)
    violating = {v.address for v in scan.violations}
    blocks = [block for region in scan.regions for block in _region_blocks(region, violating)]
    text = _join(head, blocks, None)
    if len(text) <= max_chars:
        return text
    kept = _rows_kept(head, blocks, budget=max_chars - 400)  # room for the note
    left_out = sum(len(rows) for _, _, rows in blocks) - sum(kept)
    note = ["", "> [!NOTE]", f"> The scan is too long for one issue: {left_out} row(s) are left out (coverage rows "
                             "first, then unsigned APIs no policy covers). Run `reconciler scan -o json` to see "
                             "all of it."]
    return _join(head, blocks, kept, note)


def _markdown_head(scan: Scan) -> list[str]:
    head = ["### reconciler scan", "", f"**{summary_line(scan)}**"]
    if scan.violations:
        head += ["", "> [!CAUTION]", f"> **{len(scan.violations)} published API(s) have no backend signature in "
                                     f"a stage the signature policy requires** (listed first below)."]
    return head


def _region_blocks(region: RegionScan, violating: set[str]) -> list[_Block]:
    title = f"#### Region {md_code(region.region)}" + ("" if region.declared else " (in no manifest)")
    totals = (f"{region.signed} of {region.published} published APIs signed "
              f"({coverage_percent(region.signed, region.published):.1f}%) in {region.groups} API group(s); "
              f"{region.signatures} signature(s), {len(region.unmanaged_signatures)} in no manifest.")
    blocks: list[_Block] = [(9, ["", title, "", totals], [])]
    if region.unmanaged_signatures:
        blocks.append((2, ["", "Signatures in no manifest:", ""],
                       [f"- {md_marked(s.name, 'signature name')} ({md_code(s.signature_id)})"
                        for s in region.unmanaged_signatures]))
    return blocks + _unsigned_blocks(region, violating) + _coverage_blocks(region)


def _unsigned_blocks(region: RegionScan, violating: set[str]) -> list[_Block]:
    """Unsigned published APIs: those the signature policy requires, then the others."""
    unsigned = [(row, api) for row in region.coverage for api in row.unsigned]
    unsigned.sort(key=lambda item: f"policy.{region.region}.{item[0].group}.{item[0].stage}."
                                   f"{item[1].api_id}" not in violating)
    blocks: list[_Block] = []
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
    return blocks


def _coverage_blocks(region: RegionScan) -> list[_Block]:
    """A coverage table per stage, lowest coverage first."""
    blocks: list[_Block] = []
    for stage in (s for s in STAGES if s in MANAGED_STAGES):
        rows_of_stage = sorted((r for r in region.coverage if r.stage == stage), key=lambda r: (r.percent, r.group))
        if rows_of_stage:
            every = all(r.required for r in rows_of_stage)
            blocks.append((0, ["", f"Coverage in {stage}" + (" (required)" if every else "") + ":",
                               "", "| Group | Signed | Published | Coverage |", "|---|---:|---:|---:|"],
                           [f"| {_md_cell(r.group_name or r.group)} | {r.signed} | {r.published} | "
                            f"{r.percent:.1f}%{' (required)' if r.required and not every else ''} |"
                            for r in rows_of_stage]))
    return blocks


def _rows_kept(head: list[str], blocks: list[_Block], *, budget: int) -> list[int]:
    """How many rows of each block fit in `budget` characters, leaving rows out from the end of each block,
    lowest priority first (a block left without rows loses its lines too)."""
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
                return kept
    return kept


def _join(head: list[str], blocks: list[_Block], kept: list[int] | None,
          note: list[str] | None = None) -> str:
    lines = list(head)
    for index, (_priority, intro, rows) in enumerate(blocks):
        shown_rows = rows if kept is None else rows[:kept[index]]
        if rows and not shown_rows:
            continue  # a table whose rows were all left out loses its heading too
        lines += intro
        lines += shown_rows
    return "\n".join([*lines, *(note or [])]) + "\n"
