"""DesiredState x Snapshot -> Plan. Compares; never prints.

Rules of ownership:
- Signatures match by name. Declared and absent live: create. Declared and
  live with another key or secret: update (`changed` names the attributes).
  Live and in no manifest: delete under `prune: true`, otherwise unmanaged.
  Names matched by `ignore` are never reported.
- Bindings are authoritative for every (group, stage) a manifest mentions:
  a desired binding absent live is a bind, bound to another signature a
  rebind, and a live binding in such a scope that no manifest declares an
  unbind (unless its signature is ignored). Other scopes are not looked at.
- A delete (prune) of a signature still bound where this plan does not
  unbind it (a (group, stage) no manifest manages) cannot succeed: it is
  planned as `delete_blocked`, naming those bindings (see `reconciler.plan`).
  Whether a signature is bound elsewhere comes from the snapshot
  (`LiveSignature.bindings_in_region`); when it was not read (an older
  snapshot file), the delete is planned as before and the service decides.
- An API given by name resolves through the group's API list (and the live
  bindings' names); an unknown or ambiguous name is an error naming the
  manifest line, so a PR check catches it rather than apply.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

from reconciler.errors import InputError, ManifestError
from reconciler.gcrelax import fewer_cyclic_collections
from reconciler.manifest import DesiredBinding, DesiredSignature, DesiredState, Location, RegionDesired
from reconciler.plan import (
    NOT_CHECKED,
    SENSITIVE,
    Action,
    BindingChange,
    BindingValues,
    Change,
    Plan,
    Resource,
    SignatureChange,
    SignatureValues,
    summarize,
)
from reconciler.snapshot import LiveBinding, LiveSignature, Snapshot
from reconciler.vendor_rules import STAGES


class PlanError(ManifestError):
    """The manifests cannot be planned against this live state (e.g. an API name that does not exist)."""


def _signature_values(name: str, key: str, secrets_checked: bool) -> SignatureValues:
    return SignatureValues(name=name, key=key, secret=SENSITIVE if secrets_checked else NOT_CHECKED)


def _signature_changes(desired: RegionDesired, snapshot: Snapshot, secrets_checked: bool
                       ) -> tuple[list[SignatureChange], int]:
    """The changes by name; a signature that matches (nearly all of them) costs a lookup and a comparison."""
    region = desired.region
    live_by_name = {s.name: s for s in snapshot.signatures}
    changes: list[SignatureChange] = []
    for name, want in desired.signatures.items():
        have: LiveSignature | None = live_by_name.get(name)
        if have is None:
            changes.append(SignatureChange(action=Action.CREATE, resource=Resource.SIGNATURE,
                                           address=f"signature.{region}.{name}", region=region, before=None,
                                           after=_signature_values(name, want.key, secrets_checked),
                                           source=str(want.location)))
        elif changed := _changed_attributes(want, have):
            changes.append(SignatureChange(action=Action.UPDATE, resource=Resource.SIGNATURE,
                                           address=f"signature.{region}.{name}", region=region,
                                           before=_signature_values(name, have.key, secrets_checked),
                                           after=_signature_values(name, want.key, secrets_checked),
                                           changed=changed, source=str(want.location)))
    no_op = len(desired.signatures) - len(changes)
    for name in live_by_name.keys() - desired.signatures.keys():
        if not desired.is_ignored(name):
            changes.append(SignatureChange(action=Action.DELETE if desired.prune else Action.UNMANAGED,
                                           resource=Resource.SIGNATURE, address=f"signature.{region}.{name}",
                                           region=region, before=_signature_values(name, live_by_name[name].key,
                                                                                    secrets_checked), after=None))
    changes.sort(key=lambda change: change.values.name)
    return changes, no_op


def _changed_attributes(want: DesiredSignature, have: LiveSignature) -> tuple[str, ...]:
    key: tuple[str, ...] = ("key",) if have.key != want.key else ()
    # The secret is compared apart, never put beside other values.
    if want.secret is not None and not have.secret_matches(want.secret.get_secret_value()):
        return (*key, "secret")
    return key


class _ApiCatalog:
    """API ids and names of one group, from the group listing and from live bindings.

    A name maps to its id; the (rare) names shared by several APIs are kept apart, so the common
    case costs one dict entry per API rather than a set per name.
    """

    def __init__(self) -> None:
        self.name_of: dict[str, str] = {}
        self.id_named: dict[str, str] = {}
        self.shared_names: dict[str, set[str]] = {}
        self.listed = False

    def add(self, api_id: str, name: str) -> None:
        self.name_of[api_id] = name
        other = self.id_named.setdefault(name, api_id)
        if other != api_id:
            self.shared_names.setdefault(name, {other}).add(api_id)

    def resolve(self, binding: DesiredBinding) -> tuple[str, str]:
        loc = binding.location
        if binding.api_is_id:
            if binding.api in self.name_of:
                return binding.api, self.name_of[binding.api]
            if self.listed:
                raise PlanError(loc.file, loc.line, "apis",
                                f"API id {binding.api} does not exist in group {binding.group}")
            return binding.api, ""
        if binding.api in self.shared_names:
            raise PlanError(loc.file, loc.line, "apis",
                            f"API name '{binding.api}' is ambiguous in group {binding.group} "
                            f"(ids {', '.join(sorted(self.shared_names[binding.api]))}); give the id instead")
        if binding.api not in self.id_named:
            raise PlanError(loc.file, loc.line, "apis",
                            f"API '{binding.api}' does not exist in group {binding.group}")
        return self.id_named[binding.api], binding.api


def _binding_changes(desired: RegionDesired, snapshot: Snapshot) -> tuple[list[BindingChange], int]:
    """Scope by scope (group, stage), so that the working sets stay the size of one scope."""
    region = desired.region
    wanted_by_scope: dict[tuple[str, str], list[DesiredBinding]] = defaultdict(list)
    for want in desired.bindings:
        wanted_by_scope[(want.group, want.stage)].append(want)
    read = {(s.group, s.stage) for s in snapshot.scopes}
    for scope_group, scope_stage in sorted(wanted_by_scope):
        if (scope_group, scope_stage) not in read:
            raise InputError(f"the live state of region {region} does not include the bindings of group "
                             f"{scope_group} stage {scope_stage}, which a manifest mentions")

    catalogs: defaultdict[str, _ApiCatalog] = defaultdict(_ApiCatalog)
    groups_mentioned = {g for g, _ in wanted_by_scope}
    for live_group in snapshot.groups:
        if live_group.id in groups_mentioned:
            catalog = catalogs[live_group.id]
            catalog.listed = True
            for api in live_group.apis:
                catalog.add(api.id, api.name)
    live_by_scope: dict[tuple[str, str], list[LiveBinding]] = defaultdict(list)
    for binding in snapshot.bindings:
        if (binding.group, binding.stage) in wanted_by_scope:
            live_by_scope[(binding.group, binding.stage)].append(binding)
            if binding.api_id not in catalogs[binding.group].name_of:
                catalogs[binding.group].add(binding.api_id, binding.api_name)

    changes: list[BindingChange] = []
    no_op = 0
    for group, stage in sorted(wanted_by_scope):
        scope_changes, scope_no_op = _scope_changes(desired, group, stage, wanted_by_scope[(group, stage)],
                                                    live_by_scope.get((group, stage), []), catalogs[group])
        changes += scope_changes
        no_op += scope_no_op
    return changes, no_op


def _scope_changes(desired: RegionDesired, group: str, stage: str, wants: list[DesiredBinding],
                   lives: list[LiveBinding], catalog: _ApiCatalog) -> tuple[list[BindingChange], int]:
    live = {binding.api_id: binding for binding in lives}
    wanted = _wanted_by_api(wants, catalog)
    keyed, no_op = _binds_and_rebinds(desired.region, group, stage, wanted, live)
    # An unbind comes from the entry that makes the manifests own this (group, stage).
    keyed += _unbinds(desired, group, stage, wanted, live, desired.scope_sources.get((group, wants[0].stage)))
    # By API name within the scope, as a reviewer looks for them (the id breaks ties between equal names).
    keyed.sort(key=lambda entry: (entry[1].api.api_name, entry[0]))
    return [change for _, change in keyed], no_op


def _wanted_by_api(wants: list[DesiredBinding], catalog: _ApiCatalog) -> dict[str, tuple[DesiredBinding, str]]:
    """Per API id, the binding that wants it and the API's name; an API listed twice in a scope is an error."""
    wanted: dict[str, tuple[DesiredBinding, str]] = {}
    for want in wants:
        api_id, api_name = catalog.resolve(want)
        earlier = wanted.get(api_id)
        if earlier is not None:
            loc = want.location
            raise PlanError(loc.file, loc.line, "apis",
                            f"API '{want.api}' is the same API ({api_id}) as '{earlier[0].api}' at "
                            f"{earlier[0].location}; list it once")
        wanted[api_id] = (want, api_name)
    return wanted


