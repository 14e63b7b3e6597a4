"""Plan -> write operations through the API, in a safe order, stopping at the first failure.

Order within a region (regions one after another), each phase finished before the next starts:

1. create signatures (CreateSignature): later phases need their new ids;
2. update signatures (ModifySignature; only the key and/or secret that changed are sent);
3. rebind: per (group, stage, old signature, new signature), at most 100 APIs a call,
   RemoveSignatureApis of the old signature then SetSignatureApis of the new one (the API is
   unsigned only between those two calls);
4. bind (SetSignatureApis), grouped per signature, group and stage, at most 100 ApiIds a call;
5. unbind (RemoveSignatureApis), grouped likewise;
6. delete signatures (DeleteSignature), last, so nothing still points at them.

Within a phase, steps run concurrently, at most `concurrency` at a time. On the first failure
no new step starts; steps already in flight finish, and the result lists what was done and what
was not. A second apply re-reads the live state and re-plans, so finished steps are no-ops.
Retrying is the client's business: writes are retried only on throttling, 503 and requests that
never left; ``RepeatedCommit`` and 500 are not resubmitted (their outcome is left to the re-plan).

Decisions where the task was silent:

- A signature is deleted only when nothing is bound to it anywhere in the region. Before each
  DeleteSignature, ``DescribeApisBySignature`` lists its APIs; if any are bound (necessarily in a
  (group, stage) no manifest manages: bindings in managed scopes were unbound in phase 5), the
  delete is refused with a message naming where. The service's own refusal of deleting a bound
  key (``DependencyViolation.Signature``) stays behind it as a second safeguard.
- A saved plan (``plan --out-plan``) is JSON: the Plan plus, per region, a SHA-256 fingerprint of
  the live state it was made against (the snapshot in canonical form, secrets as salted digests,
  times and endpoint left out). It holds no secret; secrets are read again at apply. Applying
  it re-reads the live state and refuses when a fingerprint differs (stale plan), and also when
  the manifests now give another plan than the saved one (the manifest line numbers aside), so
  what is carried out is exactly what was reviewed. A plan made with ``--skip-secrets`` cannot be
  saved: it never compared the secrets it would have to write.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from reconciler.aliyun.client import ApiClient
from reconciler.errors import InputError, ReconcilerError
from reconciler.manifest import DesiredState
from reconciler.output import write_atomically
from reconciler.plan import ACTIONABLE, Action, BindingValues, Change, Plan, SignatureValues
from reconciler.snapshot import Snapshot, Stage

MAX_APIS_PER_CALL = 100
# How many of a signature's remaining bindings a refused delete names.
BOUND_EXAMPLES = 3
SAVED_PLAN_KIND = "reconciler-saved-plan"


class StalePlanError(InputError):
    """A saved plan no longer fits the live state or the manifests; nothing was changed."""


class DeleteRefused(ReconcilerError):
    """A signature is still bound somewhere the manifests do not manage, so it is not deleted."""


# ---------------------------------------------------------------- saved plans


def live_fingerprint(snapshot: Snapshot) -> str:
    """SHA-256 over the snapshot in canonical form: secrets as salted digests; no times, no endpoint."""
    data = snapshot.to_file_dict()
    for volatile in ("fetched_at", "endpoint"):
        data.pop(volatile, None)
    # Times say when, not what: an emulator restart or a no-op rebind by hand does not stale a plan.
    for signature in data["signatures"]:
        signature.pop("created", None)
        signature.pop("modified", None)
    for binding in data["bindings"]:
        binding.pop("bound_time", None)
    for name in ("signatures", "scopes", "bindings", "groups"):
        data[name] = sorted(data[name], key=lambda item: json.dumps(item, sort_keys=True))
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class SavedPlan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["reconciler-saved-plan"] = "reconciler-saved-plan"
    format_version: Literal["1"] = "1"
    live_fingerprints: dict[str, str]
    plan: Plan


def save_plan(plan: Plan, snapshots: Mapping[str, Snapshot], path: Path) -> None:
    if not plan.secrets_checked:
        raise InputError("--out-plan needs the secrets: a saved plan is meant to be applied, and one made with "
                         "--skip-secrets never compared them")
    saved = SavedPlan(live_fingerprints={region: live_fingerprint(snapshots[region]) for region in plan.regions},
                      plan=plan)
    write_atomically(path, json.dumps(saved.model_dump(mode="json"), indent=2) + "\n")


def load_saved_plan(path: Path) -> SavedPlan:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read the saved plan: {exc.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InputError(f"{path}: not a saved plan (not JSON); make one with `reconciler plan --out-plan`") from None
    if not isinstance(raw, dict) or raw.get("kind") != SAVED_PLAN_KIND:
        raise InputError(f"{path}: not a saved plan; make one with `reconciler plan --out-plan` "
                         f"(`plan -o json` output cannot be applied)")
    try:
        return SavedPlan.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(part) for part in err["loc"])
        raise InputError(f"{path}: saved plan field '{where}': {err['msg']}") from None


def _without_sources(changes: Sequence[Change]) -> list[dict[str, Any]]:
    return [change.model_dump(mode="json", exclude={"source"}) for change in changes]


def check_saved_plan(saved: SavedPlan, current: Plan, snapshots: Mapping[str, Snapshot]) -> Plan:
    """The saved plan, if it still holds against this live state and these manifests; else StalePlanError."""
    if set(saved.plan.regions) != set(current.regions):
        raise StalePlanError(f"the saved plan covers region(s) {', '.join(saved.plan.regions)}, the manifests "
                             f"{', '.join(current.regions)}; make a new plan with `reconciler plan --out-plan`")
    for region in saved.plan.regions:
        if saved.live_fingerprints.get(region) != live_fingerprint(snapshots[region]):
            raise StalePlanError(f"stale plan: the live state of region {region} changed since the plan was saved; "
                                 f"nothing was changed; make a new plan with `reconciler plan --out-plan`")
    if _without_sources(saved.plan.changes) != _without_sources(current.changes):
        raise StalePlanError("the manifests (or the secrets in the environment) no longer give the saved plan; "
                             "nothing was changed; make a new plan with `reconciler plan --out-plan`")
    return saved.plan


# ---------------------------------------------------------------- carrying out a plan


@dataclass(frozen=True)
class Step:
    """One unit of work: `what` it does (imperative, for "not done") and the call(s) making it so."""

    what: str
    run: Callable[[], Awaitable[str]]  # returns the line logged once done (past tense)


@dataclass
class ApplyResult:
    done: list[str] = field(default_factory=list)
    not_done: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: {action.value: 0 for action in ACTIONABLE})

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> list[str]:
        """What happened, for the end of the output (done steps were logged as they happened; the
        failure itself is the caller's error message)."""
        if self.ok:
            c = self.counts
            return [f"Apply complete: {c['create']} created, {c['update']} updated, {c['rebind']} rebound, "
                    f"{c['bind']} bound, {c['unbind']} unbound, {c['delete']} deleted."]
        lines = [f"Apply stopped at the first failure. Done: {len(self.done)} step(s), logged above."]
        lines.append(f"Not done: {len(self.not_done)} step(s):")
        lines += [f"  {what}" for what in self.not_done]
        lines.append("Run apply again to carry on: it re-reads the live state, so done steps are not repeated.")
        return lines


def _plural(count: int) -> str:
    return f"{count} API" if count == 1 else f"{count} APIs"


def _chunks(items: Sequence[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), MAX_APIS_PER_CALL):
        yield list(items[start:start + MAX_APIS_PER_CALL])


class _RegionSteps:
    """Builds the steps of one region; ids of signatures created by this run are filled in as they come."""

    def __init__(self, region: str, changes: Sequence[Change], desired: DesiredState, snapshot: Snapshot,
                 client: ApiClient, result: ApplyResult) -> None:
        self.region = region
        self.changes = changes
        self.desired = desired.regions[region]
        self.client = client
        self.result = result
        self.ids = {sig.name: sig.id for sig in snapshot.signatures}
        self.live_binding = {(b.group, b.stage, b.api_id): b for b in snapshot.bindings}

    def phases(self) -> list[list[Step]]:
        return [self._creates(), self._updates(), self._rebinds(), self._binds(), self._unbinds(), self._deletes()]

    def _signature_changes(self, action: Action) -> list[SignatureValues]:
        out = []
        for change in self.changes:
            values = change.after or change.before
            if change.action is action and isinstance(values, SignatureValues):
                out.append(values)
        return out

    def _secret(self, name: str) -> str:
        secret = self.desired.signatures[name].secret
        if secret is None:
            raise InputError(f"{name}: the secret was not read (--skip-secrets); apply needs it")
        return secret.get_secret_value()

    def _creates(self) -> list[Step]:
        def step(values: SignatureValues) -> Step:
            async def run() -> str:
                body = await self.client.call("CreateSignature", {
                    "SignatureName": values.name, "SignatureKey": values.key,
                    "SignatureSecret": self._secret(values.name)})
                new_id = body.get("SignatureId")
                if not isinstance(new_id, str) or not new_id:
                    raise ReconcilerError(f"{values.name}: CreateSignature answered without a SignatureId")
                self.ids[values.name] = new_id
                self.result.counts["create"] += 1
                return f"{values.name}: created (id {new_id})"
            return Step(f"create signature {values.name}", run)
        return [step(values) for values in self._signature_changes(Action.CREATE)]

    def _updates(self) -> list[Step]:
        def step(change: Change, values: SignatureValues) -> Step:
            async def run() -> str:
                params = {"SignatureId": self.ids[values.name]}
                if "key" in change.changed:
                    params["SignatureKey"] = values.key
                if "secret" in change.changed:
                    params["SignatureSecret"] = self._secret(values.name)
                await self.client.call("ModifySignature", params)
                self.result.counts["update"] += 1
                return f"{values.name}: updated ({' and '.join(change.changed)})"
            return Step(f"update signature {values.name} ({' and '.join(change.changed)})", run)
        return [step(c, c.after) for c in self.changes
                if c.action is Action.UPDATE and isinstance(c.after, SignatureValues)]

    def _binding_groups(self, action: Action) -> dict[tuple[str, Stage, str, str], list[str]]:
        """(group, stage, old signature name, new signature name) -> API ids, in plan order."""
        grouped: dict[tuple[str, Stage, str, str], list[str]] = {}
        for change in self.changes:
            if change.action is not action:
                continue
            before, after = change.before, change.after
            values = after or before
            assert isinstance(values, BindingValues)
            old = before.signature if isinstance(before, BindingValues) else ""
            new = after.signature if isinstance(after, BindingValues) else ""
            grouped.setdefault((values.group, values.stage, old, new), []).append(values.api_id)
        return grouped

    def _old_signature_id(self, group: str, stage: Stage, api_id: str) -> str:
        return self.live_binding[(group, stage, api_id)].signature_id

    async def _remove(self, group: str, stage: Stage, api_ids: list[str]) -> None:
        # The live binding gives the id to unbind from (the name may have been reused by a create).
        by_signature: dict[str, list[str]] = {}
        for api_id in api_ids:
            by_signature.setdefault(self._old_signature_id(group, stage, api_id), []).append(api_id)
        for signature_id, ids in by_signature.items():
            await self.client.call("RemoveSignatureApis", {"GroupId": group, "SignatureId": signature_id,
                                                           "StageName": stage, "ApiIds": ",".join(ids)})

    async def _set(self, group: str, stage: Stage, signature: str, api_ids: list[str]) -> None:
        await self.client.call("SetSignatureApis", {"GroupId": group, "SignatureId": self.ids[signature],
                                                    "StageName": stage, "ApiIds": ",".join(api_ids)})

    def _rebinds(self) -> list[Step]:
        def step(group: str, stage: Stage, old: str, new: str, api_ids: list[str]) -> Step:
            where = f"{_plural(len(api_ids))} of group {group} stage {stage}"

            async def run() -> str:
                await self._remove(group, stage, api_ids)
                try:
                    await self._set(group, stage, new, api_ids)
                except ReconcilerError as exc:
                    raise ReconcilerError(f"{exc} (those APIs were unbound from {old} and are not yet bound "
                                          f"to {new})") from exc
                self.result.counts["rebind"] += len(api_ids)
                return f"rebound {where} from {old} to {new}"
            return Step(f"rebind {where} from {old} to {new}", run)
        return [step(group, stage, old, new, chunk)
                for (group, stage, old, new), ids in self._binding_groups(Action.REBIND).items()
                for chunk in _chunks(ids)]

    def _binds(self) -> list[Step]:
        def step(group: str, stage: Stage, signature: str, api_ids: list[str]) -> Step:
            where = f"{_plural(len(api_ids))} of group {group} stage {stage}"

            async def run() -> str:
                await self._set(group, stage, signature, api_ids)
                self.result.counts["bind"] += len(api_ids)
                return f"bound {where} to {signature}"
            return Step(f"bind {where} to {signature}", run)
        return [step(group, stage, new, chunk)
                for (group, stage, _, new), ids in self._binding_groups(Action.BIND).items()
                for chunk in _chunks(ids)]

    def _unbinds(self) -> list[Step]:
        def step(group: str, stage: Stage, signature: str, api_ids: list[str]) -> Step:
            where = f"{_plural(len(api_ids))} of group {group} stage {stage}"

            async def run() -> str:
                await self._remove(group, stage, api_ids)
                self.result.counts["unbind"] += len(api_ids)
                return f"unbound {where} from {signature}"
            return Step(f"unbind {where} from {signature}", run)
        return [step(group, stage, old, chunk)
                for (group, stage, old, _), ids in self._binding_groups(Action.UNBIND).items()
                for chunk in _chunks(ids)]

    def _deletes(self) -> list[Step]:
        def step(name: str) -> Step:
            async def run() -> str:
                signature_id = self.ids[name]
                await self._refuse_if_bound(name, signature_id)
                await self.client.call("DeleteSignature", {"SignatureId": signature_id})
                self.result.counts["delete"] += 1
                return f"{name}: deleted (id {signature_id})"
            return Step(f"delete signature {name}", run)
        return [step(values.name) for values in self._signature_changes(Action.DELETE)]

    async def _refuse_if_bound(self, name: str, signature_id: str) -> None:
        body = await self.client.call("DescribeApisBySignature", {"SignatureId": signature_id,
                                                                  "PageNumber": "1", "PageSize": "100"})
        total = body.get("TotalCount")
        container = body.get("ApiInfos")
        items = container.get("ApiInfo") if isinstance(container, dict) else None
        infos = [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []
        count = total if isinstance(total, int) and not isinstance(total, bool) else len(infos)
        if count == 0:
            return
        examples = "; ".join(f"API {info.get('ApiName') or info.get('ApiId')} ({info.get('ApiId')}) in group "
                             f"{info.get('GroupId')} stage {info.get('StageName')}"
                             for info in infos[:BOUND_EXAMPLES])
        more = f" and {count - BOUND_EXAMPLES} more" if count > BOUND_EXAMPLES else ""
        raise DeleteRefused(f"{name} is not deleted: it is still bound to {_plural(count)} ({examples}{more}), "
                            f"in a group and stage no manifest manages; unbind them there, or declare bindings "
                            f"for that group and stage in a manifest")


class _Runner:
    """Runs the steps of a phase with bounded concurrency; after the first failure starts no new step."""

    def __init__(self, concurrency: int, result: ApplyResult, report: Callable[[str], None]) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self._result = result
        self._report = report

    async def run_phase(self, steps: Sequence[Step]) -> None:
        outcomes = await asyncio.gather(*(self._run(step) for step in steps))
        # Not-done steps are listed in plan order, whatever order the tasks ended in.
        self._result.not_done += [step.what for step, done in zip(steps, outcomes, strict=True) if not done]

    async def _run(self, step: Step) -> bool:
        async with self._slots:
            if self._result.failures:
                return False
            try:
                line = await step.run()
            except ReconcilerError as exc:
                self._result.failures.append(f"{step.what}: {exc}")
                return False
        self._result.done.append(line)
        self._report(line)
        return True


async def apply_plan_async(plan: Plan, desired: DesiredState, snapshots: Mapping[str, Snapshot],
                           client_for: Callable[[str], ApiClient], *, concurrency: int,
                           report: Callable[[str], None]) -> ApplyResult:
    """Carry out `plan` (made from `desired` against `snapshots`); `report` gets each done step's line."""
    if not desired.secrets_checked:
        raise InputError("apply needs the secrets: do not use --skip-secrets")
    if concurrency < 1:
        raise InputError("--concurrency must be at least 1")
    result = ApplyResult()
    runner = _Runner(concurrency, result, report)
    for region in plan.regions:
        changes = [c for c in plan.changes if c.region == region and c.action in ACTIONABLE]
        if not changes:
            continue
        if len(plan.regions) > 1:
            report(f"Region {region}:")
        async with client_for(region) as client:
            for steps in _RegionSteps(region, changes, desired, snapshots[region], client, result).phases():
                await runner.run_phase(steps)
    return result


def apply_plan(plan: Plan, desired: DesiredState, snapshots: Mapping[str, Snapshot],
               client_for: Callable[[str], ApiClient], *, concurrency: int,
               report: Callable[[str], None]) -> ApplyResult:
    return asyncio.run(apply_plan_async(plan, desired, snapshots, client_for, concurrency=concurrency,
                                        report=report))
