"""Serving the emulator over real HTTP with uvicorn: in a background thread (tests, embedding) or in
the foreground until SIGINT/SIGTERM (the CLI).

Credentials: by default the emulator knows one access key, ``testid`` / ``testsecret``, a well-known
pair meant for the emulator only (like LocalStack's ``test``/``test``); never use real credentials
with it. The listening socket is bound before uvicorn starts, so port 0 gives a free port that is
known (and already accepting connections into its backlog) before the first request.

Exposure: the emulator serves signature secrets to anyone holding well-known credentials, so it
listens on loopback only unless `allow_remote` is given; and a client gets `HEADER_TIMEOUT_SECONDS`
from its connection (or from the first byte of its next request on a kept-alive connection) to send
a request's headers, after which the connection is closed, so a client trickling its headers a byte
at a time (slowloris) cannot hold connections open. uvicorn has no such timeout of its own: its
`timeout_keep_alive` only covers idle time between requests, and h11's limit is on size, not time.

Stopping: uvicorn checks its exit flag every 0.1 s and then polls, again every 0.1 s, for its
connections to close, which made each stop take 0.15-0.3 s; `PromptServer` wakes as soon as it is
told to stop and waits for the responses in flight in steps of a few milliseconds instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from reconciler.emulator.app import EmulatorApp
from reconciler.emulator.faults import FaultConfig
from reconciler.emulator.state import EmulatorState
from reconciler.emulator.verify import AccessKey
from reconciler.errors import InputError

DEFAULT_ACCESS_KEY_ID = "testid"
DEFAULT_ACCESS_KEY_SECRET = "testsecret"
STARTUP_TIMEOUT_SECONDS = 10.0
SHUTDOWN_TIMEOUT_SECONDS = 10.0
# A client sends its headers in one write; ten seconds leave room for a slow network and none for a trickle.
HEADER_TIMEOUT_SECONDS = 10.0


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request headers are not complete in time."""

    header_timeout = HEADER_TIMEOUT_SECONDS

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:
            self._arm_header_timer()  # a request has begun (or not yet): its headers are still due
        else:
            self._disarm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


class PromptServer(uvicorn.Server):
    """uvicorn's server, stopping as soon as `stop` is called and the responses in flight are sent."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None

    def stop(self) -> None:
        """Ask the server to stop; safe from any thread."""
        self.should_exit = True
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None:
            loop.call_soon_threadsafe(stopping.set)

    async def main_loop(self) -> None:
        self._stopping = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        # uvicorn's tick (it refreshes the Date header) once a second, and at once when told to stop; the
        # flag is read after the loop is known, so a `stop` that came before is not missed.
        while not await self.on_tick(0):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), 1.0)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()  # an idle connection closes now, a busy one after its response
        deadline = time.monotonic() + SHUTDOWN_TIMEOUT_SECONDS
        while (self.server_state.connections or self.server_state.tasks) and time.monotonic() < deadline:
            await asyncio.sleep(0.002)
        for task in self.server_state.tasks:
            task.cancel()
        for server in self.servers:
            await server.wait_closed()


def is_loopback_host(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class RunningEmulator:
    url: str
    state: EmulatorState
    access_key_id: str
    access_key_secret: str = field(repr=False)
    security_token: str | None = field(default=None, repr=False)

    @property
    def endpoint(self) -> str:
        """``HOST:PORT``, the form the vendor's SDK takes as its endpoint."""
        return self.url.removeprefix("http://")


def _as_state(state: EmulatorState | Path) -> EmulatorState:
    return state if isinstance(state, EmulatorState) else EmulatorState.from_file(state)


def listening_socket(host: str, port: int, *, allow_remote: bool = False) -> socket.socket:
    """A TCP socket bound to (host, port) and already accepting into its backlog (loopback only unless
    `allow_remote`)."""
    if not allow_remote and not is_loopback_host(host):
        raise InputError(f"the emulator listens on loopback only (127.0.0.1, ::1, localhost), not {host!r}: it "
                         f"serves signature secrets to well-known credentials; --allow-remote listens there anyway")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # An explicit IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted sockets only when the protocol
    # says TCP, and without it Nagle's algorithm holds each response body back ~40 ms.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise InputError(f"emulator cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def socket_url(sock: socket.socket) -> str:
    """The http:// URL a listening socket is reached at."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _server(
    state: EmulatorState, access_key_id: str, access_key_secret: str, security_token: str | None,
    faults: FaultConfig | None, header_timeout: float,
) -> PromptServer:
    app = EmulatorApp(state, [AccessKey(access_key_id, access_key_secret, security_token)], faults=faults)
    protocol = type("HeaderTimeout", (HeaderTimeoutProtocol,), {"header_timeout": header_timeout})
    config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False,
                            server_header=False, date_header=False, http=protocol)
    return PromptServer(config)


@contextmanager
def running_emulator(
    state: EmulatorState | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    access_key_id: str = DEFAULT_ACCESS_KEY_ID,
    access_key_secret: str = DEFAULT_ACCESS_KEY_SECRET,
    security_token: str | None = None,
    faults: FaultConfig | None = None,
    allow_remote: bool = False,
    header_timeout: float = HEADER_TIMEOUT_SECONDS,
) -> Iterator[RunningEmulator]:
    """Serve the emulator from a background thread for the duration of the `with` block."""
    emulator_state = _as_state(state)
    sock = listening_socket(host, port, allow_remote=allow_remote)
    server = _server(emulator_state, access_key_id, access_key_secret, security_token, faults, header_timeout)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="reconciler-emulator",
                              daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the emulator's HTTP server did not start")
            time.sleep(0.005)
        yield RunningEmulator(socket_url(sock), emulator_state, access_key_id, access_key_secret, security_token)
    finally:
        server.stop()
        thread.join(SHUTDOWN_TIMEOUT_SECONDS)
        sock.close()


def serve_forever(
    state: EmulatorState | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    access_key_id: str = DEFAULT_ACCESS_KEY_ID,
    access_key_secret: str = DEFAULT_ACCESS_KEY_SECRET,
    security_token: str | None = None,
    faults: FaultConfig | None = None,
    on_listening: Callable[[str], None] | None = None,
    allow_remote: bool = False,
) -> EmulatorState:
    """Serve until SIGINT or SIGTERM, then stop cleanly and return the (possibly changed) state.

    Must run in the main thread (it installs the signal handlers, restored on return).
    `on_listening` is called with the URL once the server accepts requests. The server runs in a
    background thread and this thread only waits: uvicorn's own signal handling would re-raise the
    signal after shutdown and end the process before the caller could, say, save the state.
    """
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with running_emulator(state, host=host, port=port, access_key_id=access_key_id,
                              access_key_secret=access_key_secret, security_token=security_token,
                              faults=faults, allow_remote=allow_remote) as emulator:
            if on_listening is not None:
                on_listening(emulator.url)
            while not stop.wait(1.0):
                pass
        return emulator.state
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
