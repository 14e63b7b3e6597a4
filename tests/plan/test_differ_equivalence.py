"""The differ leaves unbuilt the bindings it finds bound live as declared (`RegionDesired.bindings_unless`): its
plan, or its error, must be byte for byte the one it makes with every binding built and compared."""

from __future__ import annotations

import tempfile
from contextlib import nullcontext
from pathlib import Path
from unittest.mock import patch

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.differ import diff
from reconciler.errors import InputError
from reconciler.manifest import RegionDesired, load_desired_state
from reconciler.snapshot import BindingScope, LiveApi, LiveBinding, LiveGroup, Snapshot

REGION = "cn-hangzhou"
LISTED, ALSO_LISTED, UNLISTED = "a" * 32, "b" * 32, "c" * 32
GROUPS = [LISTED, ALSO_LISTED, UNLISTED]
STAGES = ["RELEASE", "TEST"]
# Per group, its APIs (id, name): two share a name, and the last of each group is bound live but not listed.
APIS = {group: [(f"{group[0]}{i:031x}", "orders_get" if i in (1, 2) else f"api_{group[0]}_{i}") for i in range(5)]
        for group in GROUPS}
SIGNATURES = ["sig_a", "sig_b", "legacy_x"]
# What a manifest may name in a group: mostly the APIs' ids, also their names, an unknown name and an unknown id.
NAMED = {group: [api_id for api_id, _ in APIS[group]] * 8 + [name for _, name in APIS[group]]
         + ["no_such_api", "d" * 32] for group in GROUPS}

scopes = st.tuples(st.sampled_from(GROUPS), st.sampled_from(STAGES))


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    bound = draw(st.dictionaries(st.tuples(scopes, st.integers(0, 4)), st.sampled_from(SIGNATURES), min_size=8,
                                 max_size=24))
    bindings = [LiveBinding(group=group, stage=stage, api_id=APIS[group][index][0],  # type: ignore[arg-type]
                            api_name=APIS[group][index][1], signature_id=f"id-{signature}",
                            signature_name=signature)
                for ((group, stage), index), signature in bound.items()]
    groups = tuple(LiveGroup(id=g, apis=tuple(LiveApi(id=i, name=n) for i, n in APIS[g][:4]))
                   for g in (LISTED, ALSO_LISTED))
    not_read = draw(st.none() | scopes)  # now and then a scope not read
    return Snapshot(region=REGION, groups=groups, bindings=tuple(bindings),
                    scopes=tuple(BindingScope(group=g, stage=s)  # type: ignore[arg-type]
                                 for g in GROUPS for s in STAGES if (g, s) != not_read))


@st.composite
def manifests(draw: st.DrawFn) -> str:
    ignoring = draw(st.booleans())  # legacy_x, left alone where bound live, or declared like the others
    declared = SIGNATURES[:2] if ignoring else SIGNATURES
    text = (f"region: {REGION}\nprune: {str(draw(st.booleans())).lower()}\n"
            + ("ignore: ['legacy_*']\n" if ignoring else "")
            + "signatures:\n" + "".join(f"  - {{name: {s}, key: key{n:05d}, secret: secret{n:05d}}}\n"
                                        for n, s in enumerate(declared)))
    entries = []
    for group, stage in draw(st.lists(scopes, unique=True, max_size=4)):
        # Each API text once in a scope (the loader refuses it twice); an id and a name of one API may meet.
        for api in draw(st.lists(st.sampled_from(NAMED[group]), min_size=1, max_size=5, unique=True)):
            entries.append(f"  - group: {group}\n    stage: {stage}\n    signature: {draw(st.sampled_from(declared))}"
                           f"\n    apis: [{api}]\n")
    text += ("bindings:\n" + "".join(entries)) if entries else ""
    # Padded past what is read exactly, the lines of the bindings are found only when a change names one.
    return text + ("# " + "x" * 5000 + "\n" if draw(st.booleans()) else "")


def _outcome(folder: Path, snapshot: Snapshot, *, every_binding_built: bool) -> str:
    desired = load_desired_state([folder], env=None)
    building_all = patch.object(RegionDesired, "bindings_unless", lambda self, matches: self.bindings)
    try:
        with building_all if every_binding_built else nullcontext():
            return diff(desired, {REGION: snapshot}).model_dump_json()
    except InputError as exc:  # PlanError included: the message names the manifest's line
        return f"{type(exc).__name__}: {exc}"


@settings(max_examples=250, deadline=None)
@given(manifest=manifests(), snapshot=snapshots())
def test_the_plan_is_the_one_made_with_every_binding_built(manifest: str, snapshot: Snapshot) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        (folder / "m.yaml").write_text(manifest)
        assert _outcome(folder, snapshot, every_binding_built=False) == _outcome(folder, snapshot,
                                                                                 every_binding_built=True)
