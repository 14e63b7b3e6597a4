"""Account-wide scan: signatures in no manifest (in every region, declared or not) and backend-signature
coverage of the published APIs, per (group, stage): the Scan model (its renderers: `render/scan.py`).

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
in markdown, marked when it breaks the vendor's rule for its kind (`render/common.py`).

JSON format (`scan -o json`), version "1": the serialisation of `Scan`; its JSON Schema is
`scan_json_schema()` (kept in `docs/scan.schema.json`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from reconciler import __version__
from reconciler.manifest import DesiredState, RegionDesired
from reconciler.model import FrozenModel
from reconciler.plan import Violation
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


def coverage_percent(signed: int, published: int) -> float:
    """signed / published x 100, one decimal; 100.0 when nothing is published."""
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
        published=published, signed=signed, percent=coverage_percent(signed, published) if published else None,
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
                percent=coverage_percent(signed, len(published)), required=stage in required,
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
