"""The example .gitlab-ci.yml, run as a GitLab runner would run its jobs: the template's before_script (less
the apt-get and pip installs) and the job's script, by bash with the runner's `-eo pipefail`, against the
demo emulator (a `reconciler` on PATH that adds `--emulator`) and a fake GitLab API on loopback that keeps
the notes and issues the jobs write."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler import __version__
from reconciler.render.plan import CHANGED_ONLY
from tests.support.paths import ROOT
from tests.support.prewarmed import Prewarmed
from tests.workflow.fakes.gitlab import BOT_ID, PROJECT, TOKEN, GitLab, serve
from tests.workflow.fakes.hostile_error import HOSTILE, assert_inert_in_comment
from tests.workflow.harness import (
    DEMO_SECRETS,
    DEMO_STATE,
    GITLAB_BASH,
    MARKER,
    SHANGHAI_STATE,
    git,
    job_bin,
    reconciler_calls,
    run_script,
    shellcheck,
)

PIPELINE = ROOT / "examples" / "gitlab-ci" / ".gitlab-ci.yml"
SHA = "89abcdef0123456789abcdef0123456789abcdef"

# slow: every job script runs in bash, and each `reconciler` in it is a process of its own.
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("jq") is None or shutil.which("curl") is None,
                                 reason="the jobs use jq and curl, as the example's image installs them")]


def pipeline() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(PIPELINE.read_text())
    return document


@dataclass
class Project:
    """One job's checkout and the GitLab it talks to."""

    workspace: Path
    bin: Path
    gitlab: GitLab
    api_url: str

    @property
    def calls_log(self) -> Path:
        return self.workspace.parent / "reconciler-calls"

    def reconciler_calls(self) -> list[str]:
        """Each run of `reconciler`: its arguments."""
        return [" ".join(call["args"]) for call in reconciler_calls(self.calls_log)]

    def run(self, job_name: str, state: Path = DEMO_STATE, **extra: str) -> subprocess.CompletedProcess[str]:
        document = pipeline()
        template, job = document[".reconciler"], document[job_name]
        assert job["extends"] == ".reconciler"
        before = [item for item in template["before_script"] if not item.startswith(("apt-get", "pip install"))]
        ci = {"CI_API_V4_URL": self.api_url, "CI_PROJECT_ID": PROJECT, "CI_PROJECT_DIR": str(self.workspace),
              "CI_JOB_ID": "77", "CI_JOB_URL": "https://gitlab.example/g/p/-/jobs/77",
              "CI_PIPELINE_URL": "https://gitlab.example/g/p/-/pipelines/12", "CI_COMMIT_SHA": SHA,
              "CI_DEFAULT_BRANCH": "main", "CI_MERGE_REQUEST_IID": "5", "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
              "RECONCILER_GITLAB_TOKEN": TOKEN, "RECONCILER_OIDC_TOKEN": "gitlab-id-token",
              "RECONCILER_READ_ROLE_ARN": "acs:ram::1:role/read", "RECONCILER_APPLY_ROLE_ARN": "acs:ram::1:role/apply"}
        variables = {**document["variables"], **template["variables"], **job.get("variables", {})}
        expanded = {name: os.path.expandvars(str(value)) for name, value in variables.items()}
        env = {"PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}", "HOME": str(self.workspace.parent),
               "EMULATOR_STATE": str(state), "RECONCILER_CALLS": str(self.calls_log), **ci, **DEMO_SECRETS, **extra}
        env.update({name: value.replace("$CI_JOB_ID", "77").replace("$RECONCILER_READ_ROLE_ARN",
                                                                   ci["RECONCILER_READ_ROLE_ARN"])
                    .replace("$RECONCILER_APPLY_ROLE_ARN", ci["RECONCILER_APPLY_ROLE_ARN"])
                    .replace("$CI_PROJECT_DIR", ci["CI_PROJECT_DIR"]) for name, value in expanded.items()})
        script = "\n".join([*before, *job["script"]])
        return run_script(GITLAB_BASH, script, self.workspace, env)


