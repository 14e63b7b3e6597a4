"""What a new user meets first: options where they are expected, env files, every manifest error at once,
clear messages for empty secrets, subfolders, emulator and export runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import CliResult

Cli = Callable[..., CliResult]
ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "manifests"
DEMO_STATE = ROOT / "examples" / "emulator-state.yaml"
DEMO_ENV = ROOT / "examples" / "demo.env"

BASE = """\
region: cn-hangzhou
signatures:
  - name: orders_backend
    key: ordersKey01
    secret: ${env:ORDERS_SECRET}
bindings:
  - group: 0009db9c828549768a200320714b8930
    stage: RELEASE
    signature: orders_backend
    apis: [orders_list]
"""


@pytest.fixture(autouse=True)
def _no_demo_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ORDERS_SECRET", "PAYMENTS_SECRET", "INVENTORY_SECRET", "ORDERS_BACKEND_SECRET",
                 "PAYMENTS_BACKEND_SECRET", "INVENTORY_BACKEND_SECRET", "GITHUB_ACTIONS", "NO_COLOR",
                 "ALIBABA_CLOUD_PROFILE"):
        monkeypatch.delenv(name, raising=False)


# ---------------------------------------------------------------- env files


def test_every_env_file_is_read_later_ones_win_and_the_environment_wins_over_all(
        cli: Cli, write: Callable[[str, str], Path]) -> None:
    manifest = write("m.yaml", THREE_UNSET)
    first = write("a.env", "ORDERS_SECRET=bad\nPAYMENTS_SECRET=paymentsSecret01\n")
    second = write("b.env", "ORDERS_SECRET=ordersSecret01\n")
    # Only the first file sets PAYMENTS_SECRET; only the environment sets INVENTORY_SECRET; the second file
    # overrides the first's bad ORDERS_SECRET.
    result = cli("validate", str(manifest), "--env-file", str(first), "--env-file", str(second),
                 env={"INVENTORY_SECRET": "inventorySecret01"})
    assert (result.code, result.err) == (0, "")
    # The environment wins over every file.
    result = cli("validate", str(manifest), "--env-file", str(first), "--env-file", str(second),
                 env={"INVENTORY_SECRET": "inventorySecret01", "ORDERS_SECRET": "x"})
    assert result.code == 1
    assert "the value of ORDERS_SECRET breaks the vendor's rule" in result.err


def test_env_file_help_says_how_files_combine(cli: Cli) -> None:
    for command in ("validate", "plan", "apply"):
        text = " ".join(cli(command, "--help").out.split())
        assert ("Repeatable: every file is read in order, a later file wins over an earlier one, and the "
                "environment wins over all files.") in text


def test_a_secret_variable_set_but_empty_says_it_is_empty(cli: Cli, write: Callable[[str, str], Path]) -> None:
    manifest = write("m.yaml", BASE)
    result = cli("validate", str(manifest), env={"ORDERS_SECRET": ""})
    assert (result.code, result.out) == (1, "")
    assert result.err == (f"Error: {manifest}:5: signatures[0].secret: environment variable ORDERS_SECRET is set "
                          f"but empty (in CI: is the secret defined for this repository and job?)\n")


# ---------------------------------------------------------------- validate reports every error


THREE_UNSET = """\
region: cn-hangzhou
signatures:
  - name: orders_backend
    key: ordersKey01
    secret: ${env:ORDERS_SECRET}
  - name: payments_backend
    key: paymentsKey01
    secret: ${env:PAYMENTS_SECRET}
  - name: inventory_backend
    key: inventoryKey01
    secret: ${env:INVENTORY_SECRET}
bindings:
  - group: 0009db9c828549768a200320714b8930
    stage: RELEASE
    signature: orders_backend
    apis: [orders_list]
