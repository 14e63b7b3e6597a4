"""`reconciler env-names`: the variables a CI job must provide, derived from the manifests themselves."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.support.cli import CliResult
from tests.support.paths import ROOT

Cli = Callable[..., CliResult]

SIGNATURES = """\
region: {region}
signatures:
  - {{name: a_backend, key: aKey0123456789, secret: "${{env:ZETA_SECRET}}"}}
  - {{name: b_backend, key: bKey0123456789, secret: "${{env:ALPHA_SECRET}}"}}
  - {{name: c_backend, key: cKey0123456789, secret: literalSecret01}}
"""


def test_lists_the_demo_manifests_variables_without_reading_them(cli: Cli) -> None:
    # None of the three is set: the command names them, it does not resolve them.
    result = cli("env-names", str(ROOT / "manifests"))
    assert (result.code, result.out, result.err) == (
        0, "INVENTORY_BACKEND_SECRET\nORDERS_BACKEND_SECRET\nPAYMENTS_BACKEND_SECRET\n", "")


def test_each_name_once_sorted_across_files_and_regions_and_no_literal_secret(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(SIGNATURES.format(region="cn-hangzhou"))
    (tmp_path / "b.yaml").write_text(SIGNATURES.format(region="cn-shanghai"))
    result = cli("env-names", str(tmp_path))
    assert (result.code, result.out) == (0, "ALPHA_SECRET\nZETA_SECRET\n")


def test_manifests_without_references_print_nothing(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("region: cn-hangzhou\nsignatures:\n"
                                     "  - {name: c_backend, key: cKey0123456789, secret: literalSecret01}\n")
    result = cli("env-names", str(tmp_path))
    assert (result.code, result.out) == (0, "")


def test_a_broken_manifest_is_one_line_per_error_and_exit_1(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("region: cn-hangzhou\nsignatures:\n"
                                     "  - {name: 1bad, key: aKey0123456789, secret: \"${env:A_SECRET}\"}\n")
    result = cli("env-names", str(tmp_path))
    assert (result.code, result.out) == (1, "")
    assert result.err.startswith(f"Error: {tmp_path / 'a.yaml'}:3: signatures[0].name: ")
    assert result.err.count("\n") == 1
