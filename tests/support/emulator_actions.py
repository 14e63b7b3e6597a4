"""What reaches the emulator: the action of every HTTP request, seen on the server side."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import pytest

from reconciler.emulator.app import EmulatorApp


def _action(scope: dict[str, Any]) -> str:
    headers = dict(scope["headers"])
    if b"x-acs-action" in headers:  # ACS3-HMAC-SHA256
        return str(headers[b"x-acs-action"].decode())
    return parse_qs(scope["query_string"].decode()).get("Action", ["(none)"])[0]  # RPC V1


def record_actions(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every embedded or in-thread emulator of the test appends the action of each request it receives."""
    actions: list[str] = []
    serve = EmulatorApp.__call__

    async def recording(self: EmulatorApp, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            actions.append(_action(scope))
        await serve(self, scope, receive, send)

    monkeypatch.setattr(EmulatorApp, "__call__", recording)
    return actions
