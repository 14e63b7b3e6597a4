"""The example GitHub workflows, run as GitHub would run their shell steps: the `run:` scripts are taken
from the YAML, run by bash with the runner's flags, against the demo emulator (a `reconciler` on PATH that
adds `--emulator`) and a fake `gh` that keeps the comments and issues the steps would post."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from reconciler.plan import plan_json_schema

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / "examples" / "github-actions"
DEMO_STATE = ROOT / "examples" / "emulator-state.yaml"
GOLDEN = Path(__file__).parent / "golden"
MARKER = "<!-- reconciler-plan -->"
DEMO_SECRETS = {"ORDERS_BACKEND_SECRET": "ordersSecret2026", "PAYMENTS_BACKEND_SECRET": "paymentsSecret2026",
                "INVENTORY_BACKEND_SECRET": "inventorySecret01"}
# GitHub's default for `shell: bash`.
BASH = ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c"]

pytestmark = pytest.mark.skipif(shutil.which("jq") is None, reason="the workflows use jq, as GitHub's runners have")


def workflow(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    return document


@dataclass
class Runner:
    """One job's workspace, with the PATH and files of a GitHub runner as far as the steps use them."""

    workspace: Path
    bin: Path
    gh_state: Path
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)

    def gh(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads(self.gh_state.read_text())
        return state

    def seed_gh(self, **values: Any) -> None:
        self.gh_state.write_text(json.dumps({"comments": [], "issues": [], "labels": [], "calls": [], **values}))

    def run(self, name: str, step_id: str, context: dict[str, str], state: Path = DEMO_STATE
            ) -> subprocess.CompletedProcess[str]:
        """Run step `step_id` of workflow `name`; every variable of the step's `env` must be in `context`."""
        document = workflow(name)
        job = next(iter(document["jobs"].values()))
        step = next(s for s in job["steps"] if s.get("id") == step_id)
        missing = set(step.get("env", {})) - set(context)
        assert not missing, f"the test gives no value for {missing}"
        output_file = self.workspace.parent / f"output-{step_id}"
        output_file.write_text("")
        env = {"PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}", "HOME": str(self.workspace.parent),
               "GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(self.workspace), "GITHUB_OUTPUT": str(output_file),
               "FAKE_GH_STATE": str(self.gh_state), "EMULATOR_STATE": str(state),
               **{k: str(v) for k, v in document.get("env", {}).items()},
               **{k: v for k, v in job.get("env", {}).items() if k in context},
               **{k: context[k] for k in step.get("env", {})}}
        done = subprocess.run([*BASH, step["run"]], cwd=self.workspace, env=env, capture_output=True, text=True,
                              timeout=60, check=False)
        self.outputs[step_id] = dict(line.split("=", 1) for line in output_file.read_text().splitlines())
        return done


@pytest.fixture
def runner(tmp_path: Path) -> Runner:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    gh = bin_dir / "gh"
    gh.write_text(f"#!/bin/sh\nexec {sys.executable} {Path(__file__).parent / 'workflow_fakes' / 'gh.py'} \"$@\"\n")
    # The workflow's `reconciler`, pointed at an embedded emulator unless it plans a saved snapshot.
    reconciler = bin_dir / "reconciler"
    reconciler.write_text(f"""#!/bin/bash
extra=(--emulator "$EMULATOR_STATE")
for arg in "$@"; do
  if [ "$arg" = --snapshot ]; then extra=(); fi
done
exec {sys.executable} -m reconciler "$@" "${{extra[@]}}"
""")
    for path in (gh, reconciler):
        path.chmod(0o755)
    workspace = tmp_path / "repo"
    workspace.mkdir()
    result = Runner(workspace, bin_dir, tmp_path / "gh.json")
    result.seed_gh()
    return result


def git(workspace: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=workspace,
                   check=True, capture_output=True)


# ------------------------------------------------------------------------------------------ the PR check

PR_CONTEXT = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "testid", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "testsecret",
              "FORK": "false", "BASE_REF": "main", "GH_TOKEN": "token", "REPO": "o/r", "PR_NUMBER": "7",
              **DEMO_SECRETS}


