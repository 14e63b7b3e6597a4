"""The fast reading (yaml_rs, lines found when asked) must give exactly what the exact reading gives, or decline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from reconciler import yamlsource
from reconciler.errors import ManifestError
from reconciler.manifest import load_desired_state
from reconciler.yamlsource import YamlDocument, YamlLines, load_yaml_document, read_exact, read_fast

# Strings chosen where YAML 1.1 (PyYAML) and 1.2 (yaml_rs) differ, or where quoting and splitting are hard.
TRICKY = ["yes", "No", "on", "OFF", "y", "1_000", "0o17", "0x1F", "017", "1:30", "1e5", ".inf", "2020-01-01", "=",
          "<<", "~", "null", "", " ", "a: b", "a #b", "- x", "-x", "x\n- y", "'q'", '"d"', "\\", "#", "é", "中文",
          "\u2028", "a\tb", "${env:X}", "[x]", "{y}", "!tag", "&a", "*a", "%", "? k",
          "0009db9c828549768a200320714b8930", "0xfa", "0b10", "3a5f", "1_0d"]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.sampled_from(TRICKY), st.text(max_size=10))
ENTRY = st.dictionaries(st.sampled_from(["group", "stage", "signature", "name", "key", "secret", "yes", "1"]),
                        st.one_of(SCALARS, st.lists(SCALARS, max_size=3)), min_size=1, max_size=4)
DOCUMENT = st.fixed_dictionaries({"region": SCALARS},
                                 optional={"signatures": st.lists(ENTRY, max_size=6),
                                           "bindings": st.lists(ENTRY, max_size=6), "prune": SCALARS})


def _scalar_paths(value: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    if isinstance(value, dict):
        return [p for key, child in value.items() for p in _scalar_paths(child, (*prefix, str(key)))]
    if isinstance(value, list):
        return [p for index, child in enumerate(value) for p in _scalar_paths(child, (*prefix, index))]
    return [prefix]


def _same_as_exact(text: str) -> dict[str, Any] | None:
    fast = read_fast(text)
    if fast is None:
        return None
    root, data = read_exact("m.yaml", text)
    assert fast[0] == data
    exact_lines = YamlLines("m.yaml", text, root, {})
    fast_lines = YamlLines("m.yaml", text, None, fast[1])
    for path in _scalar_paths(data):
        assert fast_lines.line_of(path) == exact_lines.line_of(path), path
    return data


@pytest.fixture(autouse=True)
def small_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    """Slices of a few entries, so that every test crosses slice boundaries."""
    monkeypatch.setattr(yamlsource, "BYTES_PER_SLICE", 40)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(document=DOCUMENT, flow=st.sampled_from([False, None]), comment=st.booleans())
def test_fast_reading_is_the_exact_reading_or_none(document: dict[str, Any], flow: bool | None, comment: bool) -> None:
    text = yaml.safe_dump(document, default_flow_style=flow, allow_unicode=True, sort_keys=False)
    if comment:
        text = "# a comment\n" + text.replace("\n- ", "\n# - between entries\n- ", 1)
    try:
        read_exact("m.yaml", text)
    except ManifestError:
        assert read_fast(text) is None  # what the exact reading refuses, the fast one must not accept
        return
    _same_as_exact(text)


def test_a_manifest_as_teams_write_it_is_read_fast_with_the_same_value_and_lines() -> None:
    entries = "".join(f"  - group: 0009db9c828549768a200320714b89{i:02d}\n    stage: RELEASE\n"
                      f"    signature: orders_backend   # owner: team {i}\n"
                      f"    apis:\n      - orders_{i}\n      - 46fbb52840d146f186e38e8e70fc8c{i:02d}\n"
                      for i in range(40))
    text = ("# yaml-language-server: $schema=schema.json\nregion: cn-hangzhou\nsignatures:\n"
            "  - {name: orders_backend, key: ordersKey01, secret: '${env:ORDERS}'}\n"
            "  - name: payments_backend\n    key: paymentsKey1\n    secret: ${env:PAYMENTS}\n\nbindings:\n"
            + entries)
    assert _same_as_exact(text) is not None


@pytest.mark.parametrize("text", [
    "region: cn-hangzhou\nprune: yes\n",                      # YAML 1.1 boolean
    "region: cn-hangzhou\nignore: [1_000]\n",                 # YAML 1.1 integer
    "region: cn-hangzhou\nignore: [2020-01-01]\n",            # a date to PyYAML
    "region: cn-hangzhou\nbindings: !!python/name:os.system\n",
    "a: &x [1]\nb: *x\n",
    "region: cn-hangzhou\r\nprune: true\r\n",
    "\ufeffregion: cn-hangzhou\n",
    "region: cn-hangzhou\nignore:\n\t- x\n",
    "region: cn-hangzhou\n---\nregion: cn-shanghai\n",
    "region: cn-hangzhou\nignore: [a\x01b]\n",
    "region: cn-hangzhou\nregion: cn-shanghai\n",
    "region: cn-hangzhou\nbindings:\n- group: 'g\n- x'\n",
    "region: " + "[" * 40 + "]" * 40 + "\n",
])
def test_what_the_two_readings_could_read_differently_is_read_exactly(text: str) -> None:
    fast = read_fast(text)
    if fast is not None:  # then it must be exactly the same
        assert fast[0] == yaml.safe_load(text)
    assert "prune: yes" not in text or fast is None


def test_a_large_manifest_is_read_fast_and_its_lines_found_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "bindings.yaml"
    path.write_text("region: cn-hangzhou\nbindings:\n" + "".join(
        f"- group: g{i}\n  stage: RELEASE\n  signature: sig{i:05d}\n  apis: [api{i}]\n" for i in range(5000)),
        encoding="utf-8")
    doc = load_yaml_document(path)
    assert not doc.exact
    assert doc.line_of(("bindings", 4321, "apis", 0)) == 3 + 4 * 4321 + 3
    assert doc.line_of(("bindings", 4321, "signature")) == 3 + 4 * 4321 + 2
    assert doc.line_of(("region",)) == 1
    exact = YamlDocument(doc.path, *reversed(read_exact(doc.path, path.read_text())))
    assert doc.line_of(("bindings", 17)) == exact.line_of(("bindings", 17))


def test_an_error_in_a_large_manifest_names_its_exact_line(tmp_path: Path) -> None:
    path = tmp_path / "bindings.yaml"
    entries = [f"- group: a{i:031x}\n  stage: RELEASE\n  signature: sig{i:05d}\n  apis: [api{i}]\n"
               for i in range(5000)]
    entries[4000] = entries[4000].replace("RELEASE", "release")
    path.write_text("region: cn-hangzhou\nsignatures: []\nbindings:\n" + "".join(entries), encoding="utf-8")
    with pytest.raises(ManifestError) as caught:
        load_desired_state([path], env={})
    assert str(caught.value) == (f"{path}:{4 + 4 * 4000 + 1}: bindings[4000].stage: must be RELEASE or TEST "
                                 f"(got 'release')")


@pytest.mark.parametrize("ascii_text", [True, False])
@pytest.mark.parametrize("character", [chr(c) for c in [*range(0x20), 0x7F]] + list("!&*<%?"))
def test_a_control_character_or_an_indicator_sends_the_document_to_the_exact_reading(character: str,
                                                                                      ascii_text: bool) -> None:
    """Each character the fast reading refuses, or an indicator before a token, in ASCII text and in text that is
    not (which is checked another way)."""
    if character == "\n":
        return
    other = "" if ascii_text else "é"
    token = f" {character}x" if character in "!&*%?" else character
    if character == "<":
        token = "<<"
    text = f"region: cn-hangzhou\nignore: [a{other}, b{token}]\n"
    assert read_fast(text) is None
    assert read_fast(text.replace(token, "c")) is not None


@settings(max_examples=400, deadline=None)
@given(scalar=st.text(alphabet="0123456789abcdfxo_.:-+eET Z", min_size=1, max_size=8))
@example(scalar="1:30")
@example(scalar="2020-01-01")
@example(scalar="1_000")
@example(scalar="0o17")
@example(scalar="1.5e+3")
@example(scalar="0xfa")
@example(scalar="3a5f")
def test_a_plain_scalar_of_digits_and_letters_is_read_fast_only_as_the_exact_reading_reads_it(scalar: str) -> None:
    # Numbers and dates that PyYAML types and yaml_rs may leave a string (0o17, 1_000, 1:30, 2020-01-01), beside
    # hexadecimal-looking ids that neither types.
    text = f"region: cn-hangzhou\nkey: {scalar}\n"
    try:
        _, exact = read_exact("m.yaml", text)
    except ManifestError:
        return
    fast = read_fast(text)
    assert fast is None or fast[0] == exact
