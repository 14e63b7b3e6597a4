"""Snapshot files for tests that plan offline (`plan --snapshot`)."""

from __future__ import annotations

import functools
import json
from pathlib import Path

from reconciler.snapshot import Snapshot, snapshots_file_text


def write_snapshot(snapshot: Snapshot, path: Path, *, clear_secrets: bool = False) -> None:
    """One region's snapshot as a snapshot file holds it (secrets as digests, as `plan --save-snapshot`
    writes them), or with its secrets in clear (a file the product never writes, but reads)."""
    path.write_text(_snapshot_file_text(snapshot, clear_secrets))


@functools.cache
def _snapshot_file_text(snapshot: Snapshot, clear_secrets: bool) -> str:
    """Made once per snapshot in a test process: each digest is a deliberately slow scrypt, and the tests that
    write the same live state again only need a valid file of it (a salt shared between their files is no
    matter; the test of fresh salts saves its snapshot through the product)."""
    data = json.loads(snapshots_file_text([snapshot]))[0]
    if clear_secrets:
        for entry, signature in zip(data["signatures"], snapshot.signatures, strict=True):
            if signature.secret is not None:
                del entry["secret_scrypt"]
                entry["secret"] = signature.secret.get_secret_value()
    return json.dumps(data, indent=2, sort_keys=True) + "\n"