def _binds_and_rebinds(region: str, group: str, stage: str, wanted: Mapping[str, tuple[DesiredBinding, str]],
                       live: Mapping[str, LiveBinding]) -> tuple[list[tuple[str, BindingChange]], int]:
    """The binds and rebinds of a scope, keyed by API id, and how many wanted bindings already match."""
    # Matching bindings (nearly all of them) cost a dict lookup and a comparison; only changes are built
    # and sorted, so the cost of a large tenant with little drift stays near that of reading it.
    keyed: list[tuple[str, BindingChange]] = []
    no_op = 0
    for api_id, (want, api_name) in wanted.items():
        have = live.get(api_id)
        if have is not None and have.signature_name == want.signature:
            no_op += 1
            continue
        address = f"binding.{region}.{group}.{stage}.{api_id}"
        after = BindingValues(group=group, stage=want.stage, api_id=api_id, api_name=api_name,
                              signature=want.signature)
        if have is None:
            keyed.append((api_id, BindingChange(action=Action.BIND, resource=Resource.BINDING, address=address,
                                                region=region, before=None, after=after, source=str(want.location))))
        else:
            keyed.append((api_id, BindingChange(action=Action.REBIND, resource=Resource.BINDING, address=address,
                                                region=region,
                                                before=_live_binding_values(have), after=after,
                                                changed=("signature",), source=str(want.location))))
    return keyed, no_op