@pytest.fixture
def pull_request(runner: Runner) -> Runner:
    """The demo manifests committed on main (the base), then changed by the pull request: orders_update
    unbound and orders_create moved from RELEASE to TEST (introduced), orders_delete kept (resolves the
    base's unbind); the rest of the demo's drift is already pending on main."""
    manifests = runner.workspace / "manifests"
    manifests.mkdir()
    shutil.copy(ROOT / "manifests" / "hangzhou.yaml", manifests / "hangzhou.yaml")
    git(runner.workspace, "init", "-q", "-b", "main")
    git(runner.workspace, "add", "manifests")
    git(runner.workspace, "commit", "-q", "-m", "base")
    git(runner.workspace, "update-ref", "refs/remotes/origin/main", "HEAD")
    text = (manifests / "hangzhou.yaml").read_text()
    text = text.replace("apis: [orders_list, orders_get, orders_create, 46fbb52840d146f186e38e8e70fc8c94]",
                        "apis: [orders_list, orders_get, orders_delete]")
    text = text.replace("apis: [orders_list, orders_get]", "apis: [orders_list, orders_get, orders_create]")
    (manifests / "hangzhou.yaml").write_text(text)
    return runner


def run_pr_check(runner: Runner, context: dict[str, str] = PR_CONTEXT, state: Path = DEMO_STATE) -> dict[str, Any]:
    name = "plan-on-pr.yml"
    plan = runner.run(name, "plan", context, state)
    code = runner.outputs["plan"]["exitcode"]
    comment = runner.run(name, "comment", {**context, "PLAN_EXITCODE": code}, state)
    assert comment.returncode == 0, comment.stderr
    verdict = runner.run(name, "verdict", {"PLAN_EXITCODE": code})
    return {"plan": plan, "exitcode": code, "comment": comment, "verdict": verdict.returncode}


def test_pr_check_posts_the_plan_with_introduced_changes_apart_from_drift(pull_request: Runner) -> None:
    outcome = run_pr_check(pull_request)
    assert (outcome["exitcode"], outcome["verdict"]) == ("2", 0)  # changes pending: the check passes
    comments = pull_request.gh()["comments"]
    assert len(comments) == 1
    assert comments[0]["body"] == MARKER + "\n" + (GOLDEN / "workflow-pr-comment.md").read_text()


def test_pr_check_updates_its_one_comment_in_place(pull_request: Runner) -> None:
    run_pr_check(pull_request)
    manifest = pull_request.workspace / "manifests" / "hangzhou.yaml"
    manifest.write_text(manifest.read_text().replace("inventoryKey01", "inventoryKey02"))
    outcome = run_pr_check(pull_request)
    state = pull_request.gh()
    assert outcome["exitcode"] == "2"
    assert [c["id"] for c in state["comments"]] == [1000]
    assert "inventoryKey02" in state["comments"][0]["body"]
    writes = [call for call in state["calls"] if "--method" in call]
    assert [call[call.index("--method") + 1] for call in writes] == ["POST", "PATCH"]


NO_CHANGE_STATE = """\
region: cn-hangzhou
signatures:
  - {name: orders_backend, key: ordersKey0123456789, secret: ordersSecret2026}
groups:
  - id: 0009db9c828549768a200320714b8930
    name: orders
    apis: [{id: 46fbb52840d146f186e38e8e70fc8c90, name: orders_list}]
    bindings: {RELEASE: {orders_list: orders_backend}}
"""
NO_CHANGE_MANIFEST = """\
region: cn-hangzhou
signatures:
  - {name: orders_backend, key: ordersKey0123456789, secret: "${env:ORDERS_BACKEND_SECRET}"}
bindings:
  - {group: 0009db9c828549768a200320714b8930, stage: RELEASE, signature: orders_backend, apis: [orders_list]}
"""


