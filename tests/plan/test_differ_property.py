"""Property: carrying out a plan's actions on the live state yields a state whose plan is empty."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from reconciler.differ import diff
from reconciler.manifest import DesiredBinding, DesiredSignature, DesiredState, Location, RegionDesired
from reconciler.plan import ACTIONABLE, Action, BindingValues, Plan, SignatureValues
from reconciler.snapshot import BindingScope, LiveApi, LiveBinding, LiveGroup, LiveSignature, Snapshot

REGION = "cn-hangzhou"
NAMES = ["alpha_sig", "beta_sig", "gamma_sig", "delta_sig", "legacy_one"]
KEYS = ["keyAAAAA1", "keyBBBBB2"]
SECRETS = ["secretAA1", "secretBB2"]
GROUPS = ["a" * 32, "b" * 32]
STAGES = ["RELEASE", "TEST"]
APIS = {group: [(f"{group[0]}{i:031x}", f"api_{group[0]}_{i}") for i in range(4)] for group in GROUPS}
HERE = Location("m.yaml", 1)

scope_keys = st.tuples(st.sampled_from(GROUPS), st.sampled_from(STAGES), st.integers(0, 3))


@st.composite
def desired_states(draw: st.DrawFn) -> DesiredState:
    ignore = ("legacy_*",) if draw(st.booleans()) else ()
    candidates = [n for n in NAMES if not (ignore and n.startswith("legacy_"))]
    names = draw(st.lists(st.sampled_from(candidates), unique=True, max_size=4))
    region = RegionDesired(region=REGION, prune=draw(st.booleans()), ignore=ignore)
    for name in names:
        region.signatures[name] = DesiredSignature(
            name=name, key=draw(st.sampled_from(KEYS)), secret=SecretStr(draw(st.sampled_from(SECRETS))),
            secret_variable=None, location=HERE)
    if names:
        targets = draw(st.dictionaries(scope_keys, st.sampled_from(names), max_size=12))
        for (group, stage, index), signature in targets.items():
            api_id, api_name = APIS[group][index]
            by_id = draw(st.booleans())
            region.bindings.append(DesiredBinding(group=group, stage=stage, signature=signature,  # type: ignore[arg-type]
                                                  api=api_id if by_id else api_name, api_is_id=by_id, location=HERE))
    return DesiredState(regions={REGION: region}, secrets_checked=True)


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    names = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=5))
    sigs = tuple(LiveSignature(id=f"id-{n}", name=n, key=draw(st.sampled_from(KEYS)),
                               secret=SecretStr(draw(st.sampled_from(SECRETS)))) for n in names)
    bindings: list[LiveBinding] = []
    if names:
        for (group, stage, index), name in draw(st.dictionaries(scope_keys, st.sampled_from(names),
                                                                max_size=16)).items():
            api_id, api_name = APIS[group][index]
            bindings.append(LiveBinding(group=group, stage=stage, api_id=api_id, api_name=api_name,  # type: ignore[arg-type]
                                        signature_id=f"id-{name}", signature_name=name))
    return _snapshot(sigs, bindings)


def _snapshot(sigs: tuple[LiveSignature, ...], bindings: list[LiveBinding]) -> Snapshot:
    groups = tuple(LiveGroup(id=g, apis=tuple(LiveApi(id=i, name=n) for i, n in APIS[g])) for g in GROUPS)
    scopes = tuple(BindingScope(group=g, stage=s) for g in GROUPS for s in STAGES)  # type: ignore[arg-type]
    return Snapshot(region=REGION, signatures=sigs, groups=groups, scopes=scopes, bindings=tuple(bindings))


def carry_out(plan: Plan, desired: DesiredState, live: Snapshot) -> Snapshot:
    """What apply would do, done by hand on the snapshot."""
    wanted = desired.regions[REGION].signatures
    sigs = {s.name: s for s in live.signatures}
    bindings = {(b.group, b.stage, b.api_id): b for b in live.bindings}
    for change in plan.changes:
        before, after = change.before, change.after
        if change.action in (Action.CREATE, Action.UPDATE):
            assert isinstance(after, SignatureValues)
            sigs[after.name] = LiveSignature(id=f"id-{after.name}", name=after.name, key=after.key,
                                             secret=wanted[after.name].secret)
        elif change.action is Action.DELETE:
            assert isinstance(before, SignatureValues)
            del sigs[before.name]
        elif change.action in (Action.BIND, Action.REBIND):
            assert isinstance(after, BindingValues)
            bindings[(after.group, after.stage, after.api_id)] = LiveBinding(
                group=after.group, stage=after.stage, api_id=after.api_id, api_name=after.api_name,
                signature_id=f"id-{after.signature}", signature_name=after.signature)
        elif change.action is Action.UNBIND:
            assert isinstance(before, BindingValues)
            del bindings[(before.group, before.stage, before.api_id)]
    return _snapshot(tuple(sigs.values()), list(bindings.values()))


@settings(max_examples=300, deadline=None)
@given(desired=desired_states(), live=snapshots())
def test_plan_carried_out_leaves_nothing_to_do(desired: DesiredState, live: Snapshot) -> None:
    plan = diff(desired, {REGION: live})
    after = diff(desired, {REGION: carry_out(plan, desired, live)})
    assert [c for c in after.changes if c.action in ACTIONABLE] == []
    # Unmanaged signatures stay reported (and only those) until a manifest or prune deals with them.
    assert [c.address for c in after.changes] == [c.address for c in plan.changes if c.action is Action.UNMANAGED]
    assert after.summary.no_op == plan.summary.no_op + sum(c.action in ACTIONABLE and c.action not in (
        Action.DELETE, Action.UNBIND) for c in plan.changes)


@settings(max_examples=300, deadline=None)
@given(desired=desired_states(), live=snapshots())
def test_plan_carried_out_reaches_the_desired_state(desired: DesiredState, live: Snapshot) -> None:
    """An oracle independent of the differ: the state after the plan is what the manifests say."""
    region = desired.regions[REGION]
    result = carry_out(diff(desired, {REGION: live}), desired, live)
    sigs = {s.name: s for s in result.signatures}
    for name, want in region.signatures.items():
        assert want.secret is not None
        assert sigs[name].key == want.key
        assert sigs[name].secret_matches(want.secret.get_secret_value())
    for name in sigs.keys() - region.signatures.keys():
        assert not region.prune or region.is_ignored(name), name
    bound = {(b.group, b.stage, b.api_id): b.signature_name for b in result.bindings}
    wanted = {}
    for b in region.bindings:
        api_id = next(i for i, n in APIS[b.group] if b.api in (i, n))
        wanted[(b.group, b.stage, api_id)] = b.signature
    scopes = set(region.scopes())
    managed = {k: v for k, v in bound.items() if (k[0], k[1]) in scopes and not region.is_ignored(v)}
    assert managed == wanted