@pytest.fixture
def project(tmp_path: Path, prewarmed: Prewarmed) -> Iterator[Project]:
    """The demo manifests on main of an `origin`, cloned into the job's workspace."""
    bin_dir = job_bin(tmp_path / "bin", DEMO_SECRETS, prewarmed.path)
    origin = tmp_path / "origin"
    (origin / "manifests").mkdir(parents=True)
    shutil.copy(ROOT / "manifests" / "hangzhou.yaml", origin / "manifests" / "hangzhou.yaml")
    git(origin, "init", "-q", "-b", "main")
    git(origin, "add", "manifests")
    git(origin, "commit", "-q", "-m", "base")
    subprocess.run(["git", "clone", "-q", str(origin), str(tmp_path / "repo")], check=True, capture_output=True)
    gitlab = GitLab()
    with serve(gitlab) as url:
        yield Project(tmp_path / "repo", bin_dir, gitlab, url)


# ------------------------------------------------------------------------------------------ merge requests


def test_plan_note_is_posted_then_updated_in_place_past_the_first_pages(project: Project) -> None:
    # 250 notes by people, one of them quoting the marker, before the job's first run.
    people = [{"id": i, "author": {"id": 99}, "body": f"review comment {i}"} for i in range(1, 251)]
    people[120]["body"] = MARKER + "\nquoted by a person"
    project.gitlab.notes[5] = people
    manifest = project.workspace / "manifests" / "hangzhou.yaml"
    manifest.write_text(manifest.read_text().replace("apis: [orders_list, orders_get]",
                                                     "apis: [orders_list, orders_get, orders_create]"))
    first = project.run("reconciler-plan")
    assert first.returncode == 0, first.stderr
    ours = project.gitlab.notes[5][-1]
    assert ours["author"]["id"] == BOT_ID
    assert ours["body"].startswith(MARKER + "\n### reconciler plan\n\n**Plan: 0 to create, 0 to update, 0 to delete, "
                                   "1 to bind")

    manifest.write_text(manifest.read_text().replace("inventoryKey01", "inventoryKey02"))
    second = project.run("reconciler-plan")
    assert second.returncode == 0, second.stderr
    assert second.stdout.endswith(f"Updated note {ours['id']}.\n")
    notes = project.gitlab.notes[5]
    assert len(notes) == 251 and notes[-1]["id"] == ours["id"]
    assert "inventoryKey02" in notes[-1]["body"]
    assert notes[120]["body"] == MARKER + "\nquoted by a person"
    pages = [path for method, path in project.gitlab.requests if path.endswith("/merge_requests/5/notes")]
    assert len(pages) == 1 + 3 + 3  # a POST, then two searches of three pages each


def test_plan_reads_only_what_the_merge_request_changes(project: Project) -> None:
    manifest = project.workspace / "manifests" / "hangzhou.yaml"
    manifest.write_text(manifest.read_text().replace("apis: [orders_list, orders_get]",
                                                     "apis: [orders_list, orders_get, orders_create]"))
    done = project.run("reconciler-plan")
    assert done.returncode == 0, done.stderr
    assert project.reconciler_calls() == ["plan manifests --base-ref origin/main --changed-only --detailed-exitcode "
                                          "-o markdown --out plan.md"]
    [note] = project.gitlab.notes[5]
    # The one binding the merge request adds; none of the drift pending on main elsewhere.
    assert note["body"].startswith(f"{MARKER}\n### reconciler plan\n\n**Plan: 0 to create, 0 to update, 0 to "
                                   "delete, 1 to bind, 0 to unbind, 0 to rebind.**\n\n> [!NOTE]\n> " + CHANGED_ONLY)


def test_plan_without_changes_or_an_earlier_note_posts_nothing(project: Project, tmp_path: Path) -> None:
    state = tmp_path / "state.yaml"
    state.write_text(MATCHING_STATE)
    origin = tmp_path / "origin"  # the target branch matches the live state too
    (origin / "manifests" / "hangzhou.yaml").write_text(MATCHING_MANIFEST)
    git(origin, "commit", "-qam", "match")
    (project.workspace / "manifests" / "hangzhou.yaml").write_text(MATCHING_MANIFEST)
    done = project.run("reconciler-plan", state)
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith("No changes, and no earlier note to update: nothing to post.\n")
    assert project.gitlab.notes.get(5, []) == []


