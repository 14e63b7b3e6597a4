"""The live state of one region, as read from the API (or from a snapshot file).

A Snapshot is what the fetcher produces and what the differ compares the
manifests against. It also records which (group, stage) pairs were read, so
that the differ never mistakes "not read" for "nothing bound".

Secrets: in memory a live secret is a `SecretStr`, so an accidental repr or
log line shows `**********`. A snapshot written to a file carries no clear
secret: each secret is replaced by a scrypt digest (`secret_scrypt`), which is
enough to tell whether a manifest's secret matches and costs an attacker who
holds the file as much per guess as it costs us per check.

Design note, the digest: a drift job saves the live state and renders the same
plan from it a moment later, so an offline plan must still compare secrets
(otherwise the issue it opens would lack the secret updates its JSON plan has).
Three ways were weighed: a key kept outside the file (one more secret for every
job to configure, and a snapshot useless without it), no digest (offline plans
could not compare secrets), and a memory-hard KDF. The KDF is used: scrypt with
N=2^15, r=8, p=1 (32 MiB a guess), a random 16-byte salt per digest, so a guess
tested against one digest says nothing about another, and no table can be built
ahead. Its cost per guess, measured, is in the README ("Secrets at rest").
Snapshots of format 1 held an HMAC keyed by the signature id beside it, one
cheap HMAC per guess: they are refused, never read.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import os
import re
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic.dataclasses import dataclass as pydantic_dataclass

from reconciler.errors import InputError
from reconciler.inputfile import read_input_text
from reconciler.vendor_rules import Stage

SNAPSHOT_FORMAT_VERSION = "2"
# Large enough for 2,000,000 bindings (about 250 bytes each as indented JSON).
SNAPSHOT_MAX_BYTES = 1024 * 1024 * 1024

# scrypt's cost: N (CPU and memory), r (block size), p (parallel lanes); 128 * N * r bytes = 32 MiB.
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
_SCRYPT_MAXMEM = 2 * 128 * SCRYPT_N * SCRYPT_R
_SCRYPT_PREFIX = f"scrypt:{SCRYPT_N}:{SCRYPT_R}:{SCRYPT_P}:"
SECRET_DIGEST = re.compile(re.escape(_SCRYPT_PREFIX) + r"[0-9a-f]{32}:[0-9a-f]{64}")


def _scrypt(secret: str, salt: bytes) -> bytes:
    return hashlib.scrypt(secret.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P,
                          maxmem=_SCRYPT_MAXMEM, dklen=32)


def secret_digest(secret: str, *, salt: bytes | None = None) -> str:
    """`scrypt:N:r:p:SALT:DIGEST` of a secret, under a fresh random salt unless one is given."""
    salt = os.urandom(16) if salt is None else salt
    return f"{_SCRYPT_PREFIX}{salt.hex()}:{_scrypt(secret, salt).hex()}"


@functools.lru_cache(maxsize=65536)
def secret_digest_matches(digest: str, candidate: str) -> bool:
    """Whether `candidate` is the secret `digest` was made from (one scrypt; constant-time compare).
    Remembered for the run, so that `check_secrets_ahead` can do the work on every CPU beforehand."""
    if not SECRET_DIGEST.fullmatch(digest):
        return False
    salt_hex, expected = digest.removeprefix(_SCRYPT_PREFIX).split(":")
    return hmac.compare_digest(_scrypt(candidate, bytes.fromhex(salt_hex)).hex(), expected)


def check_secrets_ahead(snapshots: Mapping[str, Snapshot], candidates: Mapping[str, Mapping[str, str]]) -> None:
    """Check each candidate secret (region -> signature name -> secret) against its digest on every CPU,
    so that the differ's checks, one at a time, find the answer known."""
    pairs = [(sig.secret_scrypt, candidate)
             for region, snapshot in snapshots.items() for sig in snapshot.signatures
             if sig.secret_scrypt is not None
             and (candidate := candidates.get(region, {}).get(sig.name)) is not None]
    if len(pairs) > 1:
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            list(pool.map(lambda pair: secret_digest_matches(*pair), pairs))


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LiveSignature(_Frozen):
    id: str
    name: str
    key: str
    # Exactly one of `secret` (clear, from the API) and `secret_scrypt` (from a file) is set.
    secret: SecretStr | None = None
    secret_scrypt: str | None = Field(default=None, pattern=SECRET_DIGEST.pattern)
    created: str | None = None
    modified: str | None = None
    # Every binding of this signature in the region, any group and stage (DescribeApisBySignature); read
    # only for a signature the plan may delete (prune: true), None when not read.
    bindings_in_region: tuple[LiveBinding, ...] | None = None

    def secret_matches(self, candidate: str) -> bool:
        if self.secret is not None:
            return hmac.compare_digest(self.secret.get_secret_value(), candidate)
        if self.secret_scrypt is not None:
            return secret_digest_matches(self.secret_scrypt, candidate)
        return False


