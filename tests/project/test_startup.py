"""`--version` and `validate` import only what they use: not the HTTP stack, the emulator or deepdiff.

Start-up time itself is measured by hand (benchmarks/startup.py); this pins the behaviour behind it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import ROOT

HEAVY = ("uvicorn", "aiohttp", "httpx", "httpx_aiohttp", "deepdiff", "asyncio", "reconciler.emulator",
         "reconciler.aliyun", "reconciler.fetcher", "reconciler.live", "reconciler.differ", "reconciler.plan",
         "alibabacloud_credentials")


def imported_by(*argv: str) -> tuple[int, list[str]]:
    """Exit code of `reconciler ARGV` in a fresh interpreter, and the heavy modules it had imported."""
    code = ("import json, sys\nfrom reconciler.cli import run\ncode = run(sys.argv[1:])\n"
            f"heavy = sorted(m for m in sys.modules if any(m == h or m.startswith(h + '.') for h in {HEAVY!r}))\n"
            "print(json.dumps([code, heavy]), file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code, *argv], cwd=ROOT, capture_output=True, text=True, check=True)
    exit_code, heavy = json.loads(done.stderr.strip().splitlines()[-1])
    return exit_code, heavy


@pytest.mark.parametrize("argv", [
    ("--version",),
    ("validate", "manifests/", "--env-file", "examples/demo.env"),
    ("validate", "manifests/", "--skip-secrets"),
])
def test_version_and_validate_import_no_heavy_module(argv: tuple[str, ...]) -> None:
    exit_code, heavy = imported_by(*argv)
    assert exit_code == 0
    assert heavy == []


def test_the_emulator_command_is_still_there_when_named() -> None:
    exit_code, heavy = imported_by("emulator", "--help")
    assert exit_code == 0
    assert "reconciler.emulator" in heavy


def test_help_lists_every_command() -> None:
    done = subprocess.run([sys.executable, "-m", "reconciler", "--help"], cwd=ROOT, capture_output=True, text=True,
                          check=True)
    listed = re.findall(r"^  (\S+)  ", done.stdout.split("Commands:")[1], re.MULTILINE)
    assert listed == ["apply", "emulator", "env-names", "export", "plan", "scan", "schema", "validate"]


def test_a_plan_offline_imports_no_api_client(tmp_path: Path) -> None:
    """`plan --snapshot` reads nothing over the network: no HTTP stack, no API client, no emulator."""
    snapshot = tmp_path / "snapshot.json"
    subprocess.run([sys.executable, "-m", "reconciler", "plan", "manifests/", "--emulator",
                    "examples/emulator-state.yaml", "--env-file", "examples/demo.env", "-q", "--save-snapshot",
                    str(snapshot)], cwd=ROOT, capture_output=True, check=True)
    exit_code, heavy = imported_by("plan", "manifests/", "--snapshot", str(snapshot), "--env-file",
                                   "examples/demo.env", "-q")
    assert exit_code == 0
    client_stack = ("uvicorn", "aiohttp", "httpx", "reconciler.emulator", "reconciler.aliyun", "reconciler.fetcher",
                    "reconciler.live", "alibabacloud_credentials")
    assert [m for m in heavy if m.split(".")[0] in client_stack or m.startswith(client_stack)] == []
