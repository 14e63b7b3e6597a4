"""Property: the signature policy reports exactly the published APIs of the required stages that are not bound once
the plan is applied (bound live, minus the plan's unbinds, plus its binds and rebinds)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.differ import diff
from reconciler.manifest import DesiredState
from reconciler.plan import Action, BindingChange
from reconciler.policy import with_policy
from reconciler.snapshot import LiveApi, LiveGroup, Snapshot
from tests.plan.test_differ_property import APIS, GROUPS, REGION, desired_states, snapshots

stage_sets = st.sampled_from([(), ("RELEASE",), ("TEST",), ("RELEASE", "TEST")])


@st.composite
def published(draw: st.DrawFn, live: Snapshot) -> Snapshot:
    groups = tuple(LiveGroup(id=g, apis=tuple(LiveApi(id=i, name=n, deployed=draw(stage_sets))  # type: ignore[arg-type]
                                              for i, n in APIS[g])) for g in GROUPS)
    return live.model_copy(update={"groups": groups})


@settings(max_examples=200, deadline=None)
@given(desired=desired_states(), live=snapshots(), data=st.data(), required=stage_sets,
       by_group=st.dictionaries(st.sampled_from(GROUPS), stage_sets, max_size=1))
def test_violations_are_the_published_apis_left_unbound_after_the_plan(
        desired: DesiredState, live: Snapshot, data: st.DataObject, required: tuple[str, ...],
        by_group: dict[str, tuple[str, ...]]) -> None:
    live = data.draw(published(live))
    region = desired.regions[REGION]
    region.require_signature, region.require_signature_by_group = required, by_group  # type: ignore[assignment]
    plan = diff(desired, {REGION: live})
    changes = [c for c in plan.changes if isinstance(c, BindingChange)]
    unbound = {(c.api.group, c.api.stage, c.api.api_id) for c in changes if c.action is Action.UNBIND}
    bound = {(c.api.group, c.api.stage, c.api.api_id) for c in changes if c.action is not Action.UNBIND}
    signed = ({(b.group, b.stage, b.api_id) for b in live.bindings} - unbound) | bound
    expected = [(group.id, stage, api.id) for group in sorted(live.groups, key=lambda g: g.id)
                for stage in by_group.get(group.id, required)
                for api in sorted(group.apis, key=lambda a: (a.name, a.id))
                if stage in api.deployed and (group.id, stage, api.id) not in signed]
    violations = with_policy(plan, desired, {REGION: live}).violations or ()
    assert [(v.group, v.stage, v.api_id) for v in violations] == expected