@pytest.fixture
def matching(runner: Runner) -> Path:
    """Manifests that match their live state (on main and in the pull request); returns the state file."""
    (runner.workspace / "manifests").mkdir()
    (runner.workspace / "manifests" / "orders.yaml").write_text(NO_CHANGE_MANIFEST)
    git(runner.workspace, "init", "-q", "-b", "main")
    git(runner.workspace, "add", "manifests")
    git(runner.workspace, "commit", "-q", "-m", "base")
    git(runner.workspace, "update-ref", "refs/remotes/origin/main", "HEAD")
    state = runner.workspace.parent / "state.yaml"
    state.write_text(NO_CHANGE_STATE)
    return state


def test_pr_check_posts_nothing_without_changes_or_an_earlier_comment(runner: Runner, matching: Path) -> None:
    outcome = run_pr_check(runner, state=matching)
    assert (outcome["exitcode"], outcome["verdict"]) == ("0", 0)
    assert outcome["comment"].stdout == "No changes, and no earlier comment to update: nothing to post.\n"
    assert runner.gh()["comments"] == []


def test_pr_check_turns_an_earlier_comment_into_no_changes(runner: Runner, matching: Path) -> None:
    theirs = {"id": 5, "user": {"login": "someone"}, "body": MARKER + "\nquoted by a person"}
    ours = {"id": 9, "user": {"login": "github-actions[bot]"}, "body": MARKER + "\nold plan"}
    runner.seed_gh(comments=[theirs, ours])
    run_pr_check(runner, state=matching)
    comments = {c["id"]: c["body"] for c in runner.gh()["comments"]}
    assert comments == {5: theirs["body"], 9: MARKER + "\n### reconciler plan\n\n**No changes.** Live state matches "
                                                  "the manifests (cn-hangzhou).\n"}


def test_pr_check_fails_on_an_error_and_says_why(runner: Runner, matching: Path) -> None:
    manifest = runner.workspace / "manifests" / "orders.yaml"
    manifest.write_text(NO_CHANGE_MANIFEST.replace("stage: RELEASE", "stage: PROD"))
    outcome = run_pr_check(runner, state=matching)
    assert (outcome["exitcode"], outcome["verdict"]) == ("1", 1)
    # The annotation on the file's line, for the pull request's diff view.
    assert outcome["plan"].stdout == ("::error file=manifests/orders.yaml,line=5,title=reconciler%3A bindings[0].stage"
                                      "::must be RELEASE or TEST (got 'PROD')\n")
    error = "Error: manifests/orders.yaml:5: bindings[0].stage: must be RELEASE or TEST (got 'PROD')"
    assert runner.gh()["comments"][0]["body"] == (
        f"{MARKER}\n### reconciler plan\n\n**The plan failed** (exit code 1); the check fails. The error:\n\n"
        f"```\n{error}\n```\n")


def test_pr_check_from_a_fork_plans_without_secrets(pull_request: Runner) -> None:
    fork = {**PR_CONTEXT, "FORK": "true", **dict.fromkeys(DEMO_SECRETS, "")}
    outcome = run_pr_check(pull_request, fork)
    assert outcome["exitcode"] == "2"
    body = pull_request.gh()["comments"][0]["body"]
    assert "> Secrets were not checked (--skip-secrets): only keys and bindings were compared." in body


def test_pr_workflow_keeps_expressions_out_of_scripts() -> None:
    """`${{ }}` in a script is pasted into the shell before it runs (script injection); values go via env."""
    for name in ("plan-on-pr.yml", "drift-detection.yml"):
        for job in workflow(name)["jobs"].values():
            for step in job["steps"]:
                assert "${{" not in step.get("run", ""), (name, step.get("name"))
    document = workflow("plan-on-pr.yml")
    assert document[True]["pull_request_target"]["paths"] == ["manifests/**"]  # YAML 1.1 reads `on` as true
    assert document["permissions"] == {"contents": "read", "pull-requests": "write"}


# ------------------------------------------------------------------------------------------ drift detection

DRIFT_CONTEXT = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "testid", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "testsecret",
                 "GH_TOKEN": "token", "GH_REPO": "o/r", "RUN_URL": "https://github.com/o/r/actions/runs/1",
                 **DEMO_SECRETS}


