"""For random (desired, live) pairs, plan, apply over the emulator, then plan again: nothing is left to do,
except deleting signatures that are still bound where no manifest looks, which the plan shows as blocked
(and apply refuses; here the rest of the plan is applied without them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from reconciler.aliyun.credentials import Credentials
from reconciler.apply import apply_plan
from reconciler.differ import diff
from reconciler.emulator.server import running_emulator
from reconciler.emulator.state import EmulatorState, derived_id
from reconciler.live import Connection, ConnectionOptions, read_live_state
from reconciler.manifest import load_desired_state
from reconciler.plan import ACTIONABLE, Action

NAMES = ("alpha_sig", "beta_sig", "gamma_sig", "delta_sig")
KEYS = ("keyOne01", "keyTwo02")
SECRETS = ("secretOne1", "secretTwo2")
GROUPS = ("g0", "g1")
APIS = ("a0", "a1", "a2")
STAGES = ("RELEASE", "TEST")
SCOPES = tuple((g, s) for g in GROUPS for s in STAGES)

Signatures = dict[str, tuple[str, str]]  # name -> (key, secret)
Bindings = dict[tuple[str, str, str], str]  # (group, stage, api) -> signature name


@dataclass
class World:
    live_signatures: Signatures
    live_bindings: Bindings
    desired_signatures: Signatures
    desired_bindings: Bindings
    managed: list[tuple[str, str]]
    prune: bool
    api_by_id: dict[tuple[str, str, str], bool]  # whether the manifest names the API by id


def signatures() -> st.SearchStrategy[Signatures]:
    return st.dictionaries(st.sampled_from(NAMES), st.tuples(st.sampled_from(KEYS), st.sampled_from(SECRETS)),
                           max_size=len(NAMES))


def bindings(names: list[str], scopes: tuple[tuple[str, str], ...]) -> st.SearchStrategy[Bindings]:
    """Every API of every scope bound to one of `names` or to nothing, so each kind of change is likely."""
    slots = [(group, stage, api) for group, stage in scopes for api in APIS]
    if not names:
        return st.just({})
    choice = st.one_of(st.none(), st.sampled_from(names))
    return st.fixed_dictionaries({slot: choice for slot in slots}).map(
        lambda found: {slot: name for slot, name in found.items() if name is not None})


@st.composite
def worlds(draw: st.DrawFn) -> World:
    live_sigs = draw(signatures())
    live_binds = draw(bindings(sorted(live_sigs), SCOPES))
    desired_sigs = draw(signatures())
    managed = draw(st.lists(st.sampled_from(SCOPES), unique=True)) if desired_sigs else []
    desired_binds = draw(bindings(sorted(desired_sigs), tuple(managed)))
    # A managed scope needs at least one binding in a manifest to be mentioned at all.
    managed = [scope for scope in managed if any(k[:2] == scope for k in desired_binds)]
    by_id = {slot: draw(st.booleans()) for slot in desired_binds}
    return World(live_sigs, live_binds, desired_sigs, desired_binds, managed, draw(st.booleans()), by_id)


def emulator_state(world: World) -> EmulatorState:
    groups: list[dict[str, Any]] = []
    for group in GROUPS:
        stages: dict[str, dict[str, str]] = {}
        for (g, stage, api), name in world.live_bindings.items():
            if g == group:
                stages.setdefault(stage, {})[api] = name
        groups.append({"name": group, "apis": [{"name": api} for api in APIS], "bindings": stages})
    return EmulatorState.from_dict({
        "region": "cn-hangzhou",
        "signatures": [{"name": n, "key": k, "secret": s} for n, (k, s) in world.live_signatures.items()],
        "groups": groups})


def manifest_text(world: World) -> str:
    lines = ["region: cn-hangzhou", f"prune: {str(world.prune).lower()}", "signatures:"]
    lines += [f"  - {{name: {n}, key: {k}, secret: {s}}}" for n, (k, s) in world.desired_signatures.items()]
    if not world.desired_signatures:
        lines[-1] = "signatures: []"
    grouped: dict[tuple[str, str, str], list[str]] = {}
    for (group, stage, api), name in world.desired_bindings.items():
        group_id = derived_id("group", group)
        ref = derived_id("api", group_id, api) if world.api_by_id[(group, stage, api)] else api
        grouped.setdefault((group_id, stage, name), []).append(ref)
    lines.append("bindings:" if grouped else "bindings: []")
    lines += [f"  - {{group: {g}, stage: {s}, signature: {n}, apis: [{', '.join(apis)}]}}"
              for (g, s, n), apis in grouped.items()]
    return "\n".join(lines) + "\n"


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(world=worlds())
def test_apply_then_plan_is_empty(world: World, tmp_path: Path) -> None:
    manifest = tmp_path / "region.yaml"
    manifest.write_text(manifest_text(world))
    desired = load_desired_state([manifest], env={})
    with running_emulator(emulator_state(world)) as emulator:
        credentials = Credentials(access_key_id="testid", access_key_secret=SecretStr("testsecret"))
        # Concurrency above the number of deletes: every delete is tried, whichever is refused first.
        connection = Connection(ConnectionOptions(concurrency=8), credentials, emulator.url, allow_writes=True)
        snapshots = read_live_state(desired, connection)
        plan = diff(desired, snapshots)
        blocked = sorted(c.address.rsplit(".", 1)[1] for c in plan.blocked)
        unblocked = plan.model_copy(update={"changes": tuple(c for c in plan.changes if c not in plan.blocked)})
        result = apply_plan(unblocked, desired, snapshots, connection.client, concurrency=8, report=lambda _: None)
        after = diff(desired, read_live_state(desired, connection))

    # Oracle, independent of the differ: signatures apply may not delete are those pruned but still
    # bound in a (group, stage) no manifest mentions.
    bound_elsewhere = set()
    if world.prune:
        bound_elsewhere = {name for (group, stage, _), name in world.live_bindings.items()
                           if name not in world.desired_signatures and (group, stage) not in world.managed}
    assert blocked == sorted(bound_elsewhere)
    assert result.ok, result.failures
    left = sorted((c.action, c.address.rsplit(".", 1)[1]) for c in after.changes
                  if c.action in ACTIONABLE or c.action is Action.DELETE_BLOCKED)
    assert left == sorted((Action.DELETE_BLOCKED, name) for name in bound_elsewhere)
