"""How a run talks to the API (`ConnectionOptions`) and how hard by default, shared by the command line,
`live` and the fetcher.

Kept apart from them so that the command line can show and take them without importing the fetcher
and its HTTP stack (start-up time of `validate` and `--version`; `plan` imports that stack while its
manifests are parsed).

Default concurrency, 16: enough to hide a 50 ms round trip behind ~300 requests a second, while
staying below the request rates at which the vendor's management API starts throttling one
account; `--concurrency` raises it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

DEFAULT_CONCURRENCY = 16
# The most `--concurrency` allows, checked once, by the option's type; the client's pool holds as many
# connections.
MAX_CONCURRENCY = 256


@dataclass(frozen=True)
class ConnectionOptions:
    endpoint: str | None = None
    emulator_states: tuple[Path, ...] = ()
    profile: str | None = None
    signature_version: Literal["v3", "v1"] = "v3"
    concurrency: int = DEFAULT_CONCURRENCY
    max_rps: float | None = None
    timeout: float = 10.0
    deadline: float = 300.0
