"""The example GitHub workflows, run as GitHub would run their shell steps: the `run:` scripts are taken
from the YAML, run by bash with the runner's flags, against the demo emulator (a `reconciler` on PATH that
adds `--emulator`), a fake `gh` that keeps the comments and issues the steps would post, and a fake `pip`
that records what the install step asks for. What the runner would read as workflow commands in a step's
output is decided by `tests.workflow.fakes.actions_log`; comments are rendered with GitHub's own markdown
renderer (cmarkgfm) where hostile text must stay inert."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from reconciler import __version__
from reconciler.aliyun import credentials
from reconciler.render.plan import CHANGED_ONLY
from reconciler.review import plan_json_schema
from tests.support.loopback_servers import serving
from tests.support.paths import GOLDEN, ROOT, TESTS
from tests.support.prewarmed import Prewarmed
from tests.workflow.fakes.actions_log import workflow_commands
from tests.workflow.fakes.hostile_error import HOSTILE, assert_inert_in_comment
from tests.workflow.harness import (
    DEMO_SECRETS,
    DEMO_STATE,
    GITHUB_BASH,
    MARKER,
    SHANGHAI_STATE,
    git,
    job_bin,
    reconciler_calls,
    run_script,
    shellcheck,
)

WORKFLOWS = ROOT / "examples" / "github-actions"
RELEASE = ROOT / ".github" / "workflows" / "release.yml"
# What toJSON(secrets) gives a step: the manifests' secrets among others the workflow must not pass on.
REPOSITORY_SECRETS = {**DEMO_SECRETS, "OLD_BACKEND_SECRET": "oldSecret0123", "NPM_TOKEN": "npm-unrelated-0123",
                      "github_token": "ghs_unrelated"}
OIDC_ENV = {"ALIBABA_CLOUD_ROLE_ARN": "acs:ram::1234567890123456:role/reconciler-read",
            "ALIBABA_CLOUD_OIDC_PROVIDER_ARN": "acs:ram::1234567890123456:oidc-provider/github",
            "ALIBABA_CLOUD_OIDC_TOKEN_FILE": "/nonexistent/token", "ALIBABA_CLOUD_ROLE_SESSION_NAME": "reconciler-1"}

# slow: every step runs in bash, and each `reconciler` and `gh` in it is a process of its own.
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("jq") is None, reason="the workflows use jq, as GitHub's runners have")]


def workflow(name: str) -> dict[str, Any]:
    path = RELEASE if name == "release.yml" else WORKFLOWS / name
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


def find_step(document: dict[str, Any], step_id: str, job_name: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    jobs = {job_name: document["jobs"][job_name]} if job_name else document["jobs"]
    found = [(job, step) for job in jobs.values() for step in job["steps"] if step.get("id") == step_id]
    assert len(found) == 1, f"step {step_id!r}: {len(found)} found; name the job"
    return found[0]


@dataclass
class Runner:
    """One job's workspace, with the PATH and files of a GitHub runner as far as the steps use them."""

    workspace: Path
    bin: Path
    gh_state: Path
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def temp(self) -> Path:
        return self.workspace.parent / "runner-temp"

    @property
    def summary(self) -> Path:
        return self.workspace.parent / "step-summary.md"

    def gh(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads(self.gh_state.read_text())
        return state

    def seed_gh(self, **values: Any) -> None:
        self.gh_state.write_text(json.dumps({"comments": [], "issues": [], "labels": [], "calls": [],
                                             "pr_files": [], "commit_pulls": {}, **values}))

    @property
    def calls_log(self) -> Path:
        return self.workspace.parent / "reconciler-calls.jsonl"

    def reconciler_calls(self) -> list[dict[str, Any]]:
        """Each run of `reconciler`: its arguments and the names of the repository secrets it was given."""
        return reconciler_calls(self.calls_log)

    def run(self, name: str, step_id: str, context: dict[str, str], state: Path = DEMO_STATE,
            job_name: str | None = None, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run step `step_id` of workflow `name`; every variable of the step's `env` must be in `context`."""
        document = workflow(name)
        job, step = find_step(document, step_id, job_name)
        missing = set(step.get("env", {})) - set(context)
        assert not missing, f"the test gives no value for {missing}"
        output_file = self.workspace.parent / f"output-{step_id}"
        output_file.write_text("")
        self.temp.mkdir(exist_ok=True)
        env = {"PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}", "HOME": str(self.workspace.parent),
               "GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(self.workspace), "GITHUB_OUTPUT": str(output_file),
               "GITHUB_STEP_SUMMARY": str(self.summary), "RUNNER_TEMP": str(self.temp),
               "FAKE_GH_STATE": str(self.gh_state), "EMULATOR_STATE": str(state),
               "RECONCILER_CALLS": str(self.calls_log),
               **{k: str(v) for k, v in document.get("env", {}).items()},
               **{k: v for k, v in job.get("env", {}).items() if k in context},
               **{k: context[k] for k in step.get("env", {})}, **(extra_env or {})}
        done = run_script(GITHUB_BASH, step["run"], self.workspace, env)
        self.outputs[step_id] = dict(line.split("=", 1) for line in output_file.read_text().splitlines())
        return done


@pytest.fixture
def runner(tmp_path: Path, prewarmed: Prewarmed) -> Runner:
    bin_dir = job_bin(tmp_path / "bin", REPOSITORY_SECRETS, prewarmed.path)
    gh = bin_dir / "gh"
    gh.write_text(f"#!/bin/sh\nexec {sys.executable} {TESTS / 'workflow' / 'fakes' / 'gh.py'} \"$@\"\n")
    pip = bin_dir / "pip"
    pip.write_text(f"#!/bin/sh\necho \"$*\" >> {tmp_path / 'pip-calls'}\n")
    for path in (gh, pip):
        path.chmod(0o755)
    workspace = tmp_path / "repo"
    workspace.mkdir()
    result = Runner(workspace, bin_dir, tmp_path / "gh.json")
    result.seed_gh()
    return result


def commands_in(done: subprocess.CompletedProcess[str]) -> list[str]:
    return workflow_commands(done.stdout + done.stderr)


# ------------------------------------------------------------------------------------------ the PR check

PR_CONTEXT = {"FORK": "false", "BASE_REF": "main", "GH_TOKEN": "token", "REPO": "o/r", "PR_NUMBER": "7",
              "SECRETS_JSON": json.dumps(REPOSITORY_SECRETS), **OIDC_ENV}


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


def run_pr_check(runner: Runner, context: dict[str, str] = PR_CONTEXT, state: Path = DEMO_STATE,
                 extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    name = "plan-on-pr.yml"
    plan = runner.run(name, "plan", context, state, extra_env=extra_env)
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


def test_pr_check_plans_only_what_the_change_touches(pull_request: Runner) -> None:
    """--changed-only: the pull request changes bindings of the orders group only, so the payments
    group's drift and the unmanaged key (pending on main, the drift job's to report) are not read."""
    run_pr_check(pull_request)
    [plan] = [call for call in pull_request.reconciler_calls() if call["args"][0] == "plan"]
    assert plan["args"] == ["plan", "manifests/", "--base-ref", "origin/main", "--changed-only", "--detailed-exitcode",
                            "-o", "markdown", "--out", "plan.md"]
    body = pull_request.gh()["comments"][0]["body"]
    assert ("> [!NOTE]\n> Only what this change touches was read (--changed-only): the signatures and (group, "
            "stage) scopes whose declarations differ from the base. Drift elsewhere is not shown; the scheduled "
            "drift job reports it.\n") in body
    assert "**Plan: 0 to create, 0 to update, 0 to delete, 1 to bind, 1 to unbind, 1 to rebind.**" in body
    assert "group `payments`" not in body and "unmanaged" not in body


def test_pr_check_passes_on_only_the_secrets_the_manifests_name(pull_request: Runner) -> None:
    run_pr_check(pull_request)
    [plan] = [call for call in pull_request.reconciler_calls() if call["args"][0] == "plan"]
    assert (plan["secrets"], plan["secrets_json"]) == (sorted(DEMO_SECRETS), False)


def test_pr_check_passes_on_the_secrets_the_base_names_too(pull_request: Runner) -> None:
    """The plan compares with the base's manifests, so it needs the secrets they read, here one that the
    pull request no longer does."""
    old = pull_request.workspace / "manifests" / "old.yaml"
    old.write_text("region: cn-hangzhou\nsignatures:\n"
                   "  - {name: old_backend, key: oldKey0123456789, secret: \"${env:OLD_BACKEND_SECRET}\"}\n")
    git(pull_request.workspace, "add", "manifests/old.yaml")
    git(pull_request.workspace, "commit", "-q", "-m", "base reads OLD_BACKEND_SECRET")
    git(pull_request.workspace, "update-ref", "refs/remotes/origin/main", "HEAD")
    git(pull_request.workspace, "rm", "-q", "manifests/old.yaml")
    outcome = run_pr_check(pull_request)
    assert outcome["exitcode"] == "2", outcome["plan"].stdout
    [plan] = [call for call in pull_request.reconciler_calls() if call["args"][0] == "plan"]
    assert plan["secrets"] == sorted([*DEMO_SECRETS, "OLD_BACKEND_SECRET"])


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
    # With --changed-only and manifests equal to the base's, nothing needed reading: no region to name.
    assert comments == {5: theirs["body"], 9: MARKER + "\n### reconciler plan\n\n**No changes.** Live state matches "
                                                  "the manifests.\n\n> [!NOTE]\n> " + CHANGED_ONLY + "\n"}


def test_pr_check_fails_on_an_error_and_says_why(runner: Runner, matching: Path) -> None:
    manifest = runner.workspace / "manifests" / "orders.yaml"
    manifest.write_text(NO_CHANGE_MANIFEST.replace("stage: RELEASE", "stage: PROD"))
    outcome = run_pr_check(runner, state=matching)
    assert (outcome["exitcode"], outcome["verdict"]) == ("1", 1)
    # The annotation on the file's line, for the pull request's diff view: reconciler's own, so read as a
    # command; the error text after it is shown with commands stopped.
    error = "Error: manifests/orders.yaml:5: bindings[0].stage: must be RELEASE or TEST (got 'PROD')"
    annotation = ("::error file=manifests/orders.yaml,line=5,title=reconciler%3A bindings[0].stage"
                  "::must be RELEASE or TEST (got 'PROD')")
    token = re.search(r"^::stop-commands::([0-9a-f]{32})$", outcome["plan"].stdout, re.M)
    assert token is not None
    assert outcome["plan"].stdout == f"{annotation}\n::stop-commands::{token[1]}\n{error}\n::{token[1]}::\n"
    assert commands_in(outcome["plan"]) == [annotation, f"::stop-commands::{token[1]}", f"::{token[1]}::"]
    assert runner.gh()["comments"][0]["body"] == (
        f"{MARKER}\n### reconciler plan\n\n**The plan failed** (exit code 1); the check fails. The error:\n\n"
        f"```\n  {error}\n```\n")


def test_pr_check_keeps_a_hostile_error_inert_in_the_log_and_the_comment(pull_request: Runner) -> None:
    outcome = run_pr_check(pull_request, extra_env={"FAKE_RECONCILER_ERROR": HOSTILE})
    assert (outcome["exitcode"], outcome["verdict"]) == ("1", 1)
    # The runner carries out nothing of the text: only the stop and the resume around it.
    commands = commands_in(outcome["plan"])
    assert len(commands) == 2 and commands[0].startswith("::stop-commands::")
    assert commands[1] == "::" + commands[0].removeprefix("::stop-commands::") + "::"
    assert "::error title=Build passed::spoofed" in outcome["plan"].stdout
    # The tokens differ from run to run: the text cannot know the one that resumes commands.
    again = run_pr_check(pull_request, extra_env={"FAKE_RECONCILER_ERROR": HOSTILE})
    assert commands_in(again["plan"])[0] != commands[0]
    body = pull_request.gh()["comments"][0]["body"]
    assert body.startswith(f"{MARKER}\n### reconciler plan\n\n**The plan failed** (exit code 1)")
    assert_inert_in_comment(body, HOSTILE)


def test_pr_check_from_a_fork_plans_without_secrets(pull_request: Runner) -> None:
    fork = {**PR_CONTEXT, "FORK": "true", "SECRETS_JSON": "{}"}
    outcome = run_pr_check(pull_request, fork)
    assert outcome["exitcode"] == "2"
    body = pull_request.gh()["comments"][0]["body"]
    assert "> Secrets were not checked (--skip-secrets): only keys and bindings were compared." in body
    assert [call["secrets"] for call in pull_request.reconciler_calls()] == [[]]


@pytest.mark.parametrize(("manifests", "files", "expected"), [
    ("manifests/", [{"filename": "manifests/hangzhou.yaml"}], "true"),
    ("manifests/", [{"filename": "README.md"}, {"filename": "src/manifests/x.yaml"}], "false"),
    ("manifests/", [{"filename": "old/x.yaml", "previous_filename": "manifests/x.yaml"}], "true"),
    ("./infra/apigw", [{"filename": "infra/apigw/prod.yaml"}], "true"),
    ("./infra/apigw", [{"filename": "manifests/hangzhou.yaml"}], "false"),
    ("manifests", [{"filename": "manifests-old/hangzhou.yaml"}], "false"),
    ("prod.yaml", [{"filename": "prod.yaml"}], "true"),
], ids=["manifest", "elsewhere", "moved-out", "other-folder", "other-folder-untouched", "same-prefix", "one-file"])
def test_pr_check_runs_when_the_pull_request_changes_what_manifests_names(
        runner: Runner, manifests: str, files: list[dict[str, str]], expected: str) -> None:
    runner.seed_gh(pr_files=files)
    done = runner.run("plan-on-pr.yml", "changes", {"GH_TOKEN": "t", "REPO": "o/r", "PR_NUMBER": "7"},
                      extra_env={"MANIFESTS": manifests})
    assert done.returncode == 0, done.stderr
    assert runner.outputs["changes"] == {"manifests": expected}
    document = workflow("plan-on-pr.yml")
    assert document[True] == {"pull_request_target": None}  # no paths filter to keep in step (YAML reads `on` as true)
    assert document["jobs"]["plan"]["if"] == "needs.changes.outputs.manifests == 'true'"


# ------------------------------------------------------------------------------------------ every workflow

GITHUB_WORKFLOWS = ["plan-on-pr.yml", "drift-detection.yml", "apply-on-merge.yml", "release.yml"]
PINNED = re.compile(r"^\s*(?:- )?uses: ([\w.-]+/[\w./-]+)@([0-9a-f]{40}) # (v\d+\.\d+\.\d+)$")
# Commit SHAs as seen in public workflows pinning these actions at these versions.
KNOWN_PINS = {
    "actions/checkout": ("11bd71901bbe5b1630ceea73d27597364c9af683", "v4.2.2"),
    "actions/setup-python": ("a26af69be951a213d495a4c3e4e4022e16d87065", "v5.6.0"),
    "actions/upload-artifact": ("ea165f8d65b6e75b540449e92b4886f43607fa02", "v4.6.2"),
    "actions/download-artifact": ("d3f86a106a0bac45b974a628896c90dbdf5c8093", "v4.3.0"),
    "actions/attest-build-provenance": ("977bb373ede98d70efdf65b84cb5f73e068dcc2a", "v3.0.0"),
    "pypa/gh-action-pypi-publish": ("dc37677b2e1c63e2034f94d8a5b11f265b73ba33", "v1.14.2"),
}


@pytest.mark.parametrize("name", GITHUB_WORKFLOWS)
def test_every_action_is_pinned_by_commit_with_its_version(name: str) -> None:
    text = (RELEASE if name == "release.yml" else WORKFLOWS / name).read_text()
    uses = [line for line in text.splitlines() if re.match(r"^\s*(- )?uses:", line)]
    assert uses
    for line in uses:
        match = PINNED.match(line)
        assert match is not None, line
        assert KNOWN_PINS[match[1]] == (match[2], match[3]), line


@pytest.mark.parametrize("name", GITHUB_WORKFLOWS)
def test_every_job_has_a_timeout_and_scripts_take_no_expressions(name: str) -> None:
    """`${{ }}` in a script is pasted into the shell before it runs (script injection); values go via env."""
    for job_name, job in workflow(name)["jobs"].items():
        assert 0 < job["timeout-minutes"] <= 30, job_name
        for step in job["steps"]:
            assert "${{" not in step.get("run", ""), (name, step.get("name"))
            if step.get("uses", "").startswith("actions/setup-python@"):
                assert step["with"]["cache"] == "pip"


@pytest.mark.parametrize("name", GITHUB_WORKFLOWS)
def test_every_script_passes_shellcheck(name: str) -> None:
    for job in workflow(name)["jobs"].values():
        for step in job["steps"]:
            if "run" in step:
                done = shellcheck(step["run"])
                assert done.returncode == 0, (step.get("name"), done.stdout)


@pytest.mark.parametrize("name", ["plan-on-pr.yml", "drift-detection.yml", "apply-on-merge.yml"])
def test_cloud_access_is_oidc_by_default_with_the_least_permissions(name: str) -> None:
    document = workflow(name)
    assert document["permissions"] == {"contents": "read"}
    for job_name, job in document["jobs"].items():
        steps = {step.get("id"): step for step in job["steps"]}
        cloud = [step for step in job["steps"] if "ALIBABA_CLOUD_ROLE_ARN" in step.get("env", {})]
        if not cloud:
            assert "id-token" not in job.get("permissions", {}), job_name
            continue
        assert job["permissions"]["id-token"] == "write"
        for step in cloud:
            # Exactly the variables the product's credential chain reads for an OIDC role.
            assert {k for k in step["env"] if k.startswith("ALIBABA_CLOUD_")} == {
                credentials.ENV_ROLE_ARN, credentials.ENV_OIDC_PROVIDER_ARN, credentials.ENV_OIDC_TOKEN_FILE,
                credentials.ENV_ROLE_SESSION_NAME}
            assert step["env"]["ALIBABA_CLOUD_OIDC_TOKEN_FILE"] == "${{ steps.oidc.outputs.token_file }}"
            assert step["env"]["ALIBABA_CLOUD_OIDC_PROVIDER_ARN"] == "${{ vars.ALIBABA_CLOUD_OIDC_PROVIDER_ARN }}"
        role = "RECONCILER_APPLY_ROLE_ARN" if job_name == "apply" else "RECONCILER_READ_ROLE_ARN"
        assert {step["env"]["ALIBABA_CLOUD_ROLE_ARN"] for step in cloud} == {f"${{{{ vars.{role} }}}}"}
        assert "oidc" in steps and "install" in steps
    assert document["env"]["RECONCILER_VERSION"] == __version__


@pytest.fixture
def token_service() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """GitHub's ID token endpoint, as the runner gives it to a job with `id-token: write`."""
    requests: list[dict[str, str]] = []

    class Service(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append({"path": self.path, "authorization": self.headers["Authorization"]})
            body = json.dumps({"value": "eyJhbGciOiJSUzI1NiJ9.github-id-token.sig"}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with serving(HTTPServer(("127.0.0.1", 0), Service)) as url:
        yield f"{url}/token?api-version=2.0", requests


@pytest.mark.parametrize(("name", "job_name"), [("plan-on-pr.yml", "plan"), ("drift-detection.yml", "drift"),
                                                ("apply-on-merge.yml", "plan"), ("apply-on-merge.yml", "apply")])
def test_sign_in_writes_the_id_token_for_the_oidc_audience_to_a_private_file(
        runner: Runner, token_service: tuple[str, list[dict[str, str]]], name: str, job_name: str) -> None:
    url, requests = token_service
    token_file = runner.temp / "alibaba-cloud-oidc-token"
    done = runner.run(name, "oidc", {"TOKEN_FILE": str(token_file)}, job_name=job_name,
                      extra_env={"ACTIONS_ID_TOKEN_REQUEST_URL": url, "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "req-token"})
    assert done.returncode == 0, done.stderr
    assert requests == [{"path": "/token?api-version=2.0&audience=sts.aliyuncs.com",
                         "authorization": "bearer req-token"}]
    assert token_file.read_text() == "eyJhbGciOiJSUzI1NiJ9.github-id-token.sig"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert runner.outputs["oidc"] == {"token_file": str(token_file)}
    assert done.stdout == ""  # the token is never in the log


@pytest.mark.parametrize(("name", "job_name"), [("plan-on-pr.yml", "plan"), ("drift-detection.yml", "drift"),
                                                ("apply-on-merge.yml", "plan"), ("apply-on-merge.yml", "apply")])
def test_install_is_the_pinned_release_with_dependencies_locked_by_hash(runner: Runner, name: str,
                                                                        job_name: str) -> None:
    done = runner.run(name, "install", {}, job_name=job_name)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"reconciler, version {__version__}\n"
    assert (runner.workspace.parent / "pip-calls").read_text().splitlines() == [
        "install --quiet --require-hashes --no-deps -r .github/reconciler-requirements.txt",
        f"install --quiet --no-deps reconciler-aliyun-apigateway=={__version__}",
        "check"]
    setup = next(s for s in workflow(name)["jobs"][job_name]["steps"] if "setup-python" in s.get("uses", ""))
    assert setup["with"]["cache-dependency-path"] == "${{ env.RECONCILER_REQUIREMENTS }}"


def test_the_pr_check_installs_before_it_checks_out_the_pull_request() -> None:
    """Under pull_request_target the lock file must be the base branch's: a pull request's would choose
    what gets installed and run with the secrets."""
    steps = workflow("plan-on-pr.yml")["jobs"]["plan"]["steps"]
    checkouts = [i for i, s in enumerate(steps) if s.get("uses", "").startswith("actions/checkout@")]
    install = next(i for i, s in enumerate(steps) if s.get("id") == "install")
    assert checkouts[0] < install < checkouts[1]
    assert "ref" not in steps[checkouts[0]]["with"]
    assert steps[checkouts[1]]["with"]["ref"] == "${{ github.event.pull_request.head.sha }}"


# ------------------------------------------------------------------------------------------ drift detection

DRIFT_CONTEXT = {"GH_TOKEN": "token", "GH_REPO": "o/r", "RUN_URL": "https://github.com/o/r/actions/runs/1",
                 "SECRETS_JSON": json.dumps(REPOSITORY_SECRETS), **OIDC_ENV}


@pytest.fixture
def production(runner: Runner) -> Runner:
    shutil.copytree(ROOT / "manifests", runner.workspace / "manifests")
    return runner


def run_drift_job(runner: Runner, state: Path = DEMO_STATE, second_region: Path | None = None) -> tuple[str, str]:
    """The plan, the scan (of `state`'s region and `second_region`'s, which no manifest declares) and the
    issue step; returns the plan's and the scan's exit codes."""
    name = "drift-detection.yml"
    plan = runner.run(name, "plan", DRIFT_CONTEXT, state)
    assert plan.returncode == 0, plan.stderr
    scan = runner.run(name, "scan", DRIFT_CONTEXT, state,
                      extra_env={"SECOND_REGION_STATE": str(second_region)} if second_region else None)
    assert scan.returncode == 0, scan.stderr
    codes = {"PLAN_EXITCODE": runner.outputs["plan"]["exitcode"], "SCAN_EXITCODE": runner.outputs["scan"]["exitcode"]}
    issue = runner.run(name, "issue", {**DRIFT_CONTEXT, **codes})
    assert issue.returncode == 0, issue.stderr
    return codes["PLAN_EXITCODE"], codes["SCAN_EXITCODE"]


def test_drift_job_opens_then_updates_then_closes_one_issue(production: Runner) -> None:
    assert run_drift_job(production) == ("2", "2")  # the demo: drift, and unsigned APIs the policy requires
    document = json.loads((production.workspace / "plan.json").read_text())
    jsonschema.validate(document, plan_json_schema())
    issues = production.gh()["issues"]
    assert [(i["number"], i["state"], i["labels"]) for i in issues] == [(1, "open", ["reconciler-drift"])]
    assert issues[0]["body"].startswith("The live API Gateway signatures differ from `manifests/` on the default "
                                        "branch.\n")
    assert ("**Plan: 1 to create, 1 to update, 0 to delete, 2 to bind, 1 to unbind, 1 to rebind, 1 unmanaged.**"
            in issues[0]["body"])
    plans = [call for call in production.reconciler_calls() if call["args"][0] == "plan"]
    assert [call["secrets"] for call in plans] == [sorted(DEMO_SECRETS)] * 2  # the second from the snapshot
    [scan] = [call for call in production.reconciler_calls() if call["args"][0] == "scan"]
    assert (scan["args"], scan["secrets"]) == (["scan", "manifests/", "-o", "markdown", "--out", "scan.md",
                                                "--save-json", "scan.json", "--detailed-exitcode"], [])
    # The plan, then the scan with its coverage table.
    body = issues[0]["body"]
    assert body.index("**Plan: 1 to create") < body.index("### reconciler scan") < body.index(
        "| Group | Signed | Published | Coverage |")
    assert body.endswith((production.workspace / "scan.md").read_text())
    assert "| `internal` | 0 | 1 | 0.0% |" in body  # a coverage row

    assert run_drift_job(production) == ("2", "2")
    assert [i["number"] for i in production.gh()["issues"]] == [1]  # updated, not a second issue

    # Someone fixed the live state: the next run closes the issue.
    fixed = production.workspace.parent / "fixed.yaml"
    fixed.write_text(NO_CHANGE_STATE)
    shutil.rmtree(production.workspace / "manifests")
    (production.workspace / "manifests").mkdir()
    (production.workspace / "manifests" / "orders.yaml").write_text(NO_CHANGE_MANIFEST)
    assert run_drift_job(production, fixed) == ("0", "0")
    closed = production.gh()["issues"][0]
    assert (closed["state"], closed["closing_comment"]) == (
        "closed", "The live state matches the manifests again, and the scan has no finding "
                  "(https://github.com/o/r/actions/runs/1).")


# The live state of NO_CHANGE_MANIFEST, with orders_list published (so the scan has coverage to measure).
PUBLISHED_STATE = NO_CHANGE_STATE.replace("name: orders_list}", "name: orders_list, deployed: [RELEASE]}")


@pytest.fixture
def in_step(runner: Runner) -> Path:
    """Manifests that match their live state; returns that state's file."""
    (runner.workspace / "manifests").mkdir()
    (runner.workspace / "manifests" / "orders.yaml").write_text(NO_CHANGE_MANIFEST)
    state = runner.workspace.parent / "state.yaml"
    state.write_text(PUBLISHED_STATE)
    return state


def test_drift_job_opens_the_issue_on_a_scan_finding_alone_then_closes_it(runner: Runner, in_step: Path) -> None:
    # No drift, but a key in a region no manifest declares (cn-shanghai).
    assert run_drift_job(runner, in_step, SHANGHAI_STATE) == ("0", "2")
    [issue] = runner.gh()["issues"]
    assert (issue["state"], issue["labels"]) == ("open", ["reconciler-drift"])
    body = issue["body"]
    assert body.startswith("The live API Gateway signatures match `manifests/` on the default branch, but the scan\n"
                           "of the account found keys in no manifest or APIs the signature policy requires signed.\n"
                           "Last checked: https://github.com/o/r/actions/runs/1 (plan.json and scan.json are the run's "
                           "`reconciler-plan` artifact).\n\n### reconciler plan\n\n**No changes.** Live state matches "
                           "the manifests (cn-hangzhou).\n")
    assert ("**Scan: 2 region(s) (1 in no manifest), 1 signature(s) in no manifest, 2 of 2 published APIs signed "
            "(100.0%), 0 policy violation(s).**") in body
    assert "#### Region `cn-shanghai` (in no manifest)" in body
    assert "- `partner_sh_key` (`fa034846ab3ccba857f160e4ed45c185`)" in body
    assert "| Group | Signed | Published | Coverage |\n|---|---:|---:|---:|\n| `orders` | 1 | 1 | 100.0% |" in body

    # The key is gone: plan and scan are clean, and the issue is closed.
    assert run_drift_job(runner, in_step) == ("0", "0")
    closed = runner.gh()["issues"][0]
    assert (closed["state"], closed["closing_comment"]) == (
        "closed", "The live state matches the manifests again, and the scan has no finding "
                  "(https://github.com/o/r/actions/runs/1).")


def test_drift_issue_keeps_the_plan_and_points_to_the_scan_when_both_are_too_long(runner: Runner) -> None:
    """Each report keeps itself under GitHub's 65,536 characters, not both together."""
    plan = "### reconciler plan\n\n**Plan: 1 to create.**\n" + "| row of the plan é |\n" * 2_500  # 47,500 chars
    scan = ("### reconciler scan\n\n**Scan: 1 region(s) (0 in no manifest), 900 signature(s) in no manifest.**\n"
            + "- `a key in no manifest` |\n" * 1_000)
    (runner.workspace / "plan.md").write_text(plan)
    (runner.workspace / "scan.md").write_text(scan)
    done = runner.run("drift-detection.yml", "issue", {**DRIFT_CONTEXT, "PLAN_EXITCODE": "2", "SCAN_EXITCODE": "2"})
    assert done.returncode == 0, done.stderr
    [issue] = runner.gh()["issues"]
    body = issue["body"]
    assert len(body) <= 65_536
    assert body.startswith("The live API Gateway signatures differ from `manifests/` on the default branch.\n")
    assert plan in body
    assert body.endswith("### reconciler scan\n\nThe scan's report does not fit in this issue beside the plan: it is "
                         "`scan.md` (and\n`scan.json`) in the run's `reconciler-plan` artifact. Its summary:\n\n"
                         "**Scan: 1 region(s) (0 in no manifest), 900 signature(s) in no manifest.**\n")


def test_drift_job_shows_a_hostile_error_with_workflow_commands_stopped(production: Runner) -> None:
    plan = production.run("drift-detection.yml", "plan", DRIFT_CONTEXT, extra_env={"FAKE_RECONCILER_ERROR": HOSTILE})
    assert production.outputs["plan"] == {"exitcode": "1"}
    commands = commands_in(plan)
    assert len(commands) == 2 and commands[0].startswith("::stop-commands::")
    verdict = production.run("drift-detection.yml", "verdict", {"PLAN_EXITCODE": "1", "SCAN_EXITCODE": "0"})
    assert (verdict.returncode, verdict.stdout) == (1, "reconciler plan failed (exit code 1); see the Plan step.\n")


def test_drift_job_shows_a_hostile_scan_error_stopped_fails_and_leaves_the_issue(production: Runner) -> None:
    production.seed_gh(issues=[{"number": 3, "state": "open", "labels": ["reconciler-drift"], "body": "earlier"}])
    scan = production.run("drift-detection.yml", "scan", DRIFT_CONTEXT, extra_env={"FAKE_RECONCILER_ERROR": HOSTILE})
    assert production.outputs["scan"] == {"exitcode": "1"}
    commands = commands_in(scan)
    assert len(commands) == 2 and commands[0].startswith("::stop-commands::")
    assert commands[1] == "::" + commands[0].removeprefix("::stop-commands::") + "::"
    codes = {"PLAN_EXITCODE": "0", "SCAN_EXITCODE": "1"}
    issue = production.run("drift-detection.yml", "issue", {**DRIFT_CONTEXT, **codes})
    assert issue.stdout == "The plan or the scan failed (exit codes 0, 1): the issue is left as it is.\n"
    assert [(i["number"], i["state"], i["body"]) for i in production.gh()["issues"]] == [(3, "open", "earlier")]
    verdict = production.run("drift-detection.yml", "verdict", {"PLAN_EXITCODE": "0", "SCAN_EXITCODE": "1"})
    assert (verdict.returncode, verdict.stdout) == (1, "reconciler scan failed (exit code 1); see the Scan step.\n")


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

    with serving(HTTPServer(("127.0.0.1", 0), Hook)) as url:
        yield f"{url}/hook", received


def test_drift_job_tells_the_chat(production: Runner, webhook: tuple[str, list[bytes]]) -> None:
    url, received = webhook
    run_drift_job(production)
    job = workflow("drift-detection.yml")["jobs"]["drift"]
    chat = next(s for s in job["steps"] if s.get("name") == "Tell the chat")
    assert chat["if"] == ("(steps.plan.outputs.exitcode == '2' || steps.scan.outputs.exitcode == '2') "
                          "&& env.CHAT_WEBHOOK_URL != ''")
    done = run_script(GITHUB_BASH, chat["run"], production.workspace,
                      {"PATH": os.environ["PATH"], "CHAT_WEBHOOK_URL": url,
                       "RUN_URL": "https://github.com/o/r/actions/runs/1"})
    assert done.returncode == 0, done.stderr
    assert [json.loads(body) for body in received] == [
        {"text": "reconciler: drift in cn-hangzhou: 1 create, 1 update, 2 bind, 1 unbind, 1 rebind, 1 unmanaged; "
                 "scan: 8 of 12 published APIs signed, 1 key(s) in no manifest, 3 policy violation(s). "
                 "https://github.com/o/r/actions/runs/1"}]


# ------------------------------------------------------------------------------------------ apply on merge

SHA = "0123456789abcdef0123456789abcdef01234567"
APPLY_CONTEXT = {"SECRETS_JSON": json.dumps(REPOSITORY_SECRETS), "GH_TOKEN": "token", "REPO": "o/r", "SHA": SHA,
                 "RUN_URL": "https://github.com/o/r/actions/runs/9", **OIDC_ENV}
APPLIED = ("Apply complete: 1 created, 1 updated, 1 rebound, 2 bound, 1 unbound, 0 deleted.")


def plan_on_merge(runner: Runner, state: Path) -> subprocess.CompletedProcess[str]:
    plan = runner.run("apply-on-merge.yml", "plan", APPLY_CONTEXT, state, job_name="plan")
    assert plan.returncode == 0, plan.stderr
    return plan


def apply_approved(runner: Runner, state: Path, extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    """The apply job after approval, with the plan job's artifact in its workspace (as download-artifact
    leaves it)."""
    name = "apply-on-merge.yml"
    apply = runner.run(name, "apply", APPLY_CONTEXT, state, job_name="apply", extra_env=extra_env)
    code = runner.outputs["apply"]["exitcode"]
    comment = runner.run(name, "comment", {**APPLY_CONTEXT, "APPLY_EXITCODE": code}, state, job_name="apply")
    assert comment.returncode == 0, comment.stderr
    verdict = runner.run(name, "verdict", {"APPLY_EXITCODE": code}, job_name="apply")
    return {"apply": apply, "exitcode": code, "comment": comment, "verdict": verdict.returncode}


@pytest.fixture
def merged(production: Runner) -> tuple[Runner, Path]:
    state = production.workspace.parent / "live.yaml"
    shutil.copy(DEMO_STATE, state)
    production.seed_gh(commit_pulls={SHA: [{"number": 42, "merged_at": "2026-11-30T10:00:00Z"}]})
    return production, state


def test_apply_on_merge_applies_exactly_the_saved_plan_and_posts_to_the_merged_pull_request(
        merged: tuple[Runner, Path]) -> None:
    runner, state = merged
    plan_on_merge(runner, state)
    assert runner.outputs["plan"] == {"exitcode": "2"}  # the apply job runs (its `if`), after approval
    saved = json.loads((runner.workspace / "plan.json").read_text())
    assert saved  # the artifact: plan.json and plan.md
    assert runner.summary.read_text() == (runner.workspace / "plan.md").read_text()  # what reviewers approve
    job = workflow("apply-on-merge.yml")["jobs"]["apply"]
    assert (job["needs"], job["if"], job["environment"]) == ("plan", "needs.plan.outputs.exitcode == '2'",
                                                              "production")

    outcome = apply_approved(runner, state)
    assert (outcome["exitcode"], outcome["verdict"]) == ("0", 0)
    [apply] = [call for call in runner.reconciler_calls() if call["args"][0] == "apply"]
    assert apply["args"] == ["apply", "manifests/", "--plan-file", "plan.json"]
    assert apply["secrets"] == sorted(DEMO_SECRETS)
    [comment] = runner.gh()["comments"]
    assert comment["body"].startswith(
        f"### reconciler apply\n\n**Applied** the plan approved in https://github.com/o/r/actions/runs/9 "
        f"(commit {SHA}).\n\n```\n  reconciler will perform the following actions:\n")
    assert f"  {APPLIED}\n" in comment["body"]
    assert outcome["comment"].stdout == "Posted the result to pull request #42.\n"
    assert runner.summary.read_text().endswith(comment["body"])


def test_apply_on_merge_refuses_a_stale_plan_and_says_so(merged: tuple[Runner, Path]) -> None:
    runner, state = merged
    plan_on_merge(runner, state)
    state.write_text(state.read_text().replace("paymentsKeyManual", "paymentsKeyOther"))  # changed since
    outcome = apply_approved(runner, state)
    assert (outcome["exitcode"], outcome["verdict"]) == ("1", 1)
    body = runner.gh()["comments"][0]["body"]
    assert body.startswith("### reconciler apply\n\n**The apply failed** (exit code 1) in "
                           "https://github.com/o/r/actions/runs/9 (commit " + SHA + "). Its report:\n")
    assert "stale plan" in body
    assert APPLIED not in body


def test_apply_on_merge_without_changes_ends_after_the_plan(runner: Runner, matching: Path) -> None:
    plan_on_merge(runner, matching)
    assert runner.outputs["plan"] == {"exitcode": "0"}
    verdict = runner.run("apply-on-merge.yml", "verdict", {"PLAN_EXITCODE": "0"}, job_name="plan")
    assert (verdict.returncode, verdict.stdout) == (0, "No changes: nothing to apply.\n")


def test_apply_on_merge_keeps_hostile_output_inert_and_a_push_without_pull_request_in_the_summary(
        merged: tuple[Runner, Path]) -> None:
    runner, state = merged
    runner.seed_gh(commit_pulls={})
    outcome = apply_approved(runner, state, extra_env={"FAKE_RECONCILER_ERROR": HOSTILE})
    assert outcome["exitcode"] == "1"
    commands = commands_in(outcome["apply"])
    assert len(commands) == 2 and commands[0].startswith("::stop-commands::")
    assert outcome["comment"].stdout == f"No pull request merged {SHA}: the result is in the run's summary only.\n"
    assert runner.gh()["comments"] == []
    assert_inert_in_comment(runner.summary.read_text(), HOSTILE)


# ------------------------------------------------------------------------------------------ release


@pytest.fixture
def release_checkout(tmp_path: Path) -> Path:
    (tmp_path / "reconciler").mkdir()
    shutil.copy(ROOT / "reconciler" / "__init__.py", tmp_path / "reconciler" / "__init__.py")
    shutil.copy(ROOT / "CHANGELOG.md", tmp_path / "CHANGELOG.md")
    return tmp_path


def release_notes(checkout: Path, tag: str) -> subprocess.CompletedProcess[str]:
    step = next(s for s in workflow("release.yml")["jobs"]["build"]["steps"] if s.get("id") == "notes")
    return run_script(GITHUB_BASH, step["run"], checkout, {"PATH": os.environ["PATH"], "TAG": tag})


def test_release_notes_are_the_tags_changelog_section(release_checkout: Path) -> None:
    changelog = release_checkout / "CHANGELOG.md"
    changelog.write_text(changelog.read_text().replace(f"## [{__version__}] - Unreleased",
                                                       f"## [{__version__}] - 2026-12-01")
                         + "\n## [0.0.9] - 2026-01-01\n\n- an entry of 0.0.9\n")
    done = release_notes(release_checkout, f"v{__version__}")
    assert done.returncode == 0, done.stdout
    notes = (release_checkout / "release-notes.md").read_text()
    assert notes.startswith("\nThe first release.\n\n### Added\n")
    assert "an entry of 0.0.9" not in notes and "## [" not in notes


@pytest.mark.parametrize(("tag", "edit", "message"), [
    ("v9.9.9", None, f"The tag is not v{__version__}, the version in reconciler/__init__.py: not released.\n"),
    (f"v{__version__}", None, f"CHANGELOG.md still calls {__version__} Unreleased: date it first.\n"),
    (f"v{__version__}", "drop", f"CHANGELOG.md has no section ## [{__version__}]: not released.\n"),
], ids=["tag-is-not-the-version", "undated", "no-section"])
def test_release_refuses_a_tag_without_its_version_and_notes(release_checkout: Path, tag: str, edit: str | None,
                                                             message: str) -> None:
    if edit == "drop":
        changelog = release_checkout / "CHANGELOG.md"
        changelog.write_text(changelog.read_text().replace(f"## [{__version__}]", "## [0.0.1]"))
    done = release_notes(release_checkout, tag)
    assert (done.returncode, done.stdout) == (1, message)


def test_release_publishes_the_tested_build_with_trusted_publishing_and_provenance() -> None:
    document = workflow("release.yml")
    assert document[True] == {"push": {"tags": ["v*"]}}
    jobs = document["jobs"]
    assert jobs["test"]["strategy"]["matrix"]["python"] == ["3.11", "3.12", "3.13"]
    assert jobs["publish"]["needs"] == ["test", "build"]
    assert jobs["publish"]["permissions"] == {"contents": "write", "id-token": "write", "attestations": "write"}
    uses = [step.get("uses", "").split("@")[0] for step in jobs["publish"]["steps"]]
    assert uses[:3] == ["actions/download-artifact", "actions/attest-build-provenance", "pypa/gh-action-pypi-publish"]
    assert not any("password" in step.get("with", {}) for step in jobs["publish"]["steps"])
    build = "\n".join(step.get("run", "") for step in jobs["build"]["steps"])
    assert ".ci/check-dist python dist" in build


# ------------------------------------------------------------------------------------------ coverage

# Every shell step of every GitHub workflow, and the test that runs it (or why none does).
STEPS_RUN_BY = {
    ("plan-on-pr.yml", "changes", "changes"): "test_pr_check_runs_when_the_pull_request_changes_what_manifests_names",
    ("plan-on-pr.yml", "plan", "install"): "test_install_is_the_pinned_release_with_dependencies_locked_by_hash",
    ("plan-on-pr.yml", "plan", "oidc"): "test_sign_in_writes_the_id_token_for_the_oidc_audience_to_a_private_file",
    ("plan-on-pr.yml", "plan", "plan"): "test_pr_check_plans_only_what_the_change_touches",
    ("plan-on-pr.yml", "plan", "comment"): "test_pr_check_keeps_a_hostile_error_inert_in_the_log_and_the_comment",
    ("plan-on-pr.yml", "plan", "verdict"): "test_pr_check_fails_on_an_error_and_says_why",
    ("drift-detection.yml", "drift", "install"): "test_install_is_the_pinned_release_with_dependencies_locked_by_hash",
    ("drift-detection.yml", "drift", "oidc"):
        "test_sign_in_writes_the_id_token_for_the_oidc_audience_to_a_private_file",
    ("drift-detection.yml", "drift", "plan"): "test_drift_job_opens_then_updates_then_closes_one_issue",
    ("drift-detection.yml", "drift", "scan"): "test_drift_job_opens_the_issue_on_a_scan_finding_alone_then_closes_it",
    ("drift-detection.yml", "drift", "issue"): "test_drift_job_opens_the_issue_on_a_scan_finding_alone_then_closes_it",
    ("drift-detection.yml", "drift", "Tell the chat"): "test_drift_job_tells_the_chat",
    ("drift-detection.yml", "drift", "verdict"): "test_drift_job_shows_a_hostile_error_with_workflow_commands_stopped",
    ("apply-on-merge.yml", "plan", "install"): "test_install_is_the_pinned_release_with_dependencies_locked_by_hash",
    ("apply-on-merge.yml", "plan", "oidc"): "test_sign_in_writes_the_id_token_for_the_oidc_audience_to_a_private_file",
    ("apply-on-merge.yml", "plan", "plan"):
        "test_apply_on_merge_applies_exactly_the_saved_plan_and_posts_to_the_merged_pull_request",
    ("apply-on-merge.yml", "plan", "verdict"): "test_apply_on_merge_without_changes_ends_after_the_plan",
    ("apply-on-merge.yml", "apply", "install"): "test_install_is_the_pinned_release_with_dependencies_locked_by_hash",
    ("apply-on-merge.yml", "apply", "oidc"):
        "test_sign_in_writes_the_id_token_for_the_oidc_audience_to_a_private_file",
    ("apply-on-merge.yml", "apply", "apply"):
        "test_apply_on_merge_applies_exactly_the_saved_plan_and_posts_to_the_merged_pull_request",
    ("apply-on-merge.yml", "apply", "comment"):
        "test_apply_on_merge_keeps_hostile_output_inert_and_a_push_without_pull_request_in_the_summary",
    ("apply-on-merge.yml", "apply", "verdict"): "test_apply_on_merge_refuses_a_stale_plan_and_says_so",
    ("release.yml", "test", "The tests, the linters and the installed wheel (.ci/run)"): "(.ci/run is this CI)",
    ("release.yml", "build", "notes"): "test_release_notes_are_the_tags_changelog_section",
    ("release.yml", "build", "Build, check with twine, and test the built wheel installed from the lock"):
        "(.ci/check-dist, which .ci/run runs)",
    ("release.yml", "publish", "GitHub release with the CHANGELOG's notes"):
        "(none: one `gh release create` of the files the build job tested)",
}


def test_every_shell_step_is_run_by_a_test() -> None:
    steps = {(name, job_name, step.get("id") or step["name"])
             for name in GITHUB_WORKFLOWS for job_name, job in workflow(name)["jobs"].items()
             for step in job["steps"] if "run" in step}
    assert steps == set(STEPS_RUN_BY)
    for test in STEPS_RUN_BY.values():
        assert test.startswith("(") or callable(globals().get(test)), test