def test_plan_failure_note_keeps_a_hostile_error_inert(project: Project) -> None:
    done = project.run("reconciler-plan", FAKE_RECONCILER_ERROR=HOSTILE)
    assert done.returncode == 1
    [note] = project.gitlab.notes[5]
    assert note["body"].startswith(f"{MARKER}\n### reconciler plan\n\n**The plan failed** (exit code 1). The error:\n")
    assert_inert_in_comment(note["body"], HOSTILE)


def test_plan_runs_only_when_the_merge_request_changes_what_manifests_names() -> None:
    document = pipeline()
    assert document["variables"]["MANIFESTS"] == "manifests"  # no trailing slash: expanded in changes
    [rule] = document["reconciler-plan"]["rules"]
    assert rule == {"if": '$CI_PIPELINE_SOURCE == "merge_request_event"', "changes": ["$MANIFESTS/**/*"]}


# ------------------------------------------------------------------------------------------ drift

MATCHING_STATE = """\
region: cn-hangzhou
signatures:
  - {name: orders_backend, key: ordersKey0123456789, secret: ordersSecret2026}
groups:
  - id: 0009db9c828549768a200320714b8930
    name: orders
    apis: [{id: 46fbb52840d146f186e38e8e70fc8c90, name: orders_list}]
    bindings: {RELEASE: {orders_list: orders_backend}}
"""
MATCHING_MANIFEST = """\
region: cn-hangzhou
signatures:
  - {name: orders_backend, key: ordersKey0123456789, secret: "${env:ORDERS_BACKEND_SECRET}"}
bindings:
  - {group: 0009db9c828549768a200320714b8930, stage: RELEASE, signature: orders_backend, apis: [orders_list]}
"""


def test_drift_job_opens_then_updates_then_closes_one_issue(project: Project, tmp_path: Path) -> None:
    first = project.run("reconciler-drift")
    assert (first.returncode, first.stdout[-17:]) == (0, "Opened an issue.\n"), first.stderr + first.stdout
    [issue] = project.gitlab.issues
    assert (issue["iid"], issue["state"], issue["labels"]) == (1, "opened", ["reconciler-drift"])
    assert issue["description"].startswith("The live API Gateway signatures differ from `manifests` on main.\n")
    assert "**Plan: 1 to create, 1 to update" in issue["description"]
    # The plan, then the scan with its coverage tables (the demo's policy violations).
    assert issue["description"].endswith("\n" + (project.workspace / "scan.md").read_text())
    assert "policy violation(s).**" in issue["description"] and "| `internal` | 0 | 1 | 0.0% |" in issue["description"]
    assert (project.workspace / "plan.json").exists() and (project.workspace / "scan.json").exists()
    assert project.reconciler_calls()[-1] == ("scan manifests -o markdown --out scan.md --save-json scan.json "
                                              "--detailed-exitcode")

    second = project.run("reconciler-drift")
    assert second.stdout.splitlines()[-1] == "Updated issue #1."
    assert len(project.gitlab.issues) == 1

    state = tmp_path / "fixed.yaml"
    state.write_text(MATCHING_STATE)
    (project.workspace / "manifests" / "hangzhou.yaml").write_text(MATCHING_MANIFEST)
    third = project.run("reconciler-drift", state)
    assert (third.returncode, third.stdout.splitlines()[-1]) == (0, "Closed issue #1."), third.stderr
    assert issue["state"] == "closed"
    assert issue["notes"] == ["The live state matches the manifests again, and the scan has no finding "
                              "(https://gitlab.example/g/p/-/jobs/77)."]
    fourth = project.run("reconciler-drift", state)  # nothing open, nothing to do
    assert (fourth.returncode, fourth.stdout) == (0, "")


