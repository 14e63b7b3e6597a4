"""Loopback stand-ins for the network around a run: any ASGI app served over HTTP or TLS, and a forward
proxy (CONNECT tunnels and absolute-form HTTP) that can route the vendor's host names to them.

Routing through the proxy is how the tests reach the vendor's fixed addresses (``sts.aliyuncs.com:443``,
the metadata service at ``100.100.100.200:80``) without any switch in the product: the vendor's
credential library honours ``HTTPS_PROXY`` / ``HTTP_PROXY``, and the proxy sends those names to loopback.
"""

from __future__ import annotations

import select
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from reconciler.emulator.server import PromptServer


@contextmanager
def serve(app: Any, *, certfile: Path | None = None, keyfile: Path | None = None) -> Iterator[int]:
    """Serve ``app`` on 127.0.0.1 (TLS when a certificate is given) for the ``with`` block; yields the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False,
                            ssl_certfile=str(certfile) if certfile else None,
                            ssl_keyfile=str(keyfile) if keyfile else None)
    server = PromptServer(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.005)
    try:
        yield sock.getsockname()[1]
    finally:
        server.stop()
        thread.join(10)
        sock.close()


@contextmanager
def serving(server: socketserver.TCPServer) -> Iterator[str]:
    """Run a standard-library server from a thread for the ``with`` block; yields ``http://127.0.0.1:PORT``.

    Its loop looks for the stop request every 10 ms (the standard library's default, 0.5 s, is what
    each test would otherwise wait at its end)."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def _pipe(a: socket.socket, b: socket.socket) -> None:
    sockets = [a, b]
    try:
        while True:
            readable, _, _ = select.select(sockets, [], [], 30)
            if not readable:
                return
            for source in readable:
                data = source.recv(65536)
                if not data:
                    return
                (b if source is a else a).sendall(data)
    except OSError:
        return
    finally:
        a.close()
        b.close()


@dataclass
class ForwardProxy:
    """A forward proxy on loopback; ``routes`` maps ``(host, port)`` to where it really connects."""

    routes: dict[tuple[str, int], tuple[str, int]] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)  # "CONNECT host:port" or "GET http://..." lines

    def __post_init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _target(self, host: str, port: int) -> socket.socket:
        return socket.create_connection(self.routes.get((host, port), (host, port)), timeout=10)

    def _handle(self, client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(65536)
            if not chunk:
                client.close()
                return
            head += chunk
        request_line, _, rest = head.partition(b"\r\n")
        method, target, version = request_line.decode("latin-1").split(" ", 2)
        self.seen.append(f"{method} {target.split('?')[0]}")
        try:
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                upstream = self._target(host, int(port))
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:  # absolute form: http://host[:port]/path
                authority, _, path = target.removeprefix("http://").partition("/")
                host, _, port = authority.partition(":")
                upstream = self._target(host, int(port or 80))
                # One request per connection: only the first request line is rewritten to the origin form, so
                # the server is asked to close after answering, and the client opens a new connection.
                headers, _, body = rest.partition(b"\r\n\r\n")
                kept = [line for line in headers.split(b"\r\n") if not line.lower().startswith(b"connection:")]
                upstream.sendall(f"{method} /{path} {version}\r\n".encode("latin-1")
                                 + b"\r\n".join([*kept, b"Connection: close"]) + b"\r\n\r\n" + body)
        except OSError:
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
            client.close()
            return
        _pipe(client, upstream)
