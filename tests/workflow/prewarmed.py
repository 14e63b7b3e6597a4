"""A process with every module of reconciler already imported, forking a child for each run of the job's
`reconciler`: the workflow tests run it some 200 times, and importing it (pydantic, httpx, uvicorn, the
emulator) costs 0.4 s of CPU a run, most of what a run costs.

Each run is still a process of its own: the child gets the caller's arguments, environment, working folder
and its stdin, stdout and stderr (passed over a Unix socket), runs `python -m reconciler` as the module's
`__main__`, and sends back its exit code. The server itself runs nothing but `accept` and `fork`.

Usage: `python -m tests.workflow.prewarmed SOCKET` prints one line when it accepts runs; `run(SOCKET, argv)`
is the client's side (what the fake `reconciler` calls).
"""

from __future__ import annotations

import importlib
import io
import json
import os
import pkgutil
import random
import runpy
import signal
import socket
import struct
import sys
import traceback
from typing import Any

_LENGTH = struct.Struct("!I")
_CODE = struct.Struct("!i")


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
    # Children are waited for (so that their CPU time counts as this process's children's), as they end and
    # at the end: a SIGTERM stops the server once the runs in flight are over.
    signal.signal(signal.SIGCHLD, _reap)
    signal.signal(signal.SIGTERM, _stop)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    print("ready", flush=True)
    try:
        while True:
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


def run(path: str, args: list[str]) -> int:
    """Run `reconciler ARGS` in a child of the server at `path`, with this process's environment, folder and
    standard streams; its exit code."""
    payload = json.dumps({"args": args, "env": dict(os.environ), "cwd": os.getcwd()}).encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.connect(path)
        socket.send_fds(connection, [_LENGTH.pack(len(payload)) + payload], [0, 1, 2])
        answer = b""
        while len(answer) < _CODE.size:
            more = connection.recv(_CODE.size - len(answer))
            if not more:
                return 1  # the child ended without reporting (killed)
            answer += more
    code: int = _CODE.unpack(answer)[0]
    return code


if __name__ == "__main__":
    serve(sys.argv[1])