def test_drift_job_opens_the_issue_on_a_scan_finding_alone_then_closes_it(project: Project, tmp_path: Path) -> None:
    state = tmp_path / "state.yaml"
    state.write_text(MATCHING_STATE.replace("name: orders_list}", "name: orders_list, deployed: [RELEASE]}"))
    (project.workspace / "manifests" / "hangzhou.yaml").write_text(MATCHING_MANIFEST)
    # No drift, but a key in a region no manifest declares (cn-shanghai).
    first = project.run("reconciler-drift", state, SECOND_REGION_STATE=str(SHANGHAI_STATE))
    assert (first.returncode, first.stdout) == (0, "Opened an issue.\n"), first.stderr
    [issue] = project.gitlab.issues
    description = issue["description"]
    assert description.startswith(
        "The live API Gateway signatures match `manifests` on main, but the scan of the\n"
        "account found keys in no manifest or APIs the signature policy requires signed.\n"
        "Last checked: https://gitlab.example/g/p/-/jobs/77 (plan.json and scan.json are the job's artifacts).\n\n"
        "### reconciler plan\n\n**No changes.** Live state matches the manifests (cn-hangzhou).\n")
    assert "#### Region `cn-shanghai` (in no manifest)" in description
    assert "- `partner_sh_key` (`fa034846ab3ccba857f160e4ed45c185`)" in description
    coverage = "| Group | Signed | Published | Coverage |\n|---|---:|---:|---:|\n| `orders` | 1 | 1 | 100.0% |"
    assert coverage in description

    clean = project.run("reconciler-drift", state)  # the key is gone
    assert (clean.returncode, clean.stdout) == (0, "Closed issue #1.\n"), clean.stderr
    assert issue["state"] == "closed"


def test_drift_job_fails_on_a_scan_error_and_leaves_the_issue(project: Project) -> None:
    project.run("reconciler-drift")
    scan_only = "Error: cannot reach the endpoint\n"
    done = project.run("reconciler-drift", FAKE_RECONCILER_ERROR=scan_only, FAKE_RECONCILER_FAILS="scan")
    assert done.returncode == 1
    assert done.stderr.endswith(scan_only)
    [issue] = project.gitlab.issues
    assert issue["state"] == "opened"
    assert issue["description"].endswith("**The scan failed** (exit code 1): its error is in "
                                         "https://gitlab.example/g/p/-/jobs/77.\n")


def test_drift_job_fails_on_an_error_and_leaves_the_issue(project: Project) -> None:
    project.run("reconciler-drift")
    done = project.run("reconciler-drift", FAKE_RECONCILER_ERROR="Error: cannot reach the endpoint\n")
    assert done.returncode == 1
    assert [i["state"] for i in project.gitlab.issues] == ["opened"]


# ------------------------------------------------------------------------------------------ apply on merge


def test_apply_on_merge_applies_the_saved_plan_after_a_person_starts_it(project: Project, tmp_path: Path) -> None:
    project.gitlab.commit_merge_requests[SHA] = [{"iid": 3, "state": "closed"}, {"iid": 5, "state": "merged"}]
    plan = project.run("reconciler-apply-plan")
    assert plan.returncode == 0, plan.stderr
    assert (project.workspace / "plan.json").exists() and (project.workspace / "plan.md").exists()
    apply = project.run("reconciler-apply")
    assert apply.returncode == 0, apply.stderr
    assert apply.stdout.endswith("Posted the result to merge request !5.\n")
    [note] = project.gitlab.notes[5]
    assert note["body"].startswith(
        f"### reconciler apply\n\n**Applied** the plan of pipeline https://gitlab.example/g/p/-/pipelines/12 "
        f"(commit {SHA}).\n\n```\n  reconciler will perform the following actions:\n")
    assert "  Apply complete: 1 created, 1 updated, 1 rebound, 2 bound, 1 unbound, 0 deleted.\n" in note["body"]

    document = pipeline()
    job = document["reconciler-apply"]
    assert job["rules"][0]["when"] == "manual"
    assert (job["needs"], job["environment"], job["resource_group"]) == (
        ["reconciler-apply-plan"], {"name": "production"}, "reconciler-production")
    assert job["variables"] == {"ALIBABA_CLOUD_ROLE_ARN": "$RECONCILER_APPLY_ROLE_ARN"}
    assert document["reconciler-apply-plan"]["artifacts"]["paths"] == ["plan.json", "plan.md"]


