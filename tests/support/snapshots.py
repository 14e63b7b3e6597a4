"""Snapshot files for tests that plan offline (`plan --snapshot`)."""

from __future__ import annotations

import json
from pathlib import Path

from reconciler.snapshot import Snapshot, snapshots_file_text


def write_snapshot(snapshot: Snapshot, path: Path, *, clear_secrets: bool = False) -> None:
    """One region's snapshot as a snapshot file holds it (secrets as digests, as `plan --save-snapshot`
    writes them), or with its secrets in clear (a file the product never writes, but reads)."""
    data = json.loads(snapshots_file_text([snapshot]))[0]
    if clear_secrets:
        for entry, signature in zip(data["signatures"], snapshot.signatures, strict=True):
            if signature.secret is not None:
                del entry["secret_scrypt"]
                entry["secret"] = signature.secret.get_secret_value()
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
