"""The signature policy (`require_signature` in manifests) checked against a plan: which published APIs stay
without a backend signature in a required stage once the plan is applied.

Decisions:
- A violation is judged on the state after the plan, not on the live state: a pull request that binds the
  missing key clears it, one that unbinds a published API causes it. Signed after the plan = bound live in
  that (group, stage), minus the plan's unbinds, plus its binds (a rebind keeps the API signed).
- `plan` checks the groups it reads anyway (those the manifests bind in) and the groups the policy names;
  `scan` checks every group of every region. Published = DescribeApis' DeployedInfos say DEPLOYED.
- It is judged on the whole plan, also when `--target` shows a part of it (a reviewer of a targeted plan
  still learns what the manifests leave unsigned).
- A violation is never an action: apply does not choose a key for an API. It makes `--detailed-exitcode`
  exit 2, like a pending change, so a drift job reports it.
"""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.errors import InputError
from reconciler.manifest import DesiredState, RegionDesired
from reconciler.plan import Action, Plan, Resource, Violation
from reconciler.snapshot import Snapshot


def with_policy(plan: Plan, desired: DesiredState, snapshots: Mapping[str, Snapshot]) -> Plan:
    """`plan` with its `violations`; left as None when there is none (or no manifest sets a policy), so a plan
    that keeps the policy reads, in every format, as it did before policies existed."""
    if not any(r.has_policy for r in desired.regions.values()):
        return plan
    found: list[Violation] = []
    for name in sorted(desired.regions):
        region = desired.regions[name]
        if region.has_policy:
            found += _region_violations(region, snapshots[name], plan)
    return plan.model_copy(update={"violations": tuple(found) or None})


def _region_violations(region: RegionDesired, snapshot: Snapshot, plan: Plan) -> list[Violation]:
    binds: set[tuple[str, str, str]] = set()
    unbinds: set[tuple[str, str, str]] = set()
    for change in plan.changes:
        if change.region != region.region:
            continue
        if change.resource is Resource.BINDING:
            api = (change.api.group, change.api.stage, change.api.api_id)
            (unbinds if change.action is Action.UNBIND else binds).add(api)
    live = {(b.group, b.stage, b.api_id) for b in snapshot.bindings}
    signed_after = (live - unbinds) | binds
    found = []
    for group in sorted(snapshot.groups, key=lambda g: g.id):
        for stage in region.required_stages(group.id):
            published = [api for api in group.apis if stage in api.deployed]
            if not published:
                continue
            if not snapshot.scope_was_read(group.id, stage):
                raise InputError(f"the live state of region {region.region} does not include the bindings of "
                                 f"group {group.id} stage {stage}, which the signature policy needs")
            source = _policy_source(region, group.id)
            found += [Violation(address=f"policy.{region.region}.{group.id}.{stage}.{api.id}", region=region.region,
                                group=group.id, stage=stage, api_id=api.id, api_name=api.name, source=source)
                      for api in sorted(published, key=lambda a: (a.name, a.id))
                      if (group.id, stage, api.id) not in signed_after]
    return found


def _policy_source(region: RegionDesired, group: str) -> str | None:
    location = region.policy_sources.get(group if group in region.require_signature_by_group else "")
    return str(location) if location is not None else None
