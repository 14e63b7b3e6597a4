"""The emulator as a plain ASGI application (no web framework), served by uvicorn or called in-process.

One request: read the body; apply injected faults (`faults.py`); collect the parameters (query
string, plus a form-encoded body); authenticate (`verify.py`); check Action and Version; run the
operation (`operations.py`); answer JSON. Every answer, success or error, carries a ``RequestId``
(an upper-case UUID, also in the ``x-acs-request-id`` header); errors are the vendor's body
``{Code, Message, RequestId, HostId, Recommend}`` with the error's HTTP status.

Protocol decisions: ``POST`` and ``GET`` are served on path ``/`` only (another path is 404
``InvalidAction.NotFound``, another method 405 ``UnsupportedHTTPMethod``); a parameter given twice
is 400 ``InvalidParameter``; ``Version`` must be ``2016-07-14`` (``InvalidVersion``); an unknown
action is 404 ``InvalidAction.NotFound``; ``Format`` other than JSON is 400 ``InvalidFormat``
(the emulator answers JSON only). An unexpected failure inside the emulator is 500 ``InternalError``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from reconciler.emulator.apierror import VendorErrorAnswer, missing
from reconciler.emulator.faults import (
    JSON_CONTENT_TYPE,
    NO_FAULT,
    FaultConfig,
    FaultInjector,
    FaultPlan,
    QpsLimiter,
    change_between_pages,
    garbled_body,
)
from reconciler.emulator.operations import OPERATIONS, Params
from reconciler.emulator.state import EmulatorState
from reconciler.emulator.verify import AccessKey, RequestVerifier

API_VERSION = "2016-07-14"
MAX_BODY_BYTES = 1024 * 1024

AsgiScope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class EmulatorApp:
    def __init__(
        self,
        state: EmulatorState,
        access_keys: Iterable[AccessKey] | dict[str, AccessKey],
        *,
        faults: FaultConfig | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.state = state
        # A dict is a key ring shared with the STS sibling (sts.py), which adds the keys it issues.
        keys = access_keys if isinstance(access_keys, dict) else {key.id: key for key in access_keys}
        self.verifier = RequestVerifier(keys, clock)
        self.faults = FaultInjector(faults or FaultConfig())
        limit = self.faults.config.qps_limit
        self.qps_limiter = QpsLimiter(limit) if limit is not None else None
        self.host_id = f"apigateway.{state.region}.aliyuncs.com"

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _run_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request_id = str(uuid.uuid4()).upper()
        plan = self.faults.plan()
        if plan.delay_seconds:
            await asyncio.sleep(plan.delay_seconds)
        if plan.reset:
            await _reset_connection(receive)
            return
        if plan.hang:
            await _wait_for_disconnect(receive)
            return
        try:
            body = await _read_body(receive)
            if plan.error is not None:
                raise plan.error
            payload = self._handle(scope, body, mutate=plan.mutate, swap=plan.swap)
            status, headers = 200, {}
        except VendorErrorAnswer as error:
            status, headers = error.status, error.headers
            payload = {"Code": error.code, "Message": error.message, "HostId": self.host_id}
        except Exception:  # the emulator's own bug: answer like the vendor's 500, never hang the client
            status, headers = 500, {}
            payload = {"Code": "InternalError", "Message": "The request processing has failed due to some "
                       "unknown error.", "HostId": self.host_id}
        payload["RequestId"] = request_id
        if status >= 400:  # the vendor's error bodies link its troubleshooting page for the code
            payload["Recommend"] = (f"https://api.aliyun.com/troubleshoot?q={payload['Code']}&product=CloudAPI"
                                    f"&requestId={request_id}")
        await _send_json(send, status, payload, {**headers, "x-acs-request-id": request_id}, plan)

    def _handle(self, scope: AsgiScope, body: bytes, *, mutate: bool = False, swap: bool = False) -> dict[str, Any]:
        method = scope["method"].upper()
        if method not in ("POST", "GET"):
            raise VendorErrorAnswer(405, "UnsupportedHTTPMethod", f"HTTP method {method} is not supported.")
        path = scope["path"]
        if path != "/":
            raise VendorErrorAnswer(404, "InvalidAction.NotFound", f"Path {path!r} is not served; RPC calls go to '/'.")
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        params = _parameters(scope["query_string"], headers, body)
        caller = self.verifier.verify(method, path, headers, params, body)
        if self.qps_limiter is not None:  # per verified caller, as the vendor's flow control is per account
            self.qps_limiter.admit(caller.access_key_id)
        if caller.algorithm == "V3":
            action, version = headers.get("x-acs-action"), headers.get("x-acs-version")
        else:
            action, version = params.get("Action"), params.get("Version")
            response_format = params.get("Format", "JSON")
            if response_format.upper() != "JSON":
                raise VendorErrorAnswer(400, "InvalidFormat", f"Format {response_format!r} is not supported; use JSON.")
        if not action:
            raise missing("Action")
        if version != API_VERSION:
            raise VendorErrorAnswer(400, "InvalidVersion", f"Specified parameter Version {version!r} is not valid; "
                           f"this endpoint serves {API_VERSION}.")
        operation = OPERATIONS.get(action)
        if operation is None:
            raise VendorErrorAnswer(404, "InvalidAction.NotFound", f"Specified api {action!r} is not found.")
        if mutate:
            change_between_pages(self.state, action, params, swap=swap)
        return operation(self.state, Params(params))


def _parameters(query_string: bytes, headers: dict[str, str], body: bytes) -> dict[str, str]:
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True, encoding="utf-8")
    if body and headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        pairs += parse_qsl(body.decode("latin-1"), keep_blank_values=True, encoding="utf-8")
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise VendorErrorAnswer(400, "InvalidParameter", f"Parameter {name!r} is given more than once.")
        params[name] = value
    return params


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise VendorErrorAnswer(413, "RequestEntityTooLarge", f"The request body exceeds {MAX_BODY_BYTES} bytes.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _reset_connection(receive: Receive) -> None:
    """Drop the connection with a TCP reset and no answer (an injected fault).

    ASGI has no message for this, so uvicorn's transport is reached through `receive`, a bound
    method of its request cycle. Served another way (in-process), the reset is raised instead, as
    the exception a client of a reset connection meets.
    """
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    if transport is None:
        raise ConnectionResetError("connection reset by the emulator (injected fault)")
    if transport.is_closing():  # the client has gone already
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:  # linger 0: close with RST instead of FIN
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    await asyncio.sleep(0)  # the server marks the request disconnected, so it answers nothing


async def _wait_for_disconnect(receive: Receive) -> None:
    """Answer nothing until the client gives up (an injected hang)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _send_json(send: Send, status: int, payload: dict[str, Any], headers: dict[str, str],
                     fault: FaultPlan = NO_FAULT) -> None:
    if fault.malformed is None:
        data, content_type = json.dumps(payload, separators=(",", ":")).encode("utf-8"), JSON_CONTENT_TYPE
    else:
        data, content_type = garbled_body(fault.malformed, fault.pick, payload)
    raw_headers = [
        (b"content-type", content_type.encode("ascii")),
        (b"content-length", str(len(data)).encode("ascii")),
        *((name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": data})


async def _run_lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