@pytest.fixture
def production(runner: Runner) -> Runner:
    shutil.copytree(ROOT / "manifests", runner.workspace / "manifests")
    return runner


def run_drift_job(runner: Runner, state: Path = DEMO_STATE) -> str:
    name = "drift-detection.yml"
    plan = runner.run(name, "plan", DRIFT_CONTEXT, state)
    assert plan.returncode == 0, plan.stderr
    code = runner.outputs["plan"]["exitcode"]
    issue = runner.run(name, "issue", {**DRIFT_CONTEXT, "PLAN_EXITCODE": code})
    assert issue.returncode == 0, issue.stderr
    return code


def test_drift_job_opens_then_updates_then_closes_one_issue(production: Runner) -> None:
    assert run_drift_job(production) == "2"
    document = json.loads((production.workspace / "plan.json").read_text())
    jsonschema.validate(document, plan_json_schema())
    issues = production.gh()["issues"]
    assert [(i["number"], i["state"], i["labels"]) for i in issues] == [(1, "open", ["reconciler-drift"])]
    assert issues[0]["body"].startswith("The live API Gateway signatures differ from `manifests/` on the default "
                                        "branch.\n")
    assert ("**Plan: 1 to create, 1 to update, 0 to delete, 2 to bind, 1 to unbind, 1 to rebind, 1 unmanaged.**"
            in issues[0]["body"])

    assert run_drift_job(production) == "2"
    assert [i["number"] for i in production.gh()["issues"]] == [1]  # updated, not a second issue

    # Someone fixed the live state: the next run closes the issue.
    fixed = production.workspace.parent / "fixed.yaml"
    fixed.write_text(NO_CHANGE_STATE)
    shutil.rmtree(production.workspace / "manifests")
    (production.workspace / "manifests").mkdir()
    (production.workspace / "manifests" / "orders.yaml").write_text(NO_CHANGE_MANIFEST)
    assert run_drift_job(production, fixed) == "0"
    closed = production.gh()["issues"][0]
    assert (closed["state"], closed["closing_comment"]) == (
        "closed", "The live state matches the manifests again (https://github.com/o/r/actions/runs/1).")


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[bytes]]]:
    received: list[bytes] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()
    server.server_close()


def test_drift_job_tells_the_chat(production: Runner, webhook: tuple[str, list[bytes]]) -> None:
    url, received = webhook
    run_drift_job(production)
    job = workflow("drift-detection.yml")["jobs"]["drift"]
    chat = next(s for s in job["steps"] if s.get("name") == "Tell the chat")
    assert chat["if"] == "steps.plan.outputs.exitcode == '2' && env.CHAT_WEBHOOK_URL != ''"
    done = subprocess.run([*BASH, chat["run"]], cwd=production.workspace, capture_output=True, text=True, check=False,
                          env={"PATH": os.environ["PATH"], "CHAT_WEBHOOK_URL": url,
                               "RUN_URL": "https://github.com/o/r/actions/runs/1"})
    assert done.returncode == 0, done.stderr
    assert [json.loads(body) for body in received] == [
        {"text": "reconciler: drift in cn-hangzhou: 1 create, 1 update, 2 bind, 1 unbind, 1 rebind, 1 unmanaged. "
                 "https://github.com/o/r/actions/runs/1"}]


def test_gitlab_jobs_are_valid_shell_with_the_same_commands() -> None:
    document = yaml.safe_load((ROOT / "examples" / "gitlab-ci" / ".gitlab-ci.yml").read_text())
    for job in ("reconciler-plan", "reconciler-drift"):
        [script] = document[job]["script"]
        done = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True, check=False)
        assert done.returncode == 0, (job, done.stderr)
    assert '--base-ref "origin/${CI_MERGE_REQUEST_TARGET_BRANCH_NAME}"' in document["reconciler-plan"]["script"][0]
    assert document["reconciler-drift"]["artifacts"]["paths"] == ["plan.json"]
