"""A loaded region builds its bindings when first asked for; what it answers before that (a scope's bindings,
what each scope declares, the scopes, the count) must be what the built bindings give."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.errors import InputError
from reconciler.manifest import DesiredBinding, RegionDesired, load_desired_state

GROUPS = ["0009db9c828549768a200320714b8930", "f" * 32]
APIS = ["orders_list", "46fbb52840d146f186e38e8e70fc8c94", "orders_get", "9a7e2c4b6d8f0a1c3e5b7d9f1a3c5e70"]
ENTRY = st.tuples(st.sampled_from(GROUPS), st.sampled_from(["RELEASE", "TEST"]), st.sampled_from(["sig_a", "sig_b"]),
                  st.lists(st.sampled_from(APIS), min_size=1, max_size=3, unique=True))
# Per file: its entries, and whether it is padded past the size read through the fast reading.
FILES = st.lists(st.tuples(st.lists(ENTRY, max_size=4), st.booleans()), min_size=1, max_size=3)
HEAD = "region: cn-hangzhou\nsignatures:\n  - {name: sig_a, key: key00001, secret: secret00001}\n" \
       "  - {name: sig_b, key: key00002, secret: secret00002}\n"


def _write(folder: Path, files: list[tuple[list[tuple[str, str, str, list[str]]], bool]]) -> None:
    for number, (entries, padded) in enumerate(files):
        text = HEAD if number == 0 else "region: cn-hangzhou\n"
        if entries:
            text += "bindings:\n" + "".join(
                f"  - group: {group}\n    stage: {stage}\n    signature: {signature}\n    apis: [{', '.join(apis)}]\n"
                for group, stage, signature, apis in entries)
        (folder / f"m{number}.yaml").write_text(text + ("# " + "x" * 5000 + "\n" if padded else ""))


def _seen(bindings: list[DesiredBinding]) -> list[tuple[str, str, str, str, bool, str]]:
    return [(b.group, b.stage, b.signature, b.api, b.api_is_id, str(b.location)) for b in bindings]


def _load(folder: Path) -> RegionDesired:
    return load_desired_state([folder], env=None).regions["cn-hangzhou"]


@settings(max_examples=60, deadline=None)
@given(files=FILES, wanted=st.sets(st.tuples(st.sampled_from(GROUPS), st.sampled_from(["RELEASE", "TEST"]))),
       leaving_out=st.sets(st.sampled_from(["m0.yaml", "m1.yaml", "m2.yaml"])))
def test_a_region_answers_before_building_what_its_built_bindings_give(
        files: list[tuple[list[tuple[str, str, str, list[str]]], bool]], wanted: set[tuple[str, str]],
        leaving_out: set[str]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        _write(folder, files)
        try:
            built = _load(folder)
        except InputError:  # an API bound twice: refused when loaded
            return
        everything = built.bindings
        left_out = {str(folder / name) for name in leaving_out}
        declared: dict[tuple[str, str], dict[str, set[str]]] = {}
        for b in everything:
            if b.location.file not in left_out:
                declared.setdefault((b.group, b.stage), {}).setdefault(b.signature, set()).add(b.api)
        answers = [_load(folder) for _ in range(4)]
        assert answers[0].binding_count() == len(everything)
        assert _seen(answers[1].bindings_in(frozenset(wanted))) == _seen(
            [b for b in everything if (b.group, b.stage) in wanted])
        assert answers[2].declared_scopes(leaving_out=left_out) == declared
        assert answers[3].scopes() == list(dict.fromkeys((b.group, b.stage) for b in everything))
