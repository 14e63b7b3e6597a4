"""Fuzzing the manifest loader: whatever the bytes or the structure, the outcome is a loaded state or one
InputError (ManifestError) of one line that names the file - never another exception."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.errors import InputError
from reconciler.manifest import load_desired_state

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ENV = {"ORDERS_SECRET": "ordersSecret01", "BAD_SECRET": "1"}

MANIFEST_WORDS = ["region", "signatures", "bindings", "prune", "ignore", "name", "key", "secret", "group",
                  "stage", "signature", "apis", "cn-hangzhou", "RELEASE", "TEST", "PRE", "orders_backend",
                  "${env:ORDERS_SECRET}", "${env:MISSING}", "${env:BAD_SECRET}", "0009db9c828549768a200320714b8930"]
YAML_PIECES = ["\n", "  ", "- ", ": ", "[", "]", "{", "}", ",", "&a ", "*a", "!!str ", "!!python/name:os.system ",
               "---\n", "...\n", "'", '"', "#", "|\n", ">\n", "? ", "%YAML 1.1\n", "\t", "\x00", "\ufeff", "é"]


def outcome(text: str | bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.yaml"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            load_desired_state([path], env=ENV)
        except InputError as exc:
            message = str(exc)
            assert message.startswith(str(path)), message
            assert "\n" not in message and "\r" not in message, message
            assert "ordersSecret01" not in message


@FUZZ
@given(st.lists(st.sampled_from(MANIFEST_WORDS + YAML_PIECES), max_size=60).map("".join))
def test_yaml_ish_text(text: str) -> None:
    outcome(text)


@FUZZ
@given(st.text(max_size=300))
def test_any_text(text: str) -> None:
    outcome(text.encode("utf-8", errors="surrogatepass"))


@FUZZ
@given(st.binary(max_size=300))
def test_any_bytes(data: bytes) -> None:
    outcome(data)


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20),
                    st.sampled_from(MANIFEST_WORDS))
KEYS = st.one_of(st.sampled_from(MANIFEST_WORDS), st.text(max_size=10))
VALUES = st.recursive(SCALARS, lambda children: st.one_of(st.lists(children, max_size=4),
                                                          st.dictionaries(KEYS, children, max_size=5)),
                      max_leaves=25)


def manifest_like() -> st.SearchStrategy[dict[str, Any]]:
    signature = st.fixed_dictionaries({"name": VALUES, "key": VALUES, "secret": VALUES},
                                      optional={"extra": VALUES})
    binding = st.fixed_dictionaries({"group": VALUES, "stage": VALUES, "signature": VALUES, "apis": VALUES})
    return st.fixed_dictionaries(
        {"region": st.one_of(st.just("cn-hangzhou"), VALUES)},
        optional={"signatures": st.one_of(st.lists(signature, max_size=3), VALUES),
                  "bindings": st.one_of(st.lists(binding, max_size=3), VALUES),
                  "prune": VALUES, "ignore": VALUES})


@FUZZ
@given(st.one_of(VALUES, manifest_like()))
def test_random_structures_dumped_to_yaml(data: Any) -> None:
    outcome(yaml.safe_dump(data, allow_unicode=True))
