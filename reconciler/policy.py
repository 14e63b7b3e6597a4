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
    signed = _signed_after(region.region, snapshot, plan)
    read = {(scope.group, scope.stage) for scope in snapshot.scopes}
    found = []
    for group in sorted(snapshot.groups, key=lambda g: g.id):
        for stage in region.required_stages(group.id):
            published = [api for api in group.apis if stage in api.deployed]
            if not published:
                continue
            if (group.id, stage) not in read:
                raise InputError(f"the live state of region {region.region} does not include the bindings of "
                                 f"group {group.id} stage {stage}, which the signature policy needs")
            source = _policy_source(region, group.id)
            in_scope = signed.get((group.id, stage), set())
            found += [Violation(address=f"policy.{region.region}.{group.id}.{stage}.{api.id}", region=region.region,
                                group=group.id, stage=stage, api_id=api.id, api_name=api.name, source=source)
                      for api in sorted((a for a in published if a.id not in in_scope), key=lambda a: (a.name, a.id))]
    return found


def _signed_after(region: str, snapshot: Snapshot, plan: Plan) -> dict[tuple[str, str], set[str]]:
    """(group, stage) -> the APIs bound there once the plan is applied: bound live, minus the plan's unbinds,
    plus its binds (a rebind keeps an API signed). By scope, so that no tuple is made per live binding."""
    signed: dict[tuple[str, str], set[str]] = {}
    for binding in snapshot.bindings:
        in_scope = signed.get((binding.group, binding.stage))
        if in_scope is None:
            in_scope = signed[(binding.group, binding.stage)] = set()
        in_scope.add(binding.api_id)
    changes = [c for c in plan.changes if c.region == region and c.resource is Resource.BINDING]
    for change in changes:
        if change.action is Action.UNBIND:
            signed.get((change.api.group, change.api.stage), set()).discard(change.api.api_id)
    for change in changes:  # after every unbind: a bind wins over an unbind of the same API
        if change.action is not Action.UNBIND:
            signed.setdefault((change.api.group, change.api.stage), set()).add(change.api.api_id)
    return signed


def _policy_source(region: RegionDesired, group: str) -> str | None:
    location = region.policy_sources.get(group if group in region.require_signature_by_group else "")
    return str(location) if location is not None else None
