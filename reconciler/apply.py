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

Design notes:

- A signature is deleted only when nothing is bound to it anywhere in the region. The plan knows it
  already: the fetcher lists where each signature the plan may delete is bound
  (``DescribeApisBySignature``), and a delete that bindings outside this plan would keep from
  succeeding is planned as ``delete_blocked`` (see `reconciler.plan`). Apply refuses to start a plan
  holding one, before any call. The service's own refusal (``DependencyViolation.Signature``) stays
  behind it for a binding made between the read and the delete.
- Saved plans (``plan --out-plan``, ``apply --plan-file``): see `reconciler.saved_plan`.
- SIGINT and SIGTERM during the writes: no new step starts; the steps in flight finish (a step is
  the unit: a rebind's RemoveSignatureApis and SetSignatureApis always both go out), the result
  lists what was done and what was not, as after a failure, and the command exits 130 (SIGINT) or
  143 (SIGTERM). A second signal does not cut the calls short either: each is bounded by
  ``--timeout`` and the client's retries, and an API left without its signature is worse than a
  wait of a few seconds.
- Rebinding is RemoveSignatureApis then SetSignatureApis. The vendor's reference of SetSignatureApis
  says only that it binds a key to APIs (at most 100 a call); the console guide says an API has one
  key per stage and that the key "can be replaced". Neither says whether SetSignatureApis on an API
  bound to another key replaces that binding or fails, so apply does not rely on it: between the two
  calls the API is unsigned (measured in tests/apply/test_apply_interrupt.py; a few milliseconds against
  the emulator on loopback, one round trip to the vendor's endpoint).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from reconciler.aliyun.client import ApiClient
from reconciler.errors import InputError, ReconcilerError
from reconciler.gateway import Gateway
from reconciler.manifest import DesiredState
from reconciler.plan import ACTIONABLE, Action, Change, Plan, Resource, SignatureChange, SignatureValues
from reconciler.render.plan import still_bound_scopes
from reconciler.runner import run_async
from reconciler.snapshot import Snapshot
from reconciler.vendor_rules import MAX_APIS_PER_CALL, Stage


class BlockedPlanError(ReconcilerError):
    """The plan holds a delete that cannot be carried out; nothing was changed."""


class ApplyInterrupted(ReconcilerError):
    """SIGINT or SIGTERM stopped apply between steps; `exit_code` is 128 + the signal number."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# ---------------------------------------------------------------- carrying out a plan


@dataclass(eq=False)  # one tally per scope, told apart by identity
class BindingCallsTally:
    """The calls (at most 100 APIs each) that bind, unbind or rebind the APIs of one (group, stage) for one
    signature: one line once all are done, with the total, instead of one line per call (a scope of
    2,000 APIs read as 20 identical lines): "{verb} 2000 APIs {where}", or "{verb} 300 of 2000 APIs {where}"."""

    calls: int
    apis: int
    verb: str
    where: str
    calls_done: int = 0
    apis_done: int = 0
    reported: bool = False

    def call_done(self, apis: int) -> str | None:
        self.calls_done += 1
        self.apis_done += apis
        if self.calls_done < self.calls:
            return None
        self.reported = True
        return self.line(_plural(self.apis))

    def line(self, count: str) -> str:
        return f"{self.verb} {count} {self.where}"

    def partial(self) -> str | None:
        """After a failure: what was done of a scope that was not finished (None if nothing, or all)."""
        if self.reported or not self.apis_done:
            return None
        self.reported = True
        return f"{self.line(f'{self.apis_done} of {_plural(self.apis)}')} (the rest not done)"


@dataclass(frozen=True)
class Step:
    """One unit of work: `what` it does (imperative, for "not done") and the call(s) making it so."""

    what: str
    run: Callable[[], Awaitable[str]]  # returns the line logged once done (past tense)
    # For a call of a scope's binding changes: the scope's line is logged once its last call is done.
    tally: BindingCallsTally | None = None
    apis: int = 0


@dataclass
class ApplyResult:
    done: list[str] = field(default_factory=list)
    not_done: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: {action.value: 0 for action in ACTIONABLE})
    interrupted_by: signal.Signals | None = None

    @property
    def ok(self) -> bool:
        return not self.failures and self.interrupted_by is None

    @property
    def stopped(self) -> bool:
        """No new step may start (a step failed, or a signal came)."""
        return bool(self.failures) or self.interrupted_by is not None

    def summary(self) -> list[str]:
        """What happened, for the end of the output (done steps were logged as they happened; the
        failure itself is the caller's error message)."""
        if self.ok:
            c = self.counts
            return [f"Apply complete: {c['create']} created, {c['update']} updated, {c['rebind']} rebound, "
                    f"{c['bind']} bound, {c['unbind']} unbound, {c['delete']} deleted."]
        why = (f"Apply interrupted by {self.interrupted_by.name}; the calls in flight were finished."
               if self.interrupted_by is not None and not self.failures else "Apply stopped at the first failure.")
        lines = [f"{why} Done: {len(self.done)} step(s), logged above."]
        lines.append(f"Not done: {len(self.not_done)} step(s):")
        lines += [f"  {what}" for what in self.not_done]
        lines.append("Run apply again to carry on: it re-reads the live state, so done steps are not repeated.")
        return lines


def _plural(count: int) -> str:
    return f"{count} API" if count == 1 else f"{count} APIs"


def _tally(api_ids: Sequence[str], verb: str, where: str) -> BindingCallsTally:
    return BindingCallsTally(calls=-(-len(api_ids) // MAX_APIS_PER_CALL), apis=len(api_ids), verb=verb, where=where)


def _chunks(items: Sequence[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), MAX_APIS_PER_CALL):
        yield list(items[start:start + MAX_APIS_PER_CALL])


class _RegionSteps:
    """Builds the steps of one region; ids of signatures created by this run are filled in as they come."""

    def __init__(self, region: str, changes: Sequence[Change], desired: DesiredState, snapshot: Snapshot,
                 gateway: Gateway, result: ApplyResult) -> None:
        self.region = region
        self.changes = changes
        self.desired = desired.regions[region]
        self.gateway = gateway
        self.result = result
        self.ids = {sig.name: sig.id for sig in snapshot.signatures}
        self.live_binding = {(b.group, b.stage, b.api_id): b for b in snapshot.bindings}

    def phases(self) -> list[list[Step]]:
        return [self._creates(), self._updates(), self._rebinds(), self._binds(), self._unbinds(), self._deletes()]

    def _signature_changes(self, action: Action) -> list[SignatureChange]:
        return [c for c in self.changes if c.resource is Resource.SIGNATURE and c.action is action]

    def _secret(self, name: str) -> str:
        secret = self.desired.signatures[name].secret
        if secret is None:
            raise InputError(f"{name}: the secret was not read (--skip-secrets); apply needs it")
        return secret.get_secret_value()

    def _creates(self) -> list[Step]:
        def step(values: SignatureValues) -> Step:
            async def run() -> str:
                new_id = await self.gateway.create_signature(values.name, values.key, self._secret(values.name))
                self.ids[values.name] = new_id
                self.result.counts["create"] += 1
                return f"{values.name}: created (id {new_id})"
            return Step(f"create signature {values.name}", run)
        return [step(change.values) for change in self._signature_changes(Action.CREATE)]

    def _updates(self) -> list[Step]:
        def step(change: SignatureChange, values: SignatureValues) -> Step:
            async def run() -> str:
                await self.gateway.modify_signature(
                    self.ids[values.name], key=values.key if "key" in change.changed else None,
                    secret=self._secret(values.name) if "secret" in change.changed else None)
                self.result.counts["update"] += 1
                return f"{values.name}: updated ({' and '.join(change.changed)})"
            return Step(f"update signature {values.name} ({' and '.join(change.changed)})", run)
        return [step(c, c.values) for c in self._signature_changes(Action.UPDATE)]

    def _binding_groups(self, action: Action) -> dict[tuple[str, Stage, str, str], list[str]]:
        """(group, stage, old signature name, new signature name) -> API ids, in plan order."""
        grouped: dict[tuple[str, Stage, str, str], list[str]] = {}
        for change in self.changes:
            if change.resource is not Resource.BINDING or change.action is not action:
                continue
            api = change.api
            grouped.setdefault((api.group, api.stage, change.old_signature or "", change.new_signature or ""),
                               []).append(api.api_id)
        return grouped

    def _old_signature_id(self, group: str, stage: Stage, api_id: str) -> str:
        return self.live_binding[(group, stage, api_id)].signature_id

    async def _remove(self, group: str, stage: Stage, api_ids: list[str]) -> None:
        # The live binding gives the id to unbind from (the name may have been reused by a create).
        by_signature: dict[str, list[str]] = {}
        for api_id in api_ids:
            by_signature.setdefault(self._old_signature_id(group, stage, api_id), []).append(api_id)
        for signature_id, ids in by_signature.items():
            await self.gateway.remove_signature_apis(group, stage, signature_id, ids)

    async def _set(self, group: str, stage: Stage, signature: str, api_ids: list[str]) -> None:
        await self.gateway.set_signature_apis(group, stage, self.ids[signature], api_ids)

    def _rebinds(self) -> list[Step]:
        def step(group: str, stage: Stage, old: str, new: str, api_ids: list[str], tally: BindingCallsTally) -> Step:
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
            return Step(f"rebind {where} from {old} to {new}", run, tally, len(api_ids))
        return [step(group, stage, old, new, chunk, tally)
                for (group, stage, old, new), ids in self._binding_groups(Action.REBIND).items()
                for tally in [_tally(ids, "rebound", f"of group {group} stage {stage} from {old} to {new}")]
                for chunk in _chunks(ids)]

    def _binds(self) -> list[Step]:
        def step(group: str, stage: Stage, signature: str, api_ids: list[str], tally: BindingCallsTally) -> Step:
            where = f"{_plural(len(api_ids))} of group {group} stage {stage}"

            async def run() -> str:
                await self._set(group, stage, signature, api_ids)
                self.result.counts["bind"] += len(api_ids)
                return f"bound {where} to {signature}"
            return Step(f"bind {where} to {signature}", run, tally, len(api_ids))
        return [step(group, stage, new, chunk, tally)
                for (group, stage, _, new), ids in self._binding_groups(Action.BIND).items()
                for tally in [_tally(ids, "bound", f"of group {group} stage {stage} to {new}")]
                for chunk in _chunks(ids)]

    def _unbinds(self) -> list[Step]:
        def step(group: str, stage: Stage, signature: str, api_ids: list[str], tally: BindingCallsTally) -> Step:
            where = f"{_plural(len(api_ids))} of group {group} stage {stage}"

            async def run() -> str:
                await self._remove(group, stage, api_ids)
                self.result.counts["unbind"] += len(api_ids)
                return f"unbound {where} from {signature}"
            return Step(f"unbind {where} from {signature}", run, tally, len(api_ids))
        return [step(group, stage, old, chunk, tally)
                for (group, stage, old, _), ids in self._binding_groups(Action.UNBIND).items()
                for tally in [_tally(ids, "unbound", f"of group {group} stage {stage} from {old}")]
                for chunk in _chunks(ids)]

    def _deletes(self) -> list[Step]:
        def step(name: str) -> Step:
            async def run() -> str:
                signature_id = self.ids[name]
                await self.gateway.delete_signature(signature_id)
                self.result.counts["delete"] += 1
                return f"{name}: deleted (id {signature_id})"
            return Step(f"delete signature {name}", run)
        return [step(change.values.name) for change in self._signature_changes(Action.DELETE)]


class _PhaseRunner:
    """Runs the steps of a phase with bounded concurrency; after the first failure starts no new step."""

    def __init__(self, concurrency: int, result: ApplyResult, report: Callable[[str], None]) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self._result = result
        self._report = report

    async def run_phase(self, steps: Sequence[Step]) -> None:
        outcomes = await asyncio.gather(*(self._run(step) for step in steps))
        # A scope cut short by a failure still gets its line, with what was done of it.
        for tally in dict.fromkeys(step.tally for step in steps if step.tally is not None):
            partial = tally.partial()
            if partial is not None:
                self._report(partial)
        # Not-done steps are listed in plan order, whatever order the tasks ended in.
        self._result.not_done += [step.what for step, done in zip(steps, outcomes, strict=True) if not done]

    async def _run(self, step: Step) -> bool:
        async with self._slots:
            if self._result.stopped:
                return False
            try:
                line = await step.run()
            except ReconcilerError as exc:
                self._result.failures.append(f"{step.what}: {exc}")
                return False
        self._result.done.append(line)
        shown = line if step.tally is None else step.tally.call_done(step.apis)
        if shown is not None:
            self._report(shown)
        return True


def refuse_blocked(plan: Plan) -> None:
    """BlockedPlanError when `plan` holds a delete that cannot be carried out (before any call is made)."""
    blocked = plan.blocked
    if not blocked:
        return
    where = "; ".join(
        f"{c.values.name} is still bound in {' and '.join(still_bound_scopes(c, group_names=plan.group_names))}"
        for c in blocked)
    raise BlockedPlanError(f"apply refused: the plan holds {len(blocked)} delete(s) that cannot be carried out "
                           f"({where}); nothing was changed; unbind those APIs there, manage that group and stage in "
                           f"a manifest, or list the signature under ignore")


def _stop_new_steps(result: ApplyResult, warn: Callable[[str], None]) -> Callable[[signal.Signals], None]:
    """While the writes run, SIGINT and SIGTERM only stop new steps from starting (see the module docstring)."""

    def on_signal(received: signal.Signals) -> None:
        if result.interrupted_by is None:
            result.interrupted_by = received
            warn(f"{received.name} received: finishing the calls in flight; no new step starts.")
        else:
            warn(f"{received.name} received: still finishing the calls in flight.")

    return on_signal


async def apply_plan_async(plan: Plan, desired: DesiredState, snapshots: Mapping[str, Snapshot],
                           client_for: Callable[[str], ApiClient], *, concurrency: int,
                           report: Callable[[str], None], result: ApplyResult | None = None) -> ApplyResult:
    """Carry out `plan` (made from `desired` against `snapshots`) into `result` (a new one when not given);
    `report` gets each done step's line."""
    if not desired.secrets_checked:
        raise InputError("apply needs the secrets: do not use --skip-secrets")
    refuse_blocked(plan)
    result = result if result is not None else ApplyResult()
    runner = _PhaseRunner(concurrency, result, report)
    for region in plan.regions:
        changes = [c for c in plan.changes if c.region == region and c.action in ACTIONABLE]
        if not changes:
            continue
        if len(plan.regions) > 1:
            report(f"Region {region}:")
        async with client_for(region) as client:
            for steps in _RegionSteps(region, changes, desired, snapshots[region], Gateway(client), result).phases():
                await runner.run_phase(steps)
    return result


def apply_plan(plan: Plan, desired: DesiredState, snapshots: Mapping[str, Snapshot],
               client_for: Callable[[str], ApiClient], *, concurrency: int,
               report: Callable[[str], None], warn: Callable[[str], None] = lambda _: None) -> ApplyResult:
    """`apply_plan_async`, run the process's way, with SIGINT and SIGTERM stopping new steps; `warn` gets
    what the user should know at once (a signal received)."""
    result = ApplyResult()
    return run_async(apply_plan_async(plan, desired, snapshots, client_for, concurrency=concurrency, report=report,
                                      result=result), on_signal=_stop_new_steps(result, warn))
