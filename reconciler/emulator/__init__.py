"""A local emulator of the API Gateway (CloudAPI 2016-07-14) endpoint for backend signatures.

`running_emulator` serves it from a background thread (tests, benchmarks, embedding);
`serve_forever` serves it in the foreground (the `reconciler emulator` command); `EmulatorApp`
is the ASGI application itself, usable in-process with `httpx.ASGITransport`. The state file format
is described in `reconciler.emulator.state`.
"""

from reconciler.emulator.app import EmulatorApp
from reconciler.emulator.faults import FaultConfig
from reconciler.emulator.server import RunningEmulator, running_emulator, serve_forever
from reconciler.emulator.state import EmulatorState
from reconciler.emulator.verify import AccessKey

__all__ = [
    "AccessKey",
    "EmulatorApp",
    "EmulatorState",
    "FaultConfig",
    "RunningEmulator",
    "running_emulator",
    "serve_forever",
]
