"""Fault injection: make the emulator slow or flaky on purpose, reproducibly.

A `FaultConfig` says what to inject; a `FaultInjector` (one per running emulator) draws, for every
request, a `FaultPlan` saying what to do to that request. Faults are decided before the request is
authenticated or applied, so a faulted write never changes the state (as with a real throttled or
failed call, the client may safely retry it with a fresh nonce).

With a `seed`, the n-th request always gets the same fault, whatever the run. Adding a fault kind
means: a field in `FaultConfig` (validated in `__post_init__`), a field in `FaultPlan`, a draw in
`FaultInjector.plan`, and the application acting on that plan field.

Decisions for the faults beyond errors and latency:

- Throttling, 503, a reset connection, a hang and a malformed answer exclude one another (one draw
  over their summed rates, so configurations of throttling and errors alone draw exactly as before).
- A reset or a hang happens before the request is read, so nothing is carried out. A malformed
  answer garbles the response of a request that *was* carried out, as a broken proxy would: a write
  then has an outcome the client cannot know.
- A latency spike is independent of the rest: a delay drawn up to `spike_ms`, on top of `latency_ms`.
- State changing between pages: just before a page 2 or later of DescribeSignatures or
  DescribeApiSignatures is served, what it lists changes: either one item is added (a signature at
  the end of the region's list, a binding inside the (group, stage)), which moves `TotalCount`, or
  one item early in the list is removed and one is added later (a swap), which keeps `TotalCount`
  and shifts the pages, so only a second read can reveal it. Only unbound signatures are removed.
"""

from __future__ import annotations

import copy
import json
import math
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.emulator.apierror import VendorErrorAnswer
from reconciler.emulator.state import EmulatorState
from reconciler.errors import InputError
from reconciler.vendor_rules import STAGES

# Throttled answers carry `x-acs-retry-after` (milliseconds) on about this share of them.
RETRY_AFTER_SHARE = 0.5
RETRY_AFTER_MS = (20, 200)
MALFORMED_KINDS = ("truncated", "not-json", "wrong-content-type", "missing-field")
JSON_CONTENT_TYPE = "application/json;charset=utf-8"
# What a proxy in front of the endpoint answers when its upstream is broken.
PROXY_ERROR_PAGE = b"<html><head><title>502 Bad Gateway</title></head><body>502 Bad Gateway</body></html>"


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
    reset_rate: float = 0.0
    """Share of connections dropped (TCP reset) without an answer."""
    hang_rate: float = 0.0
    """Share of requests never answered, until the client goes away."""
    malformed_rate: float = 0.0
    """Share of answers garbled: cut short, an HTML page, JSON under another Content-Type, a field left out."""
    malformed_kinds: tuple[str, ...] = MALFORMED_KINDS
    """Which of MALFORMED_KINDS a garbled answer may be."""
    spike_rate: float = 0.0
    """Share of requests delayed by up to `spike_ms` more."""
    spike_ms: float = 1000.0
    mutate_rate: float = 0.0
    """Share of requests for page 2 or later of a listing before which the listed state grows by one item."""

    def __post_init__(self) -> None:
        if self.latency_ms < 0:
            raise InputError(f"fault latency must be 0 ms or more, not {self.latency_ms}")
        unknown = sorted(set(self.malformed_kinds) - set(MALFORMED_KINDS)) or ([] if self.malformed_kinds else ["none"])
        if unknown:
            raise InputError(f"fault malformed kinds must be among {', '.join(MALFORMED_KINDS)}, not {unknown[0]}")
        if self.spike_ms < 0:
            raise InputError(f"fault spike must be 0 ms or more, not {self.spike_ms}")
        rates = (("throttle rate", self.throttle_rate), ("error rate", self.error_rate),
                 ("reset rate", self.reset_rate), ("hang rate", self.hang_rate),
                 ("malformed rate", self.malformed_rate), ("spike rate", self.spike_rate),
                 ("mutate rate", self.mutate_rate))
        for name, rate in rates:
            if not 0.0 <= rate <= 1.0:
                raise InputError(f"fault {name} must be between 0 and 1, not {rate}")
        if self.throttle_rate + self.error_rate > 1.0:
            raise InputError("fault throttle rate and error rate together must not exceed 1")
        if self.exclusive_rate > 1.0:
            raise InputError("fault throttle, error, reset, hang and malformed rates together must not exceed 1")
        if self.qps_limit is not None and self.qps_limit <= 0:
            raise InputError(f"QPS limit must be more than 0, not {self.qps_limit}")

    @property
    def exclusive_rate(self) -> float:
        """The summed rates of the faults that exclude one another."""
        return self.throttle_rate + self.error_rate + self.reset_rate + self.hang_rate + self.malformed_rate


