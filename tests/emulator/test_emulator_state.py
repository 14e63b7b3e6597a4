"""The emulator's state file: strict validation, one-line errors, deterministic ids, dump round trip."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from reconciler.emulator.state import EmulatorState, derived_id
from reconciler.errors import InputError
from tests.support.emulator import bindings_of
from tests.support.paths import EXAMPLES

EXAMPLE = EXAMPLES / "emulator-state.yaml"

BASE = """\
region: cn-hangzhou
signatures:
  - {name: orders_backend, key: ordersKey01, secret: ordersSecret01}
groups:
  - id: 0009db9c828549768a200320714b8930
    name: orders
    apis:
      - {id: 46fbb52840d146f186e38e8e70fc8c90, name: orders_list}
      - {name: orders_get}
    bindings:
      RELEASE: {orders_list: orders_backend}
"""


def test_example_file_loads_with_its_bindings() -> None:
    state = EmulatorState.from_file(EXAMPLE)
    assert state.region == "cn-hangzhou"
    assert bindings_of(state, "0009db9c828549768a200320714b8930", "RELEASE") == {
        "orders_list": "orders_backend", "orders_get": "payments_backend", "orders_delete": "orders_backend",
        "orders_update": "orders_backend", "orders_partner_feed": "legacy_partner_v1"}
    assert bindings_of(state, "0009db9c828549768a200320714b8930", "TEST") == {
        "orders_list": "orders_backend", "orders_get": "orders_backend"}
    assert bindings_of(state, "5d1f3e0a7b8c4d2e9f6a1b3c5d7e9f01", "RELEASE") == {
        "payments_charge": "payments_backend", "payments_refund": "payments_backend"}


def test_missing_ids_are_derived_from_names_the_same_way_every_time(write: Callable[[str, str], Path]) -> None:
    path = write("state.yaml", BASE)
    first, second = EmulatorState.from_file(path), EmulatorState.from_file(path)
    ids = [s.signature_by_name("orders_backend").id for s in (first, second)]  # type: ignore[union-attr]
    assert ids == [derived_id("signature", "orders_backend")] * 2
    apis, _ = first.describe_apis("0009db9c828549768a200320714b8930", None, None, 1, 10)
    assert [(a.id, a.name) for a in apis] == [
        ("46fbb52840d146f186e38e8e70fc8c90", "orders_list"),
        (derived_id("api", "0009db9c828549768a200320714b8930", "orders_get"), "orders_get"),
    ]
    assert len(derived_id("group", "x")) == 32


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("region: cn-hangzhou", "region: cn-hangzhou\ncolour: blue"),
         "field 'colour': unknown field"),
        (lambda t: t.replace("key: ordersKey01", "key: k1"),
         "field 'signatures.0.key': must be 6-20 characters"),
        (lambda t: t.replace("name: orders_backend,", "name: 9orders,"),
         "field 'signatures.0.name': must be 4-50 characters"),
        (lambda t: t.replace("secret: ordersSecret01", "secret: 'orders secret'"),
         "field 'signatures.0.secret': must be 6-30 characters"),
        (lambda t: t.replace("RELEASE: {", "PROD: {"),
         "field 'groups.0.bindings.PROD.[key]': Input should be 'RELEASE', 'TEST' or 'PRE'"),
        (lambda t: t.replace("{orders_list: orders_backend}", "{orders_gone: orders_backend}"),
         "field 'groups.0.bindings.RELEASE.orders_gone': no API 'orders_gone' (name or id) in group 'orders'"),
        (lambda t: t.replace("{orders_list: orders_backend}", "{orders_list: nobody_here}"),
         "field 'groups.0.bindings.RELEASE.orders_list': signature 'nobody_here' is not declared"),
        (lambda t: t.replace("{orders_list: orders_backend}",
                             "{orders_list: orders_backend, 46fbb52840d146f186e38e8e70fc8c90: orders_backend}"),
         "API 'orders_list' is bound twice in RELEASE"),
        (lambda t: t.replace("{name: orders_get}", "{name: orders_list}"),
         "field 'groups.0.apis.1.name': API name 'orders_list' is declared twice in group 'orders'"),
        (lambda t: t + "  - {name: orders}\n", "field 'groups.1.name': group name 'orders' is declared twice"),
        (lambda t: t.replace("signatures:\n", "signatures:\n  - {name: orders_backend, key: otherKey01, "
                                              "secret: otherSecret01}\n"),
         "field 'signatures.1.name': signature name 'orders_backend' is declared twice"),
        (lambda t: t.replace("secret: ordersSecret01}", "secret: ordersSecret01, created: yesterday}"),
         "field 'signatures.0.created': must be a UTC time"),
        (lambda t: t.replace("key: ordersKey01", "key: 12345678"),
         "field 'signatures.0.key': Input should be a valid string"),
    ],
)
def test_state_file_errors_are_one_line_naming_file_and_field(
    write: Callable[[str, str], Path], edit: Callable[[str], str], message: str
) -> None:
    path = write("state.yaml", edit(BASE))
    with pytest.raises(InputError) as caught:
        EmulatorState.from_file(path)
    text = str(caught.value)
    assert "\n" not in text
    assert re.match(rf"{re.escape(str(path))}:\d+: field '", text), text
    assert message in text


def test_yaml_syntax_error_names_the_line(write: Callable[[str, str], Path]) -> None:
    path = write("state.yaml", "region: cn-hangzhou\nsignatures: [\n")
    with pytest.raises(InputError, match=rf"^{path}:3: emulator state is not valid YAML"):
        EmulatorState.from_file(path)


def test_state_that_is_not_a_mapping_is_refused(write: Callable[[str, str], Path]) -> None:
    with pytest.raises(InputError, match="emulator state must be a mapping"):
        EmulatorState.from_file(write("state.yaml", "- just a list\n"))


def test_unreadable_state_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read emulator state"):
        EmulatorState.from_file(tmp_path / "absent.yaml")


def test_secrets_stay_out_of_the_records_repr(write: Callable[[str, str], Path]) -> None:
    state = EmulatorState.from_file(write("state.yaml", BASE))
    assert "ordersSecret01" not in repr(state.signature_by_name("orders_backend"))


def test_dump_writes_the_current_state_back_in_the_same_format(tmp_path: Path) -> None:
    state = EmulatorState.from_file(EXAMPLE)
    created = state.create_signature("new_backend", "newKey01", "newSecret01")
    orders = "0009db9c828549768a200320714b8930"
    state.set_signature_apis(orders, created.id, "PRE", ["46fbb52840d146f186e38e8e70fc8c90"])
    out = tmp_path / "saved.yaml"
    state.dump_state(out)
    assert not list(tmp_path.glob(".*tmp*")), "the temporary file is renamed away"

    reloaded = EmulatorState.from_file(out)
    assert reloaded.to_spec() == state.to_spec()
    assert bindings_of(reloaded, orders, "PRE") == {"orders_list": "new_backend"}
    raw = yaml.safe_load(out.read_text())
    assert set(raw) == {"region", "signatures", "groups"}
    assert raw["signatures"][4] == {"name": "new_backend", "key": "newKey01", "secret": "newSecret01",
                                    "id": created.id, "created": created.created, "modified": created.modified}
    assert raw["groups"][0]["bindings"]["PRE"] == {"orders_list": "new_backend"}


def test_json_state_files_load_and_dump_like_yaml(tmp_path: Path) -> None:
    state = EmulatorState.from_file(EXAMPLE)
    out = tmp_path / "state.json"
    state.dump_state(out)
    assert json.loads(out.read_text())["region"] == "cn-hangzhou"
    assert EmulatorState.from_file(out).to_spec() == state.to_spec()


def test_json_syntax_error_names_the_line(write: Callable[[str, str], Path]) -> None:
    path = write("state.json", '{\n  "region": "cn-hangzhou",\n}\n')
    with pytest.raises(InputError, match=rf"^{path}:3: emulator state is not valid JSON"):
        EmulatorState.from_file(path)
