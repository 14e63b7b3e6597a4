"""What a snapshot's secret digest costs: an attacker per guess, and a drift job per save and per offline plan.

Usage (from the repository root)::

    .venv/bin/python -m benchmarks.secret_digest_cost

Prints, on this machine: one guess against the old format-1 digest (HMAC-SHA256 keyed by the signature id
beside it) and against the scrypt digest (one core); saving a snapshot of the benchmark's 500 signatures
(`plan --save-snapshot`, every core) and planning against it offline (`plan --snapshot`, one scrypt per
managed signature); and what the per-guess cost means for the smallest secrets the vendor accepts.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time

from benchmarks.workload import Size, in_memory
from reconciler.differ import diff
from reconciler.snapshot import (
    SCRYPT_N,
    SCRYPT_P,
    SCRYPT_R,
    Snapshot,
    check_secrets_ahead,
    secret_digest,
    snapshots_file_text,
)

# The vendor's rule: 6-30 characters, a letter first, then letters, digits and `_ @ # ! *`.
SMALLEST_SECRETS = 52 * 67**5
MASK_CANDIDATES = 1_000_000  # e.g. <name><Secret|Key|Pass><00-99|2020-2030> over a few hundred names
SECONDS_PER_YEAR = 365 * 24 * 3600


def per_call(function: object, calls: int) -> float:
    """CPU seconds a call, on one core (CPU time, not wall time: the machine may be shared)."""
    start = time.process_time()
    for index in range(calls):
        function(index)  # type: ignore[operator]
    return (time.process_time() - start) / calls


def timed(function: object) -> tuple[float, float]:
    """(wall seconds, CPU seconds of every thread) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    function()  # type: ignore[operator]
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    hmac_guess = per_call(lambda i: hmac.new(b"sig-0001", b"guess%d" % i, hashlib.sha256).digest(), 200_000)
    scrypt_guess = per_call(lambda i: secret_digest(f"guess{i}"), 20)

    desired, live = in_memory(Size(groups=1, apis=10, signatures=500))
    texts: list[str] = []
    save = timed(lambda: texts.append(snapshots_file_text([live])))
    loaded = Snapshot.model_validate(json.loads(texts[0])[0])
    candidates = {region.region: {s.name: s.secret.get_secret_value() for s in region.signatures.values()
                                  if s.secret is not None} for region in desired.regions.values()}

    def offline() -> None:
        check_secrets_ahead({loaded.region: loaded}, candidates)  # as `plan --snapshot` does
        diff(desired, {loaded.region: loaded})

    offline_plan = timed(offline)

    figures = {
        "cpus": os.cpu_count(),
        "scrypt": {"N": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P, "memory_mib": 128 * SCRYPT_N * SCRYPT_R // 2**20},
        "guess_format_1_hmac_cpu_us": round(hmac_guess * 1e6, 2),
        "guess_scrypt_cpu_ms": round(scrypt_guess * 1e3, 1),
        "slowdown": round(scrypt_guess / hmac_guess),
        "save_500_signatures_wall_s": round(save[0], 1),
        "save_500_signatures_cpu_s": round(save[1], 1),
        "offline_plan_500_signatures_wall_s": round(offline_plan[0], 1),
        "offline_plan_500_signatures_cpu_s": round(offline_plan[1], 1),
        "smallest_secrets": SMALLEST_SECRETS,
        "smallest_secrets_core_years": round(SMALLEST_SECRETS * scrypt_guess / SECONDS_PER_YEAR),
        "mask_of_1e6_core_hours": round(MASK_CANDIDATES * scrypt_guess / 3600, 1),
        "mask_of_1e6_format_1_seconds": round(MASK_CANDIDATES * hmac_guess, 1),
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