@dataclass(frozen=True)
class FaultPlan:
    delay_seconds: float = 0.0
    error: VendorErrorAnswer | None = None
    reset: bool = False
    hang: bool = False
    malformed: str | None = None
    """One of MALFORMED_KINDS."""
    pick: float = 0.0
    """In [0, 1): where a truncated body is cut, which field a missing-field answer leaves out."""
    mutate: bool = False
    swap: bool = False
    """With `mutate`: remove one item and add one, instead of adding one."""


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
        if config.exclusive_rate == 0.0 and config.spike_rate == 0.0 and config.mutate_rate == 0.0:
            return FaultPlan(delay_seconds=delay) if delay else NO_FAULT
        with self._lock:
            error = None
            reset = hang = mutate = swap = False
            malformed: str | None = None
            pick = 0.0
            if config.exclusive_rate > 0.0:
                draw = self._random.random()
                if draw < config.throttle_rate:
                    headers = {}
                    if self._random.random() < RETRY_AFTER_SHARE:
                        headers["x-acs-retry-after"] = str(self._random.randint(*RETRY_AFTER_MS))
                    error = VendorErrorAnswer(400, "Throttling.User", "Request was denied due to user flow control.",
                                     headers)
                elif (draw := draw - config.throttle_rate) < config.error_rate:
                    error = VendorErrorAnswer(503, "ServiceUnavailable",
                                     "The request has failed due to a temporary failure of the server.")
                elif (draw := draw - config.error_rate) < config.reset_rate:
                    reset = True
                elif (draw := draw - config.reset_rate) < config.hang_rate:
                    hang = True
                elif draw - config.hang_rate < config.malformed_rate:
                    malformed = self._random.choice(config.malformed_kinds)
                    pick = self._random.random()
            if config.spike_rate > 0.0 and self._random.random() < config.spike_rate:
                delay += self._random.uniform(0.0, config.spike_ms) / 1000.0
            if config.mutate_rate > 0.0:
                mutate = self._random.random() < config.mutate_rate
                swap = mutate and self._random.random() < 0.5
        return FaultPlan(delay_seconds=delay, error=error, reset=reset, hang=hang, malformed=malformed, pick=pick,
                         mutate=mutate, swap=swap)


def garbled_body(kind: str, pick: float, payload: Mapping[str, Any]) -> tuple[bytes, str]:
    """The body and Content-Type of a malformed answer of `kind` in place of `payload`."""
    data = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    if kind == "truncated":
        return data[: int(pick * len(data))], JSON_CONTENT_TYPE
    if kind == "not-json":
        return PROXY_ERROR_PAGE, "text/html"
    if kind == "wrong-content-type":
        return data, "text/plain;charset=utf-8"
    return json.dumps(_without_one_field(payload, pick), separators=(",", ":")).encode("utf-8"), JSON_CONTENT_TYPE


def _without_one_field(payload: Mapping[str, Any], pick: float) -> dict[str, Any]:
    """A copy of `payload` with one key, at any depth, left out; `pick` chooses which."""
    result = copy.deepcopy(dict(payload))
    places: list[dict[str, Any]] = []
    keys: list[str] = []
    pending: list[Any] = [result]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                places.append(value)
                keys.append(key)
                pending.append(item)
        elif isinstance(value, list):
            pending.extend(value)
    if keys:
        chosen = int(pick * len(keys))
        del places[chosen][keys[chosen]]
    return result


def change_between_pages(state: EmulatorState, action: str, params: Mapping[str, str], *, swap: bool) -> None:
    """Before page 2 or later of a listing is served, change what it lists (see the module notes)."""
    page = params.get("PageNumber", "1")
    if not page.isdigit() or int(page) < 2:
        return
    if action == "DescribeSignatures":
        if swap:
            signatures, _ = state.describe_signatures([], [], 1, 1 << 30)
            for signature in signatures:
                try:
                    state.delete_signature(signature.id)
                except VendorErrorAnswer:
                    continue  # still bound
                break
        number = state.signature_count()
        while state.signature_by_name(f"churn_{number}") is not None:
            number += 1
        state.create_signature(f"churn_{number}", f"churnKey{number}", f"churnSecret{number}")
    elif action == "DescribeApiSignatures":
        group, stage = params.get("GroupId", ""), params.get("StageName", "")
        signatures, _ = state.describe_signatures([], [], 1, 1)
        if stage not in STAGES or not signatures:
            return
        try:
            apis, _ = state.describe_apis(group, None, None, 1, 1 << 30)
            bound, _ = state.describe_api_signatures(group, stage, [], 1, 1 << 30)
        except VendorErrorAnswer:
            return  # an unknown group: the operation itself answers NotFoundApiGroup
        bound_ids = {b.api.id for b in bound}
        unbound = next((a for a in reversed(apis) if a.id not in bound_ids), None) if swap else \
            next((a for a in apis if a.id not in bound_ids), None)
        if unbound is None:
            return
        if swap and bound:
            state.remove_signature_apis(group, bound[0].signature.id, stage, [bound[0].api.id])
        state.set_signature_apis(group, signatures[0].id, stage, [unbound.id])


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
        raise VendorErrorAnswer(400, "Throttling.User", "Request was denied due to user flow control.",
                       {"x-acs-retry-after": str(retry_after_ms)})
