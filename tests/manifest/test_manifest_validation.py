"""Every manifest rule, through the real command line: exact one-line message, exit code 1."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.cli import CliResult
from tests.support.demo import ORDERS_MANIFEST as BASE

ENV = {"ORDERS_SECRET": "ordersSecret01"}

CASES = [
    ("unknown top-level field", BASE.replace("signatures:\n", "prunee: true\nsignatures:\n", 1),
     "2: prunee: unknown field 'prunee'"),
    ("unknown signature field", BASE.replace("    key: ordersKey01\n", "    key: ordersKey01\n    keyy: x\n"),
     "5: signatures[0].keyy: unknown field 'keyy'"),
    ("key of the wrong type", BASE.replace("key: ordersKey01", "key: 12345678"),
     "4: signatures[0].key: expected a string, got an integer (quote it)"),
    ("an all-digit API id unquoted", BASE.replace("apis: [orders_list]", "apis: [00000000000000000000000000000001]"),
     "10: bindings[0].apis[0]: expected a string, got an integer (quote it)"),
    ("prune of the wrong type", BASE.replace("signatures:\n", "prune: maybe\nsignatures:\n", 1),
     "2: prune: expected true or false, got a string"),
    ("apis not a list", BASE.replace("apis: [orders_list]", "apis: orders_list"),
     "10: bindings[0].apis: expected a list, got a string"),
    ("empty name", BASE.replace("name: orders_backend", 'name: ""'),
     "3: signatures[0].name: signature name must not be empty"),
    ("name against the vendor's rule", BASE.replace("name: orders_backend", "name: 9orders"),
     "3: signatures[0].name: signature name '9orders' breaks the vendor's rule: "
     "4-50 characters: letters, Chinese characters, digits or '_', starting with a letter or a Chinese "
     "character"),
    ("key against the vendor's rule", BASE.replace("key: ordersKey01", "key: ord"),
     "4: signatures[0].key: key 'ord' breaks the vendor's rule: "
     "6-20 characters: letters, digits or '_', starting with a letter"),
    ("literal secret against the vendor's rule", BASE.replace("${env:ORDERS_SECRET}", "'1short'"),
     "5: signatures[0].secret: literal secret breaks the vendor's rule: "
     "6-30 characters: letters, digits or _ @ # ! *, starting with a letter"),
    ("malformed env reference", BASE.replace("${env:ORDERS_SECRET}", "${ORDERS_SECRET}"),
     "5: signatures[0].secret: malformed reference: write the whole value as ${env:VARIABLE_NAME}"),
    ("stage outside RELEASE/TEST", BASE.replace("stage: RELEASE", "stage: PROD"),
     "8: bindings[0].stage: must be RELEASE or TEST (got 'PROD')"),
    ("stage PRE, which cannot be read back or unbound", BASE.replace("stage: RELEASE", "stage: PRE"),
     "8: bindings[0].stage: stage PRE cannot be managed: the vendor documents reading (DescribeApiSignatures) "
     "and removing (RemoveSignatureApis) bindings only for RELEASE and TEST"),
    ("binding to an undeclared signature", BASE.replace("signature: orders_backend", "signature: other_backend"),
     "10: signature: binding refers to signature 'other_backend', which no manifest of region cn-hangzhou "
     "declares"),
    ("empty apis", BASE.replace("apis: [orders_list]", "apis: []"),
     "10: bindings[0].apis: must list at least one item"),
    ("missing region", BASE.replace("region: cn-hangzhou\n", ""),
     "1: region: required field is missing"),
    ("missing key", BASE.replace("    key: ordersKey01\n", ""),
     "3: signatures[0].key: required field is missing"),
    ("bad region", BASE.replace("region: cn-hangzhou", "region: Hangzhou"),
     "1: region: 'Hangzhou' is not a region id (e.g. cn-hangzhou)"),
    ("duplicate key in a mapping", BASE.replace("    key: ordersKey01\n", "    key: ordersKey01\n    key: other01\n"),
     "5: key: duplicate key"),
    ("YAML syntax error", BASE.replace("apis: [orders_list]", "apis: [orders_list"),
     "11: YAML syntax error: expected ',' or ']', but got '<stream end>'"),
    ("a list instead of a mapping", "- region: cn-hangzhou\n",
     "1: a manifest must be a mapping with 'region', got a list"),
    ("duplicate signature in one file",
     BASE.replace("bindings:\n", "  - name: orders_backend\n    key: ordersKey02\n    secret: ${env:ORDERS_SECRET}\n"
                  "bindings:\n"),
     "6: signatures[1].name: signature 'orders_backend' is already declared at {path}:3"),
    ("one API given two signatures",
     BASE.replace("bindings:\n", "  - name: other_backend\n    key: otherKey01\n    secret: ${env:ORDERS_SECRET}\n"
                  "bindings:\n")
     + "  - group: 0009db9c828549768a200320714b8930\n    stage: RELEASE\n    signature: other_backend\n"
       "    apis: [orders_list]\n",
     "17: bindings[1].apis[0]: API 'orders_list' in group 0009db9c828549768a200320714b8930 stage RELEASE is given "
     "two signatures: 'other_backend' here and 'orders_backend' at {path}:13"),
    ("declared and ignored", BASE.replace("signatures:\n", "ignore: [orders_*]\nsignatures:\n", 1),
     "4: name: signature 'orders_backend' is declared and also matched by an ignore pattern"),
]


@pytest.mark.parametrize(("text", "expected"), [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_each_rule_is_one_line_naming_file_line_and_field(
    cli: Callable[..., CliResult], write: Callable[[str, str], Path], text: str, expected: str
) -> None:
    path = write("m.yaml", text)
    result = cli("validate", str(path), env=ENV)
    assert result.code == 1
    assert result.out == ""
    assert result.err == f"Error: {path}:{expected.replace('{path}', str(path))}\n"


def test_base_manifest_is_valid(cli: Callable[..., CliResult], write: Callable[[str, str], Path]) -> None:
    path = write("m.yaml", BASE)
    result = cli("validate", str(path), env=ENV)
    assert (result.code, result.err) == (0, "")
    assert result.out == "Valid: 1 file(s), 1 region(s), 1 signature(s), 1 binding(s).\n"


def test_unset_variable_names_the_variable(cli: Callable[..., CliResult], write: Callable[[str, str], Path],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORDERS_SECRET", raising=False)
    path = write("m.yaml", BASE)
    result = cli("validate", str(path))
    assert result.code == 1
    assert result.err == (f"Error: {path}:5: signatures[0].secret: environment variable ORDERS_SECRET is not set "
                          "(set it, use --env-file, or plan with --skip-secrets)\n")


def test_variable_value_against_the_vendor_rule_is_not_echoed(
    cli: Callable[..., CliResult], write: Callable[[str, str], Path]
) -> None:
    path = write("m.yaml", BASE)
    result = cli("validate", str(path), env={"ORDERS_SECRET": "9badValue!!"})
    assert result.code == 1
    assert "9badValue" not in result.err
    assert result.err == (f"Error: {path}:5: signatures[0].secret: the value of ORDERS_SECRET breaks the vendor's "
                          "rule: 6-30 characters: letters, digits or _ @ # ! *, starting with a letter\n")


def test_env_file_supplies_variables_and_the_environment_wins(
    cli: Callable[..., CliResult], write: Callable[[str, str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ORDERS_SECRET", raising=False)
    path = write("m.yaml", BASE)
    env_file = write("demo.env", "ORDERS_SECRET=ordersSecret01\n")
    assert cli("validate", str(path), "--env-file", str(env_file)).code == 0
    bad_env_file = write("bad.env", "ORDERS_SECRET=1bad\n")
    assert cli("validate", str(path), "--env-file", str(bad_env_file)).code == 1
    assert cli("validate", str(path), "--env-file", str(bad_env_file), env=ENV).code == 0


def test_skip_secrets_needs_no_variables(cli: Callable[..., CliResult], write: Callable[[str, str], Path],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORDERS_SECRET", raising=False)
    path = write("m.yaml", BASE)
    result = cli("validate", str(path), "--skip-secrets")
    assert result.code == 0
    assert result.out.endswith("Secrets were not checked (--skip-secrets).\n")


def test_literal_secret_is_allowed_with_a_warning(cli: Callable[..., CliResult],
                                                   write: Callable[[str, str], Path]) -> None:
    path = write("m.yaml", BASE.replace("${env:ORDERS_SECRET}", "plainSecret01"))
    result = cli("validate", str(path))
    assert result.code == 0
    assert result.err == (f"Warning: {path}:5: signatures[0].secret: literal secret; use ${{env:VARIABLE}} so the "
                          "secret is not kept in the repository\n")
    assert "plainSecret01" not in result.out + result.err


def test_empty_file(cli: Callable[..., CliResult], write: Callable[[str, str], Path]) -> None:
    path = write("m.yaml", "# nothing here\n")
    result = cli("validate", str(path))
    assert (result.code, result.err) == (1, f"Error: {path}: file is empty (expected a manifest with 'region')\n")


def test_not_utf8(cli: Callable[..., CliResult], tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_bytes(b"region: cn-hangzhou\nsignatures: \xff\xfe\n")
    result = cli("validate", str(path))
    assert (result.code, result.err) == (1, f"Error: {path}:2: file is not UTF-8 text\n")


def test_duplicate_signature_across_files_names_both(
    cli: Callable[..., CliResult], write: Callable[[str, str], Path]
) -> None:
    first = write("a/one.yaml", BASE)
    second = write("a/two.yaml", "region: cn-hangzhou\nsignatures:\n  - name: orders_backend\n"
                                 "    key: ordersKey02\n    secret: ${env:ORDERS_SECRET}\n")
    result = cli("validate", str(first.parent), env=ENV)
    assert result.code == 1
    assert result.err == (f"Error: {second}:3: signatures[0].name: signature 'orders_backend' is already "
                          f"declared at {first}:3\n")


def test_files_of_one_region_merge(cli: Callable[..., CliResult], write: Callable[[str, str], Path]) -> None:
    first = write("a/one.yaml", BASE)
    write("a/two.yml", "region: cn-hangzhou\nbindings:\n  - group: 0009db9c828549768a200320714b8930\n"
                       "    stage: TEST\n    signature: orders_backend\n    apis: [orders_list]\n")
    write("a/notes.txt", "not a manifest")
    result = cli("validate", str(first.parent), env=ENV)
    assert result.out == "Valid: 2 file(s), 1 region(s), 1 signature(s), 2 binding(s).\n"


def test_prune_conflict_across_files_names_both(cli: Callable[..., CliResult],
                                                write: Callable[[str, str], Path]) -> None:
    first = write("a/one.yaml", "prune: true\n" + BASE)
    second = write("a/two.yaml", "region: cn-hangzhou\nprune: false\n")
    result = cli("validate", str(first.parent), env=ENV)
    assert result.err == (f"Error: {second}:2: prune: prune: false conflicts with prune: true in {first}:1 "
                          "(same region)\n")


def test_missing_path(cli: Callable[..., CliResult], tmp_path: Path) -> None:
    result = cli("validate", str(tmp_path / "nope.yaml"))
    assert (result.code, result.err) == (1, f"Error: {tmp_path / 'nope.yaml'}: no such file or folder\n")


def test_usage_error_exits_1_not_2(cli: Callable[..., CliResult]) -> None:
    result = cli("plan")
    assert result.code == 1
    assert "Missing argument 'PATHS...'" in result.err
