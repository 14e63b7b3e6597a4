"""Tenants of a given size, as an emulator state file plus manifests, or as in-memory desired and live state.

Shape: `groups` API groups, each with `apis` APIs, every API bound in every stage of `stages`;
`signatures` keys. Each run of 25 consecutive APIs of a group shares one signature, so a scope is
declared by a few manifest entries (as teams write them: one backend key per service), not one
entry per API.

The live state drifts from the manifests on purpose, so that the plan and its rendering have work
to do: every 100th binding of the first stage is bound to another signature (rebind), every 200th
of the second stage is not bound at all (bind), `DRIFTED_KEYS` signatures have another key live
(update) and `UNMANAGED` signatures exist only live.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr

from reconciler.manifest import DesiredBinding, DesiredSignature, DesiredState, Location, RegionDesired
from reconciler.snapshot import BindingScope, LiveApi, LiveBinding, LiveGroup, LiveSignature, Snapshot
from reconciler.vendor_rules import Stage

REGION = "cn-hangzhou"
APIS_PER_SIGNATURE_RUN = 25
DRIFTED_KEYS = 5
UNMANAGED = 5
REBIND_EVERY = 100
UNBOUND_EVERY = 200
GROUPS_PER_MANIFEST = 100


@dataclass(frozen=True)
class Size:
    groups: int
    apis: int = 100
    stages: tuple[Stage, ...] = ("RELEASE", "TEST")
    signatures: int = 500
    # APIs of a group in a row that share one signature (and one manifest entry); 1 = every API its own
    # signature and its own entry, as a team that gives each backend its own key writes them.
    signature_run: int = APIS_PER_SIGNATURE_RUN

    @property
    def bindings(self) -> int:
        return self.groups * len(self.stages) * self.apis

    def describe(self) -> str:
        return (f"{self.groups} groups x {len(self.stages)} stages x {self.apis} bindings "
                f"+ {self.signatures} signatures")


def hex_id(kind: str, *parts: int) -> str:
    return hashlib.md5(":".join((kind, *map(str, parts))).encode()).hexdigest()


def signature_name(index: int) -> str:
    return f"sig{index:05d}"


def secret_variable(index: int) -> str:
    return f"BENCH_SECRET_{index:05d}"


def _secret(index: int) -> str:
    return f"secret{index:05d}"


def _key(index: int) -> str:
    return f"key{index:05d}"


def _desired_signature_index(size: Size, group: int, api: int) -> int:
    if size.signature_run == 1:
        return (group * size.apis + api) % size.signatures
    return (group * 7 + api // size.signature_run) % size.signatures


def _live_signature_index(size: Size, group: int, stage_index: int, api: int) -> int | None:
    """The signature bound live, or None when the API is not bound live in that stage."""
    wanted = _desired_signature_index(size, group, api)
    position = (group * size.apis + api)
    if stage_index == 0 and position % REBIND_EVERY == REBIND_EVERY - 1:
        return (wanted + 1) % size.signatures
    if stage_index == 1 and position % UNBOUND_EVERY == UNBOUND_EVERY - 1:
        return None
    return wanted


def expected_changes(size: Size) -> int:
    """Changes the plan must list: rebinds, binds, updated keys, unmanaged signatures."""
    positions = size.groups * size.apis
    rebinds = positions // REBIND_EVERY
    binds = positions // UNBOUND_EVERY if len(size.stages) > 1 else 0
    return rebinds + binds + min(DRIFTED_KEYS, size.signatures) + UNMANAGED


def emulator_state(size: Size) -> dict[str, Any]:
    signatures = [{"name": signature_name(i), "id": hex_id("signature", i),
                   "key": _key(i) + ("x" if i < DRIFTED_KEYS else ""), "secret": _secret(i)}
                  for i in range(size.signatures + UNMANAGED)]
    groups = []
    for g in range(size.groups):
        bindings: dict[str, dict[str, str]] = {}
        for s, stage in enumerate(size.stages):
            bound = {}
            for a in range(size.apis):
                index = _live_signature_index(size, g, s, a)
                if index is not None:
                    bound[hex_id("api", g, a)] = signature_name(index)
            bindings[stage] = bound
        groups.append({"name": f"group{g:05d}", "id": hex_id("group", g),
                       "apis": [{"name": f"api{g:05d}_{a:03d}", "id": hex_id("api", g, a)} for a in range(size.apis)],
                       "bindings": bindings})
    return {"region": REGION, "signatures": signatures, "groups": groups}


def _binding_entries(size: Size, group: int, stage: Stage) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for start in range(0, size.apis, size.signature_run):
        apis = list(range(start, min(size.apis, start + size.signature_run)))
        entries.append({"group": hex_id("group", group), "stage": stage,
                        "signature": signature_name(_desired_signature_index(size, group, start)),
                        "apis": [hex_id("api", group, a) for a in apis]})
    return entries


def write_tenant(size: Size, folder: Path, *, groups_per_manifest: int = GROUPS_PER_MANIFEST
                 ) -> tuple[Path, Path, dict[str, str]]:
    """Write `state.json` and `manifests/*.yaml` into `folder`; return their paths and the secrets' environment.

    The signatures go to `signatures.yaml`, the bindings of each `groups_per_manifest` groups to one
    `bindings-*.yaml`."""
    folder.mkdir(parents=True, exist_ok=True)
    state_path = folder / "state.json"
    state_path.write_text(json.dumps(emulator_state(size)), encoding="utf-8")
    manifests = folder / "manifests"
    manifests.mkdir(exist_ok=True)
    for old in manifests.glob("*.yaml"):
        old.unlink()
    signatures = [{"name": signature_name(i), "key": _key(i), "secret": f"${{env:{secret_variable(i)}}}"}
                  for i in range(size.signatures)]
    _write_yaml(manifests / "signatures.yaml", {"region": REGION, "signatures": signatures})
    for first in range(0, size.groups, groups_per_manifest):
        bindings = [entry for g in range(first, min(size.groups, first + groups_per_manifest))
                    for stage in size.stages for entry in _binding_entries(size, g, stage)]
        _write_yaml(manifests / f"bindings-{first:05d}.yaml", {"region": REGION, "bindings": bindings})
    env = {secret_variable(i): _secret(i) for i in range(size.signatures)}
    return state_path, manifests, env


def _write_yaml(path: Path, document: dict[str, Any]) -> None:
    path.write_text(yaml.dump(document, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False,
                              default_flow_style=None, width=200), encoding="utf-8")


def in_memory(size: Size) -> tuple[DesiredState, Snapshot]:
    """The same tenant as `write_tenant`, built directly (no files, no YAML): for differ scaling runs."""
    region = RegionDesired(region=REGION, files=["bench.yaml"])
    where = Location("bench.yaml", 1)
    for i in range(size.signatures):
        region.signatures[signature_name(i)] = DesiredSignature(
            name=signature_name(i), key=_key(i), secret=SecretStr(_secret(i)), secret_variable=None, location=where)
    live_signatures = tuple(
        LiveSignature(id=hex_id("signature", i), name=signature_name(i),
                      key=_key(i) + ("x" if i < DRIFTED_KEYS else ""), secret=SecretStr(_secret(i)))
        for i in range(size.signatures + UNMANAGED))
    bindings: list[LiveBinding] = []
    groups: list[LiveGroup] = []
    for g in range(size.groups):
        group_id = hex_id("group", g)
        api_ids = [hex_id("api", g, a) for a in range(size.apis)]
        groups.append(LiveGroup(id=group_id, apis=tuple(LiveApi(id=api_id, name=f"api{g:05d}_{a:03d}")
                                                        for a, api_id in enumerate(api_ids))))
        for s, stage in enumerate(size.stages):
            for a, api_id in enumerate(api_ids):
                region.bindings.append(DesiredBinding(group=group_id, stage=stage,
                                                      signature=signature_name(_desired_signature_index(size, g, a)),
                                                      api=api_id, api_is_id=True, location=where))
                index = _live_signature_index(size, g, s, a)
                if index is not None:
                    bindings.append(LiveBinding(group=group_id, stage=stage, api_id=api_id,
                                                api_name=f"api{g:05d}_{a:03d}", signature_id=hex_id("signature", index),
                                                signature_name=signature_name(index)))
    snapshot = Snapshot(region=REGION, signatures=live_signatures, groups=tuple(groups),
                        scopes=tuple(BindingScope(group=hex_id("group", g), stage=stage)
                                     for g in range(size.groups) for stage in size.stages),
                        bindings=tuple(bindings))
    return DesiredState(regions={REGION: region}, secrets_checked=True), snapshot