@pydantic_dataclass(frozen=True, slots=True, config=ConfigDict(extra="forbid"))
class LiveBinding:
    """A slotted pydantic dataclass, not a BaseModel: a tenant may have 200,000 of these, and this
    takes a fraction of a model instance's memory (figures: "Profile notes" in benchmarks/README.md)."""

    group: str
    stage: Stage
    api_id: str
    api_name: str
    signature_id: str
    signature_name: str
    bound_time: str | None = None


@pydantic_dataclass(frozen=True, slots=True, config=ConfigDict(extra="forbid"))
class LiveApi:
    """A slotted dataclass like LiveBinding: a group listing brings 100 of these per group."""

    id: str
    name: str
    deployed: tuple[Stage, ...] = ()  # stages the API is published in (DescribeApis' DeployedInfos)


class LiveGroup(_Frozen):
    """A group whose APIs were listed (used to resolve API names given in manifests)."""

    id: str
    name: str | None = None
    apis: tuple[LiveApi, ...] = ()


class BindingScope(_Frozen):
    """One (group, stage) whose bindings were read completely."""

    group: str
    stage: Stage


class Snapshot(_Frozen):
    format_version: str = SNAPSHOT_FORMAT_VERSION
    region: str
    endpoint: str | None = None
    fetched_at: str | None = None
    signatures: tuple[LiveSignature, ...] = ()
    groups: tuple[LiveGroup, ...] = ()
    scopes: tuple[BindingScope, ...] = Field(
        default=(), description="(group, stage) pairs whose bindings were read; absent = not read"
    )
    bindings: tuple[LiveBinding, ...] = ()

    def scope_was_read(self, group: str, stage: str) -> bool:
        return any(s.group == group and s.stage == stage for s in self.scopes)



def _file_dicts(snapshots: Iterable[Snapshot]) -> list[dict[str, Any]]:
    """Each snapshot as a file holds it, secrets as `secret_digest`. The digests (one scrypt each) are
    computed on every CPU: hashlib releases the GIL while scrypt runs."""
    snapshots = list(snapshots)
    to_digest = [sig.secret.get_secret_value() for snap in snapshots for sig in snap.signatures
                 if sig.secret is not None]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        digests = iter(list(pool.map(secret_digest, to_digest)))
    out = []
    for snap in snapshots:
        data = snap.model_dump(mode="json", exclude={"signatures"})
        data["format_version"] = SNAPSHOT_FORMAT_VERSION
        signatures = []
        for sig in snap.signatures:
            entry = sig.model_dump(mode="json", exclude={"secret", "secret_scrypt"}, exclude_none=True)
            if sig.secret is not None:
                entry["secret_scrypt"] = next(digests)
            elif sig.secret_scrypt is not None:
                entry["secret_scrypt"] = sig.secret_scrypt
            signatures.append(entry)
        data["signatures"] = signatures
        for group in data["groups"]:  # read only under a signature policy: a file without it is what it was
            for api in group["apis"]:
                if not api["deployed"]:
                    del api["deployed"]
        out.append(data)
    return out


def snapshots_file_text(snapshots: Iterable[Snapshot]) -> str:
    """What `plan --save-snapshot` writes: a JSON list of snapshots, one per region, secrets as digests."""
    return json.dumps(_file_dicts(snapshots), indent=2) + "\n"


class SnapshotSet(_Frozen):
    """Snapshots of several regions; a snapshot file holds one region or a list of them."""

    snapshots: tuple[Snapshot, ...]


def load_snapshot_file(path: Path) -> SnapshotSet:
    """Read a snapshot JSON file: one snapshot object, or a list of them (one per region)."""
    text = read_input_text(path, limit=SNAPSHOT_MAX_BYTES, what="snapshot")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}: snapshot is not valid JSON: {exc.msg}") from None
    items = raw if isinstance(raw, list) else [raw]
    snapshots = []
    for index, item in enumerate(items):
        version = item.get("format_version") if isinstance(item, dict) else None
        if version == "1":
            raise InputError(f"{path}: snapshot format '1' is not read by this version (format 1 held secret "
                             f"digests that are cheap to test offline): delete it and save a new one with "
                             f"`reconciler plan --save-snapshot`")
        if version != SNAPSHOT_FORMAT_VERSION:
            raise InputError(f"{path}: not a snapshot of format {SNAPSHOT_FORMAT_VERSION} (no such "
                             f"'format_version'); save one with `reconciler plan --save-snapshot`")
        try:
            snapshots.append(Snapshot.model_validate(item))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            prefix = f"[{index}]." if isinstance(raw, list) else ""
            raise InputError(f"{path}: snapshot field '{prefix}{where}': {err['msg']}") from None
    return SnapshotSet(snapshots=tuple(snapshots))
