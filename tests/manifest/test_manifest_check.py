"""`check_manifest`, the quick validation of a manifest's value, must accept exactly what the model accepts, with
the same values, and leave everything else to the model (which words the errors)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from reconciler.manifest import CheckedManifest, check_manifest
from reconciler.manifest_model import BindingSpec, ManifestFile, SignatureSpec

GROUP = "0009db9c828549768a200320714b8930"


@st.composite
def _rarely(draw: st.DrawFn, usual: st.SearchStrategy[Any], mistake: st.SearchStrategy[Any]) -> Any:
    """`usual` 29 times in 30, so that whole manifests of many fields often pass, else `mistake`. Only the one
    taken is drawn: drawing both, nested through every field, made generating a manifest most of the test's time."""
    return draw(mistake) if draw(st.integers(0, 29)) == 0 else draw(usual)


def _field(valid: list[Any], invalid: list[Any]) -> st.SearchStrategy[Any]:
    return _rarely(st.sampled_from(valid), st.sampled_from(invalid))


def _entry(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """An entry with every field, else one missing, one extra, or not a mapping."""
    return _rarely(st.fixed_dictionaries(fields), st.one_of(
        st.fixed_dictionaries({}, optional=fields).filter(lambda d: len(d) < len(fields)),
        st.builds(lambda d, extra: {**d, **extra}, st.fixed_dictionaries(fields),
                  st.dictionaries(st.sampled_from(["apis ", "Name", "id", 1]), st.just("x"), min_size=1, max_size=1)),
        st.sampled_from([None, "x", []])))


SCALARS = [None, True, 0, 1.5, "", " ", [], {}]
# Per field: values the model takes, and mistakes.
NAMES = (["orders_key", "签名_订单", "sig00001"], ["abc", "1abc", "a" * 51, "sig-1", *SCALARS])
SIGNATURE_FIELDS = {
    "name": NAMES,
    "key": (["key00001", "Ab_cdef"], ["key", "1key000", "k" * 21, *SCALARS]),
    "secret": (["${env:ORDERS_SECRET}", "secret00001", "Ab@#!*_x"],
               ["${env:1X}", "${env:X} ", "${env:X}${env:Y}", "abc", "$ecret001", "1secret", *SCALARS])}
BINDING_FIELDS = {
    "group": ([GROUP, "f" * 32], [GROUP.upper(), GROUP + "0", " " + GROUP, *SCALARS]),
    "stage": (["RELEASE", "TEST"], ["PRE", "release", "RELEASE ", *SCALARS]),
    "signature": NAMES,
    "apis": ([[GROUP], ["orders_api", "x"], [" a "]], [[], [""], [" "], ["x", 1], ["x", None], "x", *SCALARS])}
STAGES = _field(*BINDING_FIELDS["stage"])
SIGNATURE = _entry({name: _field(*values) for name, values in SIGNATURE_FIELDS.items()})
BINDING = _entry({name: _field(*values) for name, values in BINDING_FIELDS.items()})
STAGE_LISTS = _rarely(st.lists(STAGES, max_size=3), st.sampled_from(SCALARS))
MANIFEST = st.fixed_dictionaries(
    {"region": _field(["cn-hangzhou", "ap-southeast-1"], ["cn", "CN-hangzhou", "cn-", *SCALARS])},
    optional={"prune": _field([True, False, None], ["true", 0, []]),
              "ignore": _rarely(st.lists(_field(["legacy_*", "x"], ["", " \n", 1, None]), max_size=3),
                                st.sampled_from(SCALARS)),
              "signatures": _rarely(st.lists(SIGNATURE, max_size=4), st.sampled_from(SCALARS)),
              "bindings": _rarely(st.lists(BINDING, max_size=4), st.sampled_from(SCALARS)),
              "require_signature": STAGE_LISTS,
              "require_signature_by_group": _rarely(
                  st.dictionaries(_field([GROUP, "not-a-group"], [1, None]), STAGE_LISTS, max_size=2),
                  st.sampled_from(SCALARS))}).flatmap(
    lambda d: _rarely(st.just(d), st.just({**d, "regions": "cn-hangzhou"})))


@settings(max_examples=1500, deadline=None)
@given(data=_rarely(MANIFEST, st.one_of(st.sampled_from(SCALARS), st.lists(MANIFEST, max_size=1))))
def test_the_quick_check_accepts_what_the_model_accepts_with_the_same_values(data: Any) -> None:
    try:
        expected: CheckedManifest | None = CheckedManifest.of(ManifestFile.model_validate(data))
    except ValidationError:
        expected = None
    checked = check_manifest(data)
    if expected is None:
        assert checked is None
    else:
        # Declining what the model takes costs only time; the generated cases must not make that common.
        assert checked is None or checked == expected


def test_a_valid_manifest_is_taken_by_the_quick_check_and_keeps_whether_require_signature_was_given() -> None:
    data = {"region": "cn-hangzhou", "prune": False, "ignore": ["legacy_*"],
            "signatures": [{"name": "orders_key", "key": "key00001", "secret": "${env:ORDERS_SECRET}"}],
            "bindings": [{"group": GROUP, "stage": "TEST", "signature": "orders_key", "apis": ["orders_api"]}],
            "require_signature_by_group": {GROUP: ["RELEASE"]}}
    checked = check_manifest(data)
    assert checked == CheckedManifest.of(ManifestFile.model_validate(data))
    assert checked is not None and checked.require_signature is None
    given_empty = check_manifest({**data, "require_signature": []})
    assert given_empty is not None and given_empty.require_signature == []


VALID = {"region": "cn-hangzhou", "signatures": [{name: valid[0] for name, (valid, _) in SIGNATURE_FIELDS.items()}],
         "bindings": [{name: valid[0] for name, (valid, _) in BINDING_FIELDS.items()}]}
MISTAKES = [(kind, name, mistake) for kind, fields in (("signatures", SIGNATURE_FIELDS), ("bindings", BINDING_FIELDS))
            for name, (_, mistakes) in fields.items() for mistake in mistakes]


@pytest.mark.parametrize(("kind", "name", "mistake"), MISTAKES)
def test_each_mistake_alone_is_left_to_the_model(kind: str, name: str, mistake: Any) -> None:
    assert check_manifest(VALID) is not None
    entry = {**VALID[kind][0], name: mistake}
    data = {**VALID, kind: [VALID[kind][0], entry]}
    with pytest.raises(ValidationError):
        ManifestFile.model_validate(data)
    assert check_manifest(data) is None


def test_the_quick_check_knows_the_models_fields() -> None:
    from reconciler import manifest

    models = (set(ManifestFile.model_fields), set(SignatureSpec.model_fields), set(BindingSpec.model_fields))
    assert models == (manifest._MANIFEST_FIELDS, manifest._SIGNATURE_FIELDS, manifest._BINDING_FIELDS)
