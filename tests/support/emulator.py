"""Calling the emulator in-process (httpx over ASGI), signed by the project's own auth flows."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Literal

import httpx

from reconciler.aliyun.auth import ACTION_EXTENSION, AcsV3Auth, RpcV1Auth, new_nonce, utc_now
from reconciler.aliyun.credentials import Credentials
from reconciler.emulator.app import EmulatorApp
from reconciler.emulator.faults import FaultConfig
from reconciler.emulator.state import EmulatorState
from reconciler.emulator.verify import AccessKey
from reconciler.vendor_rules import Stage

ACCESS_KEY = AccessKey("testid", "testsecret")
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
BASE_URL = "http://apigateway.cn-hangzhou.aliyuncs.com"

Algorithm = Literal["V3", "V1"]


def make_state(
    *, signatures: int = 0, groups: int = 1, apis: int = 0, bound: Mapping[str, int] | None = None
) -> EmulatorState:
    """`signatures` keys sig0000.., `groups` groups g0.. with `apis` APIs api000.. each; in every
    group, the first `bound[stage]` APIs bound to signature sig0000."""
    data: dict[str, Any] = {
        "region": "cn-hangzhou",
        "signatures": [
            {"name": f"sig{i:04d}", "key": f"key{i:04d}", "secret": f"secret{i:04d}"} for i in range(signatures)
        ],
        "groups": [
            {
                "name": f"g{g}",
                "apis": [{"name": f"api{a:03d}"} for a in range(apis)],
                "bindings": {stage: {f"api{a:03d}": "sig0000" for a in range(count)}
                             for stage, count in (bound or {}).items()},
            }
            for g in range(groups)
        ],
    }
    return EmulatorState.from_dict(data)


def make_app(state: EmulatorState, *, faults: FaultConfig | None = None,
             keys: tuple[AccessKey, ...] = (ACCESS_KEY,)) -> EmulatorApp:
    return EmulatorApp(state, keys, faults=faults)


class Caller:
    """Signed calls to an in-process emulator; `nonce` and `clock` may be pinned per caller."""

    def __init__(
        self,
        app: EmulatorApp,
        *,
        algorithm: Algorithm = "V3",
        access_key_id: str = ACCESS_KEY.id,
        secret: str = ACCESS_KEY.secret,
        security_token: str | None = None,
        nonce: Callable[[], str] = new_nonce,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.app = app
        credentials = Credentials(access_key_id=access_key_id, access_key_secret=secret,
                                  security_token=security_token)
        auth_class = AcsV3Auth if algorithm == "V3" else RpcV1Auth
        self.auth = auth_class(credentials, nonce=nonce, clock=clock)

    def call(self, action: str, **params: str | int) -> httpx.Response:
        query = {name: str(value) for name, value in params.items()}
        return send(self.app, "POST", "/", params=query, auth=self.auth, extensions={ACTION_EXTENSION: action})

    def ok(self, action: str, **params: str | int) -> dict[str, Any]:
        response = self.call(action, **params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def error(self, action: str, **params: str | int) -> tuple[int, str]:
        response = self.call(action, **params)
        body = response.json()
        assert set(body) == {"Code", "Message", "RequestId", "HostId", "Recommend"}, body
        return response.status_code, body["Code"]


def send(app: EmulatorApp, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())


def bindings_of(state: EmulatorState, group_id: str, stage: Stage) -> dict[str, str]:
    """API name -> signature name for one (group, stage) of `state`, as its state file would list them."""
    for group in state.to_spec().groups:
        if group.id == group_id:
            return dict(group.bindings.get(stage, {}))
    return {}
