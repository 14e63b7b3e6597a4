"""Promises about the repository itself: committed generated files are fresh, commands documented work."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from reconciler.manifest import manifest_json_schema
from tests.support.paths import ROOT


def test_manifest_schema_file_is_fresh() -> None:
    committed = json.loads((ROOT / "manifests" / "schema.json").read_text())
    assert committed == manifest_json_schema(), "manifests/schema.json is stale: run `reconciler schema`"


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = re.search(r"^(python3 -m venv .venv && .*pytest)$", readme, re.MULTILINE)
    assert command is not None, "README lost its test command"
    assert command.group(1) in ci.splitlines()


def test_python_dash_m_reconciler() -> None:
    result = subprocess.run([sys.executable, "-m", "reconciler", "--version"], capture_output=True, text=True,
                            check=False)
    assert (result.returncode, result.stdout) == (0, "reconciler, version 0.1.0\n")


def test_demo_manifests_validate() -> None:
    result = subprocess.run([sys.executable, "-m", "reconciler", "validate", "manifests/", "--env-file",
                             "examples/demo.env"], capture_output=True, text=True, check=False, cwd=ROOT)
    assert (result.returncode, result.stderr) == (0, "")
