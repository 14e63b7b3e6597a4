"""Fault injection: make the emulator slow or flaky on purpose, reproducibly.

A `FaultConfig` says what to inject; a `FaultInjector` (one per running emulator) draws, for every
request, a `FaultPlan` saying what to do to that request. Faults are decided before the request is
authenticated or applied, so a faulted write never changes the state (as with a real throttled or
failed call, the client may safely retry it with a fresh nonce).

With a `seed`, the n-th request always gets the same fault, whatever the run. Adding a fault kind
means: a field in `FaultConfig` (validated in `__post_init__`), a field in `FaultPlan`, a draw in
`FaultInjector.plan`, and the application acting on that plan field.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from reconciler.emulator.apierror import ApiError
from reconciler.errors import InputError

# Throttled answers carry `x-acs-retry-after` (milliseconds) on about this share of them.
RETRY_AFTER_SHARE = 0.5
RETRY_AFTER_MS = (20, 200)


@dataclass(frozen=True)
class FaultConfig:
    latency_ms: float = 0.0
    """Added to every request before it is answered."""
    throttle_rate: float = 0.0
    """Share of requests answered HTTP 400 `Throttling.User`."""
    error_rate: float = 0.0
    """Share of requests answered HTTP 503 `ServiceUnavailable`."""
    seed: int | None = None
    """Seed of the random draws; None = different on every run."""
    qps_limit: float | None = None
    """Requests per second each access key may send (a token bucket); beyond it HTTP 400 `Throttling.User`."""

    def __post_init__(self) -> None:
        if self.latency_ms < 0:
            raise InputError(f"fault latency must be 0 ms or more, not {self.latency_ms}")
        for name, rate in (("throttle rate", self.throttle_rate), ("error rate", self.error_rate)):
            if not 0.0 <= rate <= 1.0:
                raise InputError(f"fault {name} must be between 0 and 1, not {rate}")
        if self.throttle_rate + self.error_rate > 1.0:
            raise InputError("fault throttle rate and error rate together must not exceed 1")
        if self.qps_limit is not None and self.qps_limit <= 0:
            raise InputError(f"QPS limit must be more than 0, not {self.qps_limit}")


@dataclass(frozen=True)
class FaultPlan:
    delay_seconds: float = 0.0
    error: ApiError | None = None


NO_FAULT = FaultPlan()


class FaultInjector:
    def __init__(self, config: FaultConfig) -> None:
        self.config = config
        self._random = random.Random(config.seed)
        # Requests are planned from the server's event loop, but a lock keeps the draw sequence
        # intact should a plan ever be asked for from several threads.
        self._lock = threading.Lock()

    def plan(self) -> FaultPlan:
        config = self.config
        delay = config.latency_ms / 1000.0
        if config.throttle_rate == 0.0 and config.error_rate == 0.0:
            return FaultPlan(delay_seconds=delay) if delay else NO_FAULT
        with self._lock:
            draw = self._random.random()
            error = None
            if draw < config.throttle_rate:
                headers = {}
                if self._random.random() < RETRY_AFTER_SHARE:
                    headers["x-acs-retry-after"] = str(self._random.randint(*RETRY_AFTER_MS))
                error = ApiError(400, "Throttling.User", "Request was denied due to user flow control.",
                                 headers)
            elif draw < config.throttle_rate + config.error_rate:
                error = ApiError(503, "ServiceUnavailable",
                                 "The request has failed due to a temporary failure of the server.")
        return FaultPlan(delay_seconds=delay, error=error)


class QpsLimiter:
    """One token bucket per access key: `limit` tokens a second, holding at most one second's worth.

    Decision: a refused request costs no token and its answer carries `x-acs-retry-after`, the
    milliseconds until the next token, so a client that honours it need not guess how long to back off.
    """

    def __init__(self, limit: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = limit
        self._capacity = max(1.0, limit)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # access key id -> (tokens, at)
        self._lock = threading.Lock()

    def admit(self, access_key_id: str) -> None:
        """Take a token for this key, or raise the vendor's throttling error."""
        with self._lock:
            now = self._clock()
            tokens, at = self._buckets.get(access_key_id, (self._capacity, now))
            tokens = min(self._capacity, tokens + (now - at) * self._limit)
            if tokens >= 1.0:
                self._buckets[access_key_id] = (tokens - 1.0, now)
                return
            self._buckets[access_key_id] = (tokens, now)
        retry_after_ms = math.ceil((1.0 - tokens) / self._limit * 1000)
        raise ApiError(400, "Throttling.User", "Request was denied due to user flow control.",
                       {"x-acs-retry-after": str(retry_after_ms)})
