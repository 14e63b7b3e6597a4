"""The live state of one region, as read from the API (or from a snapshot file).

A Snapshot is what the fetcher produces and what the differ compares the
manifests against. It also records which (group, stage) pairs were read, so
that the differ never mistakes "not read" for "nothing bound".

Secrets: in memory a live secret is a `SecretStr`, so an accidental repr or
log line shows `**********`. A snapshot written to a file carries no clear
secret unless asked: each secret is replaced by a salted SHA-256 digest
(`secret_sha256`), which is enough to tell whether a manifest's secret matches.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic.dataclasses import dataclass as pydantic_dataclass

from reconciler.errors import InputError
from reconciler.output import write_atomically

Stage = Literal["RELEASE", "TEST", "PRE"]
STAGES: tuple[Stage, ...] = ("RELEASE", "TEST", "PRE")

SNAPSHOT_FORMAT_VERSION = "1"


def secret_digest(signature_id: str, secret: str) -> str:
    """A digest of a secret salted with its signature id (so equal secrets of two keys differ)."""
    mac = hmac.new(signature_id.encode(), secret.encode(), hashlib.sha256)
    return "sha256:" + mac.hexdigest()


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LiveSignature(_Frozen):
    id: str
    name: str
    key: str
    # Exactly one of `secret` (clear, from the API) and `secret_sha256` (from a file) is set.
    secret: SecretStr | None = None
    secret_sha256: str | None = None
    created: str | None = None
    modified: str | None = None
    # Every binding of this signature in the region, any group and stage (DescribeApisBySignature); read
    # only for a signature the plan may delete (prune: true), None when not read.
    bindings_in_region: tuple[LiveBinding, ...] | None = None

    def secret_matches(self, candidate: str) -> bool:
        if self.secret is not None:
            return hmac.compare_digest(self.secret.get_secret_value(), candidate)
        if self.secret_sha256 is not None:
            return hmac.compare_digest(self.secret_sha256, secret_digest(self.id, candidate))
        return False


@pydantic_dataclass(frozen=True, slots=True, config=ConfigDict(extra="forbid"))
class LiveBinding:
    """A slotted pydantic dataclass, not a BaseModel: a tenant has 200,000 of these, and a model
    instance costs about 1.3 KB where this costs about a fifth of that."""

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


class LiveGroup(_Frozen):
    """A group whose APIs were listed (used to resolve API names given in manifests)."""

    id: str
    name: str | None = None
    apis: tuple[LiveApi, ...] = ()


class Scope(_Frozen):
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
    scopes: tuple[Scope, ...] = Field(
        default=(), description="(group, stage) pairs whose bindings were read; absent = not read"
    )
    bindings: tuple[LiveBinding, ...] = ()

    def scope_was_read(self, group: str, stage: str) -> bool:
        return any(s.group == group and s.stage == stage for s in self.scopes)

    def to_file_dict(self, *, include_secrets: bool = False) -> dict[str, Any]:
        data = self.model_dump(mode="json", exclude={"signatures"})
        signatures = []
        for sig in self.signatures:
            entry = sig.model_dump(mode="json", exclude={"secret", "secret_sha256"}, exclude_none=True)
            if sig.secret is not None and include_secrets:
                entry["secret"] = sig.secret.get_secret_value()
            elif sig.secret is not None:
                entry["secret_sha256"] = secret_digest(sig.id, sig.secret.get_secret_value())
            elif sig.secret_sha256 is not None:
                entry["secret_sha256"] = sig.secret_sha256
            signatures.append(entry)
        data["signatures"] = signatures
        return data

    def write_json(self, path: Path, *, include_secrets: bool = False) -> None:
        text = json.dumps(self.to_file_dict(include_secrets=include_secrets), indent=2, sort_keys=True)
        write_atomically(path, text + "\n")


class SnapshotSet(_Frozen):
    """Snapshots of several regions; a snapshot file holds one region or a list of them."""

    snapshots: tuple[Snapshot, ...]

    def for_region(self, region: str) -> Snapshot | None:
        return next((s for s in self.snapshots if s.region == region), None)


def load_snapshot_file(path: Path) -> SnapshotSet:
    """Read a snapshot JSON file: one snapshot object, or a list of them (one per region)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read snapshot: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: snapshot is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}: snapshot is not valid JSON: {exc.msg}") from None
    items = raw if isinstance(raw, list) else [raw]
    snapshots = []
    for index, item in enumerate(items):
        try:
            snapshots.append(Snapshot.model_validate(item))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            prefix = f"[{index}]." if isinstance(raw, list) else ""
            raise InputError(f"{path}: snapshot field '{prefix}{where}': {err['msg']}") from None
    return SnapshotSet(snapshots=tuple(snapshots))
