"""Property: for any emulator state, export then plan of what it wrote has no changes."""

from __future__ import annotations

import asyncio
import re
import tempfile
from pathlib import Path
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from reconciler.aliyun.client import ApiClient
from reconciler.aliyun.credentials import Credentials
from reconciler.differ import diff
from reconciler.emulator.app import EmulatorApp
from reconciler.emulator.state import EmulatorState
from reconciler.emulator.verify import AccessKey
from reconciler.export import export_manifests
from reconciler.fetcher import fetch_for_export, fetch_snapshots
from reconciler.live import fetch_targets
from reconciler.manifest import load_desired_state
from reconciler.vendor_rules import MANAGED_STAGES

REGION = "cn-hangzhou"
# Signature names that YAML reads as something else, or that differ only in case (one variable each).
SIGNATURE_NAMES = st.one_of(st.sampled_from(["null", "True", "NULL", "false", "orders_key", "Orders_Key", "订单签名_01",
                                            "签名ab", "Ab签名"]),
                            st.from_regex(r"[A-Za-z][A-Za-z0-9_]{3,12}", fullmatch=True))
SECRETS = st.from_regex(r"[A-Za-z][A-Za-z0-9_@#!*]{5,12}", fullmatch=True)
API_NAMES = st.one_of(st.sampled_from(["yes", "on", "123", "~", "null", "list_items", "#x", "a:b", "f" * 32]),
                      st.text(min_size=1, max_size=10).filter(lambda s: re.fullmatch(r"\S+", s) is not None))


@st.composite
def states(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(SIGNATURE_NAMES, unique=True, max_size=5))
    signatures = [{"name": n, "key": f"key_{i:04d}", "secret": draw(SECRETS)} for i, n in enumerate(names)]
    groups = []
    for index in range(draw(st.integers(0, 3))):
        apis = draw(st.lists(API_NAMES, unique=True, max_size=6))
        bindings: dict[str, dict[str, str]] = {}
        if names and apis:
            for stage in MANAGED_STAGES:
                bound = draw(st.lists(st.sampled_from(apis), unique=True))
                if bound:
                    bindings[stage] = {api: draw(st.sampled_from(names)) for api in bound}
        groups.append({"name": f"group_{index}", "apis": [{"name": a} for a in apis], "bindings": bindings})
    return {"region": REGION, "signatures": signatures, "groups": groups}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(state=states(), split_by=st.sampled_from(["none", "group"]))
def test_export_then_plan_has_no_changes(state: dict[str, Any], split_by: str) -> None:
    # The emulator's ASGI app in-process (no HTTP server to start per example); tests/test_export.py
    # covers the same path over real HTTP.
    app = EmulatorApp(EmulatorState.from_dict(state), [AccessKey("testid", "testsecret")])
    credentials = Credentials(access_key_id="testid", access_key_secret=SecretStr("testsecret"))

    def client_for(region: str) -> ApiClient:
        return ApiClient("http://127.0.0.1", credentials, transport=httpx.ASGITransport(app=app))

    live = asyncio.run(fetch_for_export(client_for, REGION, None, MANAGED_STAGES))
    exported = export_manifests(live, exported_at="2026-01-01T00:00:00Z", source="endpoint test",
                                split_by="group" if split_by == "group" else "none")
    secrets = {s["name"]: s["secret"] for s in state["signatures"]}
    env = {variable: secrets[name] for name, variable in exported.secret_variables.items()}
    with tempfile.TemporaryDirectory() as folder:
        for file in exported.files:
            (Path(folder) / file.name).write_text(file.text, encoding="utf-8")
        desired = load_desired_state([Path(folder)], env=env)
    result = diff(desired, asyncio.run(fetch_snapshots(fetch_targets(desired), client_for)))
    assert not result.changes
    assert result.summary.no_op == len(state["signatures"]) + sum(
        len(by_api) for g in state["groups"] for by_api in g["bindings"].values())