def _unbinds(desired: RegionDesired, group: str, stage: str, wanted: Mapping[str, tuple[DesiredBinding, str]],
             live: Mapping[str, LiveBinding], scope_source: Location | None) -> list[tuple[str, BindingChange]]:
    """The live bindings of a scope the manifests own that no manifest wants (ignored signatures excepted)."""
    region = desired.region
    return [(api_id, BindingChange(action=Action.UNBIND, resource=Resource.BINDING,
                                   address=f"binding.{region}.{group}.{stage}.{api_id}", region=region,
                                   before=_live_binding_values(have), after=None,
                                   source=str(scope_source) if scope_source is not None else None))
            for api_id, have in live.items()
            if api_id not in wanted and not desired.is_ignored(have.signature_name)]


def _live_binding_values(binding: LiveBinding) -> BindingValues:
    return BindingValues(group=binding.group, stage=binding.stage, api_id=binding.api_id,
                         api_name=binding.api_name, signature=binding.signature_name)


def _blocked_deletes(changes: list[Change], snapshot: Snapshot) -> list[Change]:
    """`changes` of one region with each delete that live bindings outside this plan would refuse made a
    `delete_blocked`; the bindings this plan unbinds or rebinds away do not block."""
    live_by_name = {s.name: s for s in snapshot.signatures}
    released = {(c.before.signature, c.before.group, c.before.stage, c.before.api_id) for c in changes
                if c.resource is Resource.BINDING and c.before is not None}
    out = []
    for change in changes:
        live = (live_by_name.get(change.values.name)
                if change.resource is Resource.SIGNATURE and change.action is Action.DELETE else None)
        if live is not None and live.bindings_in_region:
            still = tuple(_live_binding_values(b) for b in sorted(
                live.bindings_in_region, key=lambda b: (b.group, STAGES.index(b.stage), b.api_name, b.api_id))
                if (live.name, b.group, b.stage, b.api_id) not in released)
            if still:
                change = change.model_copy(update={"action": Action.DELETE_BLOCKED, "still_bound": still})
        out.append(change)
    return out


def diff(desired: DesiredState, snapshots: Mapping[str, Snapshot]) -> Plan:
    """Plan every region of `desired` against its snapshot (a missing snapshot is an error)."""
    with fewer_cyclic_collections():
        return _diff(desired, snapshots)


def _diff(desired: DesiredState, snapshots: Mapping[str, Snapshot]) -> Plan:
    changes: list[Change] = []
    no_op = 0
    for region in sorted(desired.regions):
        snapshot = snapshots.get(region)
        if snapshot is None:
            raise InputError(f"no live state for region {region} (the snapshot holds "
                             f"{', '.join(sorted(snapshots)) or 'no region'})")
        region_desired = desired.regions[region]
        sig_changes, sig_no_op = _signature_changes(region_desired, snapshot, desired.secrets_checked)
        binding_changes, binding_no_op = _binding_changes(region_desired, snapshot)
        changes += _blocked_deletes([*sig_changes, *binding_changes], snapshot)
        no_op += sig_no_op + binding_no_op
    ordered = tuple(changes)
    return Plan(regions=tuple(sorted(desired.regions)), secrets_checked=desired.secrets_checked,
                changes=ordered, summary=summarize(ordered, no_op))
