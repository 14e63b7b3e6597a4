"""The tenant every reliability run reads: listings of several pages, and drift of every kind.

Built in code (not a committed file) so the page counts stay obvious: 130 signatures (2 pages of
DescribeSignatures), a group with 150 APIs (2 pages of DescribeApis) of which 120 are bound in
RELEASE (2 pages of DescribeApiSignatures), a TEST stage and a second, small group.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from reconciler.emulator.state import EmulatorState

REGION = "cn-hangzhou"
BIG_GROUP = "0b1e5f4a3c2d4e6f8a9b0c1d2e3f4a5b"
SMALL_GROUP = "5d1f3e0a7b8c4d2e9f6a1b3c5d7e9f01"
SIGNATURES = 130
BIG_GROUP_APIS = 150
BOUND_IN_RELEASE = 120
SMALL_GROUP_APIS = 30


def api_id(group: int, number: int) -> str:
    return f"{group:02x}{number:030x}"


def signature_of(api_number: int) -> str:
    return f"sig_{api_number % 50:03d}"


def state_data() -> dict[str, Any]:
    return {
        "region": REGION,
        "signatures": [{"name": f"sig_{i:03d}", "key": f"key_{i:03d}", "secret": f"secret_{i:03d}"}
                       for i in range(SIGNATURES)],
        "groups": [
            {"id": BIG_GROUP, "name": "big",
             "apis": [{"id": api_id(1, a), "name": f"api_{a:03d}"} for a in range(BIG_GROUP_APIS)],
             "bindings": {"RELEASE": {f"api_{a:03d}": signature_of(a) for a in range(BOUND_IN_RELEASE)},
                          "TEST": {f"api_{a:03d}": "sig_000" for a in range(10)}}},
            {"id": SMALL_GROUP, "name": "small",
             "apis": [{"id": api_id(2, a), "name": f"small_{a:02d}"} for a in range(SMALL_GROUP_APIS)],
             "bindings": {"RELEASE": {f"small_{a:02d}": "sig_001" for a in range(20)}}},
        ],
    }


def emulator_state() -> EmulatorState:
    return EmulatorState.from_dict(state_data())


def manifest_data() -> dict[str, Any]:
    """Declares 110 of the 130 signatures (the rest are unmanaged) with one drift of every kind:
    a create (new_backend), key and secret updates (sig_005, sig_007), a rebind (api_003), binds
    (api_120..api_129), an unbind (api_119 is left out)."""
    signatures = [{"name": f"sig_{i:03d}", "key": f"key_{i:03d}", "secret": f"secret_{i:03d}"} for i in range(110)]
    signatures[5]["key"] = "key_rotated"
    signatures[7]["secret"] = "secret_rotated"
    signatures.append({"name": "new_backend", "key": "newKey01", "secret": "newSecret01"})
    release: dict[str, list[str]] = {}
    for a in range(BOUND_IN_RELEASE + 10):
        if a == BOUND_IN_RELEASE - 1:
            continue
        owner = "sig_001" if a == 3 else signature_of(a)
        # Half by name, half by id: both resolve through the group's API list.
        release.setdefault(owner, []).append(f"api_{a:03d}" if a % 2 else api_id(1, a))
    bindings = [{"group": BIG_GROUP, "stage": "RELEASE", "signature": sig, "apis": apis}
                for sig, apis in sorted(release.items())]
    bindings.append({"group": BIG_GROUP, "stage": "TEST", "signature": "sig_000",
                     "apis": [f"api_{a:03d}" for a in range(10)]})
    bindings.append({"group": SMALL_GROUP, "stage": "RELEASE", "signature": "sig_001",
                     "apis": [f"small_{a:02d}" for a in range(20)]})
    return {"region": REGION, "signatures": signatures, "bindings": bindings}


def write_manifest(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tenant.yaml"
    text = yaml.safe_dump(manifest_data(), sort_keys=False, default_flow_style=None, width=120)
    path.write_text(text, encoding="utf-8")
    return folder
