"""`python -m reconciler` without its start-up: a server that has imported every module of reconciler once
forks a child for each run. Importing reconciler (pydantic, httpx, uvicorn, the emulator) costs 0.4 s of
CPU, most of what a run costs; the workflow tests and the tests that need a process of its own (its own
logging, a read that may block, a user's command line) run it hundreds of times.

Each run is still a process of its own: the child gets the caller's arguments, environment, working folder
and standard streams (passed over a Unix socket), runs reconciler's `__main__` as `python -m` does, and
reports its pid, then its exit code. The server itself does nothing but `accept` and `fork`.

`python -m tests.support.prewarmed SOCKET` serves (one line on stdout once it accepts runs); `Prewarmed`
starts one for a `with` block; `run` is the side of a process that hands its own streams over (the
workflow's fake `reconciler`), `Prewarmed.run` the side of a test that captures the output.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import io
import json
import os
import pkgutil
import random
import runpy
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.support.paths import ROOT

_LENGTH = struct.Struct("!I")
_CODE = struct.Struct("!i")
_PID = struct.Struct("!i")


def _receive(connection: socket.socket) -> tuple[dict[str, Any], list[int]]:
    data, fds, _, _ = socket.recv_fds(connection, 65536, 3)
    while len(data) < _LENGTH.size or len(data) < _LENGTH.size + _LENGTH.unpack_from(data)[0]:
        more = connection.recv(65536)
        if not more:
            raise EOFError("the caller went away")
        data += more
    request: dict[str, Any] = json.loads(data[_LENGTH.size:])
    return request, fds


def _child(connection: socket.socket) -> None:
    """In the forked child: become the caller's `reconciler` process, run it, report its exit code."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the server's handler reaps the server's children
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    request, fds = _receive(connection)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    random.seed()
    # New streams on the new descriptors, buffered as the interpreter buffers them at its start.
    sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stdout = io.TextIOWrapper(open(1, "wb", closefd=False), encoding="utf-8",  # noqa: SIM115
                                  line_buffering=os.isatty(1))
    sys.stderr = io.TextIOWrapper(open(2, "wb", closefd=False), encoding="utf-8",  # noqa: SIM115
                                  errors="backslashreplace", line_buffering=True)
    sys.argv = ["reconciler", *request["args"]]
    connection.sendall(_PID.pack(os.getpid()))
    code: int = 0
    try:
        runpy.run_module("reconciler", run_name="__main__", alter_sys=True)
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        if stop.code is not None and not isinstance(stop.code, int):
            print(stop.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()  # as the interpreter would, ending with exit code 1
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        connection.sendall(_CODE.pack(code))
        os._exit(code)


def serve(path: str) -> None:
    for module in pkgutil.walk_packages(importlib.import_module("reconciler").__path__, "reconciler."):
        if module.name != "reconciler.__main__":  # that one runs the command
            importlib.import_module(module.name)
    # The imported modules' objects are left out of the children's garbage collections, as they would be
    # absent from a fresh process that does not import them (and collecting them would copy their pages).
    gc.freeze()
    # Children are waited for (so that their CPU time counts as this process's children's), as they end and
    # at the end: the end of stdin or a SIGTERM stops the server once the runs in flight are over.
    signal.signal(signal.SIGCHLD, _reap)
    signal.signal(signal.SIGTERM, _stop)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    print("ready", flush=True)
    try:
        while True:
            # stdin is a pipe from the test process: at its end (that process is gone, however it ended), stop.
            ready, _, _ = select.select([listener, sys.stdin], [], [])
            if sys.stdin in ready and not os.read(sys.stdin.fileno(), 1):
                raise _Stopped
            if listener not in ready:
                continue
            connection, _ = listener.accept()
            if os.fork() == 0:
                try:
                    listener.close()
                    _child(connection)
                finally:
                    os._exit(1)  # whatever happened, the child never returns to serving
            connection.close()
    except _Stopped:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        while True:
            try:
                os.wait()
            except ChildProcessError:
                return


class _Stopped(Exception):
    pass


def _stop(signum: int, frame: object) -> None:
    raise _Stopped


def _reap(signum: int, frame: object) -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


def _call(path: str, args: Sequence[str], env: Mapping[str, str], cwd: str, fds: Sequence[int],
          timeout: float | None) -> int:
    payload = json.dumps({"args": list(args), "env": dict(env), "cwd": cwd}).encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.connect(path)
        socket.send_fds(connection, [_LENGTH.pack(len(payload)) + payload], list(fds))
        connection.settimeout(timeout)
        answer = b""
        try:
            while len(answer) < _PID.size + _CODE.size:
                more = connection.recv(_PID.size + _CODE.size - len(answer))
                if not more:
                    return -signal.SIGKILL  # the child ended without reporting: killed
                answer += more
        except TimeoutError:
            if len(answer) >= _PID.size:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(_PID.unpack_from(answer)[0], signal.SIGKILL)
            raise subprocess.TimeoutExpired(["reconciler", *args], timeout or 0) from None
    code: int = _CODE.unpack_from(answer, _PID.size)[0]
    return code


def run(path: str, args: list[str]) -> int:
    """Run `reconciler ARGS` in a child of the server at `path`, with this process's environment, folder and
    standard streams; its exit code."""
    return _call(path, args, os.environ, os.getcwd(), [0, 1, 2], None)


class Prewarmed:
    """The server, started for a `with` block."""

    def __init__(self, folder: Path) -> None:
        self.path = str(folder / "socket")
        self._server: subprocess.Popen[str] | None = None

    def __enter__(self) -> Prewarmed:
        self._server = subprocess.Popen([sys.executable, "-m", "tests.support.prewarmed", self.path],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert self._server.stdout is not None
        if self._server.stdout.readline() != "ready\n":
            self.__exit__()
            raise RuntimeError("the prewarmed reconciler server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._server.stdin is not None
        self._server.stdin.close()  # the server stops once the runs in flight are over
        try:
            self._server.wait(60)
        except subprocess.TimeoutExpired:
            self._server.kill()
            self._server.wait()

    def run(self, args: Sequence[str], *, env: Mapping[str, str], cwd: Path, timeout: float = 60,
            errors: str = "strict") -> subprocess.CompletedProcess[str]:
        """`reconciler ARGS` as `subprocess.run([python, "-m", "reconciler", *ARGS], capture_output=True,
        text=True)` would run it, with stdin from /dev/null; TimeoutExpired (the child killed) after `timeout`."""
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, open(os.devnull, "rb") as stdin:
            code = _call(self.path, args, env, str(cwd), [stdin.fileno(), out.fileno(), err.fileno()], timeout)
            out.seek(0)
            err.seek(0)
            stdout = out.read().decode("utf-8", errors)
            stderr = err.read().decode("utf-8", errors)
        return subprocess.CompletedProcess(["reconciler", *args], code, stdout, stderr)


if __name__ == "__main__":
    serve(sys.argv[1])
