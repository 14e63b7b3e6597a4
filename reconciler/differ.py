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

Cost: a plan of a large tenant finds nearly every binding as declared. One given by API id and bound
live to the declared signature is counted as a no-op and never built (`RegionDesired.bindings_unless`,
`_LiveScopes`); only the rest are built, resolved and compared, so beyond a lookup per binding the work
is that of the changes. Where an API is given twice in a scope, once so (an error naming both places),
every binding is built and compared, and the plan or error is the same as when none is held.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

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
from reconciler.snapshot import LiveBinding, LiveGroup, LiveSignature, Snapshot
from reconciler.vendor_rules import STAGES, Stage

# (group, stage): where bindings are compared, and owned by the manifests when one mentions it.
Scope = tuple[str, Stage]


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

    def __init__(self, listing: LiveGroup | None, live: Iterable[Mapping[str, LiveBinding]]) -> None:
        apis = listing.apis if listing is not None else ()
        self.listed = listing is not None
        self.name_of: dict[str, str] = {api.id: api.name for api in apis}
        # The first id listed under each name, built at C speed: a plan may resolve names in 1,000 groups.
        self.id_named: dict[str, str] = {api.name: api.id for api in reversed(apis)}
        self.shared_names: dict[str, set[str]] = {}
        if len(self.id_named) < len(apis):  # a name listed twice, maybe for two APIs
            for api in apis:
                self._share(api.id, api.name)
        for bound in live:  # by API id, one scope of the group at a time
            for api_id in bound.keys() - self.name_of.keys():
                self.name_of[api_id] = bound[api_id].api_name
                self._share(api_id, bound[api_id].api_name)

    def _share(self, api_id: str, name: str) -> None:
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


class _HeldTwice(Exception):
    """A binding resolved to an API that a binding left unbuilt already holds: the same API twice in a scope."""


class _LiveScopes:
    """The live bindings of the (group, stage) scopes the manifests manage, by scope and API id.

    `holds` is asked about each binding a manifest gives by API id: one bound live as declared is taken out
    of `unheld` and is never built (a plan of 40,000 bindings finds nearly all of them so). The differ then
    compares the rest of the manifests' bindings with `unheld`, as it would compare them all with `bound`.
    """

    def __init__(self, snapshot: Snapshot) -> None:
        self.bound: dict[Scope, dict[str, LiveBinding]] = {}
        for binding in snapshot.bindings:
            in_scope = self.bound.get((binding.group, binding.stage))
            if in_scope is None:
                in_scope = self.bound[(binding.group, binding.stage)] = {}
            in_scope[binding.api_id] = binding
        self.unheld = {scope: dict(bindings) for scope, bindings in self.bound.items()}
        self._listings = {group.id: group for group in snapshot.groups}
        self._catalogs: dict[str, _ApiCatalog] = {}

    def holds(self, group: str, stage: Stage, api_id: str, signature: str) -> bool:
        in_scope = self.unheld.get((group, stage))
        if in_scope is not None:
            have = in_scope.get(api_id)
            if have is not None and have.signature_name == signature:
                del in_scope[api_id]
                return True
        return False

    def narrow(self, scopes: Iterable[Scope]) -> _LiveScopes:
        """Only the bindings of `scopes` (those the manifests mention) kept; a snapshot can hold more."""
        self.bound = {scope: self.bound.get(scope, {}) for scope in scopes}
        self.unheld = {scope: self.unheld.get(scope, {}) for scope in scopes}
        return self

    def held_in(self, scope: Scope) -> int:
        """How many bindings of `scope` were found as declared."""
        return len(self.bound[scope]) - len(self.unheld[scope])

    def check_not_held(self, scope: Scope, api_id: str) -> None:
        if api_id in self.bound[scope] and api_id not in self.unheld[scope]:
            raise _HeldTwice

    def catalog(self, group: str) -> _ApiCatalog:
        """The group's APIs, from its listing and its live bindings in the scopes managed (made when first asked)."""
        if group not in self._catalogs:
            live = [self.bound[(group, stage)] for stage in STAGES if (group, stage) in self.bound]
            self._catalogs[group] = _ApiCatalog(self._listings.get(group), live)
        return self._catalogs[group]