"""


def test_validate_names_every_unset_secret_one_line_each(cli: Cli, write: Callable[[str, str], Path]) -> None:
    manifest = write("m.yaml", THREE_UNSET)
    result = cli("validate", str(manifest))
    hint = "is not set (set it, use --env-file, or plan with --skip-secrets)"
    assert (result.code, result.out) == (1, "")
    assert result.err.splitlines() == [
        f"Error: {manifest}:5: signatures[0].secret: environment variable ORDERS_SECRET {hint}",
        f"Error: {manifest}:8: signatures[1].secret: environment variable PAYMENTS_SECRET {hint}",
        f"Error: {manifest}:11: signatures[2].secret: environment variable INVENTORY_SECRET {hint}",
    ]


def test_validate_reports_errors_across_files_and_each_is_an_annotation_in_actions(
        cli: Cli, write: Callable[[str, str], Path], tmp_path: Path) -> None:
    write("m/a.yaml", BASE.replace("stage: RELEASE", "stage: PROD"))
    write("m/b.yaml", "region: cn-hangzhou\nsignatures:\n  - name: x1\n    key: k\n    secret: s\n")
    write("m/c.yaml", "region: [unclosed\n")
    folder = tmp_path / "m"
    result = cli("validate", str(folder), env={"ORDERS_SECRET": "ordersSecret01", "GITHUB_ACTIONS": "true"})
    rule = "breaks the vendor's rule"
    assert result.code == 1
    errors = result.err.splitlines()
    assert errors[0] == f"Error: {folder}/a.yaml:8: bindings[0].stage: must be one of RELEASE, TEST, PRE (got 'PROD')"
    assert errors[1].startswith(f"Error: {folder}/b.yaml:3: signatures[0].name: signature name 'x1' {rule}")
    assert errors[2].startswith(f"Error: {folder}/b.yaml:4: signatures[0].key: key 'k' {rule}")
    assert errors[3].startswith(f"Error: {folder}/b.yaml:5: signatures[0].secret: literal secret {rule}")
    assert errors[4].startswith(f"Error: {folder}/c.yaml:2: YAML syntax error")
    assert len(errors) == 5
    annotations = result.out.splitlines()
    assert len(annotations) == 5
    assert annotations[0].startswith(f"::error file={folder}/a.yaml,line=8,title=reconciler%3A bindings[0].stage::")


def test_validate_caps_the_list_and_says_how_many_more(cli: Cli, write: Callable[[str, str], Path]) -> None:
    signatures = "".join(f"  - name: backend_{i:02d}\n    key: key{i:02d}ok\n    secret: ${{env:UNSET_{i:02d}}}\n"
                         for i in range(25))
    manifest = write("m.yaml", f"region: cn-hangzhou\nsignatures:\n{signatures}")
    result = cli("validate", str(manifest))
    lines = result.err.splitlines()
    assert result.code == 1
    assert len(lines) == 21
    assert lines[19].startswith(f"Error: {manifest}:62: signatures[19].secret: environment variable UNSET_19")
    assert lines[20] == "Error: ... and 5 more error(s) not shown; fix these and run again"


def test_a_broken_file_does_not_cause_reference_errors_in_the_others(
        cli: Cli, write: Callable[[str, str], Path], tmp_path: Path) -> None:
    # b.yaml binds to a signature declared in a.yaml, which cannot be read: only a.yaml's error is real.
    write("m/a.yaml", "region: cn-hangzhou\nsignatures: [\n")
    write("m/b.yaml", BASE.replace("signatures:\n  - name: orders_backend\n    key: ordersKey01\n"
                                   "    secret: ${env:ORDERS_SECRET}\n", "signatures: []\n"))
    result = cli("validate", str(tmp_path / "m"))
    assert result.code == 1
    assert len(result.err.splitlines()) == 1
    assert result.err.startswith(f"Error: {tmp_path}/m/a.yaml:")


# ---------------------------------------------------------------- subfolders


def test_a_subfolder_with_manifests_is_refused_in_one_line(cli: Cli, write: Callable[[str, str], Path],
                                                          tmp_path: Path) -> None:
    write("m2/a.yaml", BASE)
    write("m2/staging/x.yaml", BASE)
    write("m2/.github/workflow.yml", "on: push\n")  # hidden folders are not manifests
    write("m2/notes/readme.txt", "no manifests here\n")
    result = cli("validate", str(tmp_path / "m2"), "--skip-secrets")
    assert (result.code, result.out) == (1, "")
    assert result.err == (f"Error: {tmp_path}/m2/staging: subfolders are not read; give it as a PATH of its own "
                          f"to plan it together with {tmp_path}/m2, or move its manifests out\n")


def test_a_subfolder_given_as_a_path_of_its_own_is_read(cli: Cli, write: Callable[[str, str], Path],
                                                       tmp_path: Path) -> None:
    write("m2/a.yaml", BASE)
    write("m2/staging/x.yaml", BASE.replace("orders", "staging"))
    result = cli("validate", str(tmp_path / "m2"), str(tmp_path / "m2" / "staging"), "--skip-secrets")
    assert (result.code, result.err) == (0, "")
    assert result.out.startswith("Valid: 2 file(s), 1 region(s), 2 signature(s), 2 binding(s).")


# ---------------------------------------------------------------- options


def test_debug_works_after_the_command_name(cli: Cli) -> None:
    result = cli("validate", str(MANIFESTS), "--debug", "--skip-secrets")
    assert (result.code, result.err) == (0, "")
    assert cli("--debug", "validate", str(MANIFESTS), "--skip-secrets").code == 0
    for command in ("plan", "apply", "export", "validate", "schema", "emulator"):
        assert "--debug" in cli(command, "--help").out


def test_output_choices_are_case_insensitive_and_explained(cli: Cli) -> None:
    result = cli("plan", str(MANIFESTS), "--emulator", str(DEMO_STATE), "--env-file", str(DEMO_ENV), "-o", "JSON",
                 "-q")
    assert result.code == 0
    assert result.out.startswith('{\n  "format_version": "1"')
    help_text = " ".join(cli("plan", "--help").out.split())
    assert ("-o, --output [text|json|markdown] text for a terminal, json for a program (docs/plan.schema.json), "
            "markdown for a pull-request comment.") in help_text


def test_no_color_is_an_option_of_every_command_that_prints_a_plan(cli: Cli) -> None:
    for command in ("plan", "apply"):
        assert "--no-color" in cli(command, "--help").out


def test_apply_has_no_skip_secrets(cli: Cli) -> None:
    assert "--skip-secrets" not in cli("apply", "--help").out
    result = cli("apply", str(MANIFESTS), "--skip-secrets")
    assert result.code == 1
    assert result.err.endswith("Error: No such option '--skip-secrets'.\n")


def test_top_level_help_shows_whole_command_descriptions(cli: Cli) -> None:
    text = " ".join(cli("--help").out.split())
    assert "apply Make the live state match the manifests: create, update, rebind, bind, unbind, delete " \
           "(prune: true)." in text
    assert "export Write the live state of a region as manifests; a plan of them shows no changes." in text
    assert "Make the live state match the manifests: create, update, rebind,..." not in text


def test_plan_out_file_prints_the_summary_line_on_stderr(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "plan.md"
    result = cli("plan", str(MANIFESTS), "--emulator", str(DEMO_STATE), "--env-file", str(DEMO_ENV),
                 "-o", "markdown", "--out", str(out), "-q")
    assert (result.code, result.out) == (0, "")
    assert result.err == "Plan: 1 to create, 1 to update, 0 to delete, 2 to bind, 1 to unbind, 1 to rebind, " \
                         "1 unmanaged.\n"
    assert out.read_text(encoding="utf-8").startswith("### reconciler plan")


def test_emulator_with_profile_is_refused_in_one_true_line(cli: Cli) -> None:
    result = cli("plan", str(MANIFESTS), "--emulator", str(DEMO_STATE), "--env-file", str(DEMO_ENV),
                 "--profile", "prod")
    assert (result.code, result.out) == (1, "")
    assert result.err == ("Error: give --profile or --emulator, not both: the embedded emulator uses credentials "
                          "made up for the run\n")
    # A profile from the environment is not the user's choice for this run: it is left unused.
    result = cli("plan", str(MANIFESTS), "--emulator", str(DEMO_STATE), "--env-file", str(DEMO_ENV), "-q",
                 env={"ALIBABA_CLOUD_PROFILE": "prod"})
    assert result.code == 0


# ---------------------------------------------------------------- apply


def test_apply_with_nothing_to_do_needs_no_terminal(cli: Cli, tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text("region: cn-hangzhou\nsignatures:\n  - name: orders_backend\n    key: ordersKey01\n"
                        "    secret: ordersSecret01\n",
                        encoding="utf-8")
    state = tmp_path / "state.yaml"
    state.write_text("region: cn-hangzhou\nsignatures:\n"
                     "  - {name: orders_backend, key: ordersKey01, secret: ordersSecret01}\n", encoding="utf-8")
    result = cli("apply", str(manifest), "--emulator", str(state), "-q")  # stdin is not a terminal under pytest
    assert (result.code, result.out, result.err) == (0, "No changes. Live state matches the manifests.\n", "")


def test_apply_to_the_embedded_emulator_says_the_changes_are_gone_before_asking(
        cli: Cli, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import io
    import sys

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    said_before_prompt: list[str] = []

    def prompt(*args: object, **kwargs: object) -> str:
        said_before_prompt.append(capsys.readouterr().err)
        return "no"

    monkeypatch.setattr(sys, "stdin", Terminal())
    monkeypatch.setattr("click.prompt", prompt)
    result = cli("apply", str(MANIFESTS), "--emulator", str(DEMO_STATE), "--env-file", str(DEMO_ENV), "-q")
    assert result.code == 1
    assert said_before_prompt == [
        f"Note: the changes go to an embedded emulator and are gone when this command ends; to keep them, serve "
        f"{DEMO_STATE} with `reconciler emulator --save` and use --endpoint.\n"]
    assert result.err == "Error: apply cancelled; nothing was changed\n"
