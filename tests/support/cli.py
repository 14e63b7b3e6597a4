"""What a run of the command line gives back, and the retry settings that keep a test's retries quick."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class CliResult:
    code: int
    out: str
    err: str


# The client's documented retry settings (see reconciler.aliyun.client.RetryTiming), shortened: the same
# retry decisions, waits about 20 times shorter; the pacing floor is raised because the emulator's injected
# throttling is random, not a rate limit, and at 30 % it would pace a run down to one request a second.
QUICK_RETRIES = {"RECONCILER_RETRY_BASE_DELAY": "0.01", "RECONCILER_RETRY_MAX_DELAY": "0.5",
                 "RECONCILER_MIN_RPS": "200"}
