"""The libyaml fast path must read every document exactly as the pure-Python loader does."""

from __future__ import annotations

from pathlib import Path

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler import yamlsource
from reconciler.yamlsource import load_yaml_document

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=12))
documents = st.recursive(st.dictionaries(st.text(min_size=1, max_size=8), scalars, min_size=1, max_size=4),
                         lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                 st.dictionaries(st.text(min_size=1, max_size=8), inner,
                                                                 min_size=1, max_size=3)),
                         max_leaves=12)


def _paths(value: object, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            out += _paths(child, (*prefix, str(key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            out += _paths(child, (*prefix, index))
    return out


@settings(max_examples=150, deadline=None)
@given(document=documents, flow=st.booleans())
def test_fast_and_pure_loaders_agree(tmp_path_factory: object, document: object, flow: bool) -> None:
    path = Path(str(tmp_path_factory.mktemp("y"))) / "m.yaml"  # type: ignore[attr-defined]
    path.write_text(yaml.safe_dump(document, default_flow_style=flow), encoding="utf-8")
    fast = load_yaml_document(path)
    original = yamlsource._parse_with_libyaml
    yamlsource._parse_with_libyaml = lambda name, text: None  # type: ignore[assignment]
    try:
        pure = load_yaml_document(path)
    finally:
        yamlsource._parse_with_libyaml = original
    assert fast.data == pure.data
    assert [fast.line_of(p) for p in _paths(pure.data)] == [pure.line_of(p) for p in _paths(pure.data)]


def test_deep_flow_nesting_does_not_reach_libyaml(tmp_path: Path) -> None:
    """libyaml composes recursively in C: 100,000 levels would crash the process, not raise."""
    path = tmp_path / "deep.yaml"
    path.write_text("region: " + "[" * 100_000 + "]" * 100_000, encoding="utf-8")
    assert yamlsource._parse_with_libyaml(str(path), path.read_text()) is None
