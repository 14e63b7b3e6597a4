"""The emulator in its own process for the benchmark, with a request counter and its own CPU time.

Run as ``python -m benchmarks.emulator_process STATE --latency-ms N [--qps-limit N]``; the first line
on stdout is ``Emulator listening on URL``. ``GET /__bench_stats`` (not counted, not signed) answers
the counters so far: requests, throttled answers, the span from the first request's arrival to the
last answer, and the CPU seconds this process used. A separate process keeps the emulator's CPU off
the client's core (the machine has two), so what the client measures is the client.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import uvicorn

from reconciler.emulator.app import AsgiScope, EmulatorApp, Message, Receive, Send
from reconciler.emulator.faults import FaultConfig
from reconciler.emulator.server import DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, listening_socket, socket_url
from reconciler.emulator.state import EmulatorState
from reconciler.emulator.verify import AccessKey

STATS_PATH = "/__bench_stats"


class CountingApp:
    def __init__(self, app: EmulatorApp) -> None:
        self._app = app
        self.requests = 0
        self.throttled = 0
        self.first: float | None = None
        self.last = 0.0

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == STATS_PATH:
            await self._send_stats(send)
            return
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        if self.first is None:
            self.first = time.perf_counter()
        self.requests += 1

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 400:
                self.throttled += 1  # the benchmark injects no other 400
            await send(message)

        await self._app(scope, receive, watch)
        self.last = time.perf_counter()

    async def _send_stats(self, send: Send) -> None:
        span = self.last - self.first if self.first is not None else 0.0
        body = json.dumps({"requests": self.requests, "throttled": self.throttled, "span_seconds": span,
                           "cpu_seconds": time.process_time()}).encode()
        self.first = None
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("state", type=Path)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--qps-limit", type=float, default=None)
    args = parser.parse_args()
    faults = FaultConfig(latency_ms=args.latency_ms, qps_limit=args.qps_limit)
    app = EmulatorApp(EmulatorState.from_file(args.state),
                      [AccessKey(DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET)], faults=faults)
    sock = listening_socket("127.0.0.1", 0)  # already accepting into its backlog
    config = uvicorn.Config(CountingApp(app), lifespan="off", log_level="warning", access_log=False,
                            server_header=False, date_header=False)
    print(f"Emulator listening on {socket_url(sock)}", flush=True)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