def _binding_changes(desired: RegionDesired, snapshot: Snapshot) -> tuple[list[BindingChange], int]:
    """Scope by scope (group, stage), so that the working sets stay the size of one scope; the bindings found
    bound live as declared are counted, never built (see `_LiveScopes`)."""
    live = _LiveScopes(snapshot)
    wants = desired.bindings_unless(live.holds)
    # The scopes the manifests mention: those where a binding was found as declared, and those of the rest.
    scopes = sorted({scope for scope, bound in live.bound.items() if len(bound) > len(live.unheld[scope])}
                    | {(b.group, b.stage) for b in wants})
    read = {(s.group, s.stage) for s in snapshot.scopes}
    for scope_group, scope_stage in scopes:
        if (scope_group, scope_stage) not in read:
            raise InputError(f"the live state of region {desired.region} does not include the bindings of group "
                             f"{scope_group} stage {scope_stage}, which a manifest mentions")
    try:
        changes, no_op = _scopes_changes(desired, scopes, wants, live.narrow(scopes))
    except _HeldTwice:
        # An API given twice in a scope, once as bound live: the error names the first of the two, so every
        # binding is built and compared, none held.
        live = _LiveScopes(snapshot).narrow(scopes)
        changes, no_op = _scopes_changes(desired, scopes, desired.bindings, live)
    return changes, no_op + sum(live.held_in(scope) for scope in scopes)


def _scopes_changes(desired: RegionDesired, scopes: list[Scope], wants: list[DesiredBinding],
                    live: _LiveScopes) -> tuple[list[BindingChange], int]:
    wants_by_scope: dict[Scope, list[DesiredBinding]] = defaultdict(list)
    for want in wants:
        wants_by_scope[(want.group, want.stage)].append(want)
    changes: list[BindingChange] = []
    no_op = 0
    for scope in scopes:
        if scope in wants_by_scope or live.unheld[scope]:
            scope_changes, scope_no_op = _scope_changes(desired, scope, wants_by_scope.get(scope, []), live)
            changes += scope_changes
            no_op += scope_no_op
    return changes, no_op


def _scope_changes(desired: RegionDesired, scope: Scope, wants: list[DesiredBinding],
                   live: _LiveScopes) -> tuple[list[BindingChange], int]:
    group, stage = scope
    unheld = live.unheld[scope]
    wanted = _wanted_by_api(wants, live, scope) if wants else {}
    keyed, no_op = _binds_and_rebinds(desired.region, group, stage, wanted, unheld)
    # An unbind comes from the entry that makes the manifests own this (group, stage).
    keyed += _unbinds(desired, group, stage, wanted, unheld, desired.scope_sources.get(scope))
    # By API name within the scope, as a reviewer looks for them (the id breaks ties between equal names).
    keyed.sort(key=lambda entry: (entry[1].api.api_name, entry[0]))
    return [change for _, change in keyed], no_op


def _wanted_by_api(wants: list[DesiredBinding], live: _LiveScopes, scope: Scope
                   ) -> dict[str, tuple[DesiredBinding, str]]:
    """Per API id, the binding that wants it and the API's name; an API listed twice in a scope is an error."""
    catalog = live.catalog(scope[0])
    wanted: dict[str, tuple[DesiredBinding, str]] = {}
    for want in wants:
        api_id, api_name = catalog.resolve(want)
        live.check_not_held(scope, api_id)
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
    deleted = {c.values.name for c in changes if c.resource is Resource.SIGNATURE and c.action is Action.DELETE}
    bound_live = {s.name: s for s in snapshot.signatures if s.name in deleted and s.bindings_in_region}
    if not bound_live:  # the usual case: the binding changes need not be looked through
        return changes
    released = {(c.before.signature, c.before.group, c.before.stage, c.before.api_id) for c in changes
                if c.resource is Resource.BINDING and c.before is not None}
    out = []
    for change in changes:
        live = (bound_live.get(change.values.name)
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