def test_apply_on_merge_refuses_a_stale_plan(project: Project, tmp_path: Path) -> None:
    project.gitlab.commit_merge_requests[SHA] = [{"iid": 5, "state": "merged"}]
    state = tmp_path / "live.yaml"
    state.write_text(DEMO_STATE.read_text())
    assert project.run("reconciler-apply-plan", state).returncode == 0
    state.write_text(state.read_text().replace("paymentsKeyManual", "paymentsKeyOther"))
    apply = project.run("reconciler-apply", state)
    assert apply.returncode == 1
    [note] = project.gitlab.notes[5]
    assert note["body"].startswith("### reconciler apply\n\n**The apply failed** (exit code 1) in "
                                   "https://gitlab.example/g/p/-/jobs/77")
    assert "stale plan" in note["body"]


def test_apply_note_keeps_hostile_output_inert(project: Project) -> None:
    project.gitlab.commit_merge_requests[SHA] = [{"iid": 5, "state": "merged"}]
    apply = project.run("reconciler-apply", FAKE_RECONCILER_ERROR=HOSTILE)
    assert apply.returncode == 1
    assert_inert_in_comment(project.gitlab.notes[5][0]["body"], HOSTILE)


# ------------------------------------------------------------------------------------------ every job


def test_sign_in_leaves_the_id_token_in_a_private_file_only(project: Project, tmp_path: Path) -> None:
    document = pipeline()
    [sign_in] = [item for item in document[".reconciler"]["before_script"] if "ALIBABA_CLOUD_OIDC_TOKEN_FILE" in item]
    check = (sign_in + '\necho "$ALIBABA_CLOUD_OIDC_TOKEN_FILE"'
             '\necho "token variable: ${RECONCILER_OIDC_TOKEN:-unset}"\n')
    env = {"PATH": os.environ["PATH"], "RECONCILER_OIDC_TOKEN": "gitlab-id-token", "TMPDIR": str(tmp_path)}
    done = run_script(GITLAB_BASH, check, tmp_path, env)
    assert done.returncode == 0, done.stderr
    path, unset = done.stdout.splitlines()
    assert (Path(path).read_text(), stat.S_IMODE(Path(path).stat().st_mode)) == ("gitlab-id-token", 0o600)
    assert unset == "token variable: unset"
    assert document[".reconciler"]["id_tokens"] == {"RECONCILER_OIDC_TOKEN": {"aud": "sts.aliyuncs.com"}}
    assert document[".reconciler"]["variables"]["ALIBABA_CLOUD_ROLE_ARN"] == "$RECONCILER_READ_ROLE_ARN"


def test_every_job_installs_the_pinned_release_locked_by_hash_with_a_timeout_and_a_pip_cache() -> None:
    document = pipeline()
    template = document[".reconciler"]
    assert document["variables"]["RECONCILER_VERSION"] == __version__
    installs = [item for item in template["before_script"] if item.startswith("pip install")]
    assert installs == ["pip install --quiet --require-hashes --no-deps -r ci/reconciler-requirements.txt",
                        'pip install --quiet --no-deps "reconciler-aliyun-apigateway==${RECONCILER_VERSION}" '
                        "&& pip check"]
    assert template["cache"] == {"key": {"files": ["ci/reconciler-requirements.txt"]}, "paths": [".cache/pip"]}
    assert template["timeout"] == "15 minutes"
    jobs = [name for name in document if name.startswith("reconciler-")]
    assert jobs == ["reconciler-plan", "reconciler-drift", "reconciler-apply-plan", "reconciler-apply"]
    for name in jobs:
        assert document[name]["extends"] == ".reconciler"
        [script] = document[name]["script"]
        done = shellcheck("\n".join([*template["before_script"], script]))  # as the runner runs it
        assert done.returncode == 0, (name, done.stdout)


# Every job of the pipeline, and the test that runs its script (after the template's before_script).
JOBS_RUN_BY = {
    "reconciler-plan": "test_plan_note_is_posted_then_updated_in_place_past_the_first_pages",
    "reconciler-drift": "test_drift_job_opens_then_updates_then_closes_one_issue",
    "reconciler-apply-plan": "test_apply_on_merge_applies_the_saved_plan_after_a_person_starts_it",
    "reconciler-apply": "test_apply_on_merge_applies_the_saved_plan_after_a_person_starts_it",
}


def test_every_job_is_run_by_a_test() -> None:
    assert [name for name in pipeline() if not name.startswith(".") and name != "variables"] == list(JOBS_RUN_BY)
    assert all(callable(globals()[test]) for test in JOBS_RUN_BY.values())
