"""`reconciler plan` against live state over real HTTP: the demo under injected faults, as a user runs it
(emulator and plan in subprocesses), offline replay of a saved snapshot, V1 signing, refused inputs and
secret-free debug logs."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
import yaml

from reconciler.aliyun.client import ApiClient
from reconciler.aliyun.credentials import Credentials
from reconciler.aliyun.transport import http_transport
from reconciler.differ import diff
from reconciler.emulator.faults import FaultConfig
from reconciler.emulator.server import running_emulator
from reconciler.emulator.state import EmulatorState
from reconciler.fetcher import fetch_snapshots
from reconciler.live import fetch_targets
from reconciler.manifest import load_desired_state, load_env_file
from reconciler.render.plan import render_text
from reconciler.snapshot import Snapshot
from tests.support.cli import CliResult
from tests.support.counting import CountingTransport
from tests.support.paths import ROOT
from tests.support.prewarmed import Prewarmed

MANIFESTS = "manifests/"
STATE = "examples/emulator-state.yaml"
ENV_FILE = "examples/demo.env"
DEMO_SUMMARY = "Plan: 1 to create, 1 to update, 0 to delete, 2 to bind, 1 to unbind, 1 to rebind, 1 unmanaged.\n"
EMULATOR_ENV = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "testid", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "testsecret"}

Cli = Callable[..., CliResult]


@pytest.fixture(autouse=True)
def demo_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Run from the project root, as the README does, with no credentials and no profile file."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in list(os.environ):
        if name.startswith("ALIBABA_CLOUD_"):
            monkeypatch.delenv(name)


@pytest.fixture
def demo_plan(cli: Cli) -> str:
    """The plan of the demo read from a fault-free embedded emulator."""
    result = cli("plan", MANIFESTS, "--emulator", STATE, "--env-file", ENV_FILE)
    assert (result.code, result.err) == (0, "")
    assert result.out.startswith("reconciler will perform the following actions:\n")
    assert result.out.endswith(DEMO_SUMMARY)
    return result.out


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("ALIBABA_CLOUD_")}
    return {**env, **extra}


Reconciler = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def reconciler(prewarmed: Prewarmed) -> Reconciler:
    """`reconciler ARGS` in a process of its own (its own logging, as a user runs it), forked from a prewarmed one."""

    def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return prewarmed.run(args, env=env, cwd=ROOT, timeout=60)

    return run


@pytest.fixture
def faulty_emulator_process() -> Iterator[str]:
    """`reconciler emulator` in a subprocess, throttling 30% and failing 10% of requests; yields its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "emulator", "--state", STATE, "--port", "0",
         "--throttle-rate", "0.3", "--error-rate", "0.1", "--seed", "7"],
        stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert process.stdout is not None
        first_line = process.stdout.readline()
        assert re.fullmatch(r"Emulator listening on http://127\.0\.0\.1:\d+\n", first_line), first_line
        yield first_line.split()[-1]
    finally:
        process.terminate()
        process.wait(timeout=10)


# ------------------------------------------------------------------------------------------ faults


def test_cli_plan_under_injected_faults_is_the_fault_free_plan(demo_plan: str, faulty_emulator_process: str,
                                                               quick_retries: None, reconciler: Reconciler) -> None:
    env = subprocess_env(**EMULATOR_ENV)
    plan = reconciler("plan", MANIFESTS, "--endpoint", faulty_emulator_process, "--env-file", ENV_FILE, env=env)
    assert (plan.returncode, plan.stdout, plan.stderr) == (0, demo_plan, "")

    detailed = reconciler("--debug", "plan", MANIFESTS, "--endpoint", faulty_emulator_process,
                          "--env-file", ENV_FILE, "--detailed-exitcode", env=env)
    assert (detailed.returncode, detailed.stdout) == (2, demo_plan)
    # The faults did happen in this run, and were retried.
    assert "Throttling.User" in detailed.stderr
    assert "retrying in" in detailed.stderr
    assert leaked(detailed.stdout + detailed.stderr, [*demo_secrets(), "testsecret"]) == []


async def _no_wait(_: float) -> None:
    return None


@pytest.mark.parametrize("seed", [7, 42])
def test_retries_under_faults_read_the_same_snapshot(seed: int) -> None:
    state = EmulatorState.from_file(ROOT / STATE)  # one state behind both emulators: identical bound times
    desired = load_desired_state([Path(MANIFESTS)], env=load_env_file(Path(ENV_FILE)))
    faults = FaultConfig(throttle_rate=0.3, error_rate=0.1, seed=seed)
    sent: list[CountingTransport] = []

    def read(url: str) -> dict[str, Snapshot]:
        def client_for(region: str) -> ApiClient:
            sent.append(CountingTransport(http_transport(url)))
            return ApiClient(url, Credentials(access_key_id="testid", access_key_secret="testsecret"),
                             sleep=_no_wait, transport=sent[-1])

        snapshots = asyncio.run(fetch_snapshots(fetch_targets(desired), client_for))
        return {r: s.model_copy(update={"endpoint": None, "fetched_at": None}) for r, s in snapshots.items()}

    with running_emulator(state) as calm, running_emulator(state, faults=faults) as flaky:
        expected = read(calm.url)
        calls = sum(s.requests for s in sent)  # unfaulted, one request a call
        sent.clear()
        actual = read(flaky.url)

    assert actual == expected
    assert render_text(diff(desired, actual), color=False) == render_text(diff(desired, expected), color=False)
    throttled = sum(s.throttled for s in sent)
    retries = sum(s.requests for s in sent) - calls
    assert throttled > 0
    assert retries > throttled  # some 503s were retried too


@pytest.mark.parametrize("setting", ["RECONCILER_RETRY_BASE_DELAY", "RECONCILER_RETRY_MAX_DELAY"])
def test_a_retry_wait_setting_reaches_every_retry(cli: Cli, caplog: pytest.LogCaptureFixture, setting: str) -> None:
    """Either wait set to 0 makes every retry immediate: the client's debug log says so for each one."""
    caplog.set_level(logging.DEBUG, logger="reconciler.aliyun")
    with running_emulator(EmulatorState.from_file(ROOT / STATE), faults=FaultConfig(error_rate=1.0)) as emulator:
        result = cli("plan", MANIFESTS, "--endpoint", emulator.url, "--env-file", ENV_FILE,
                     env={**EMULATOR_ENV, setting: "0"})
    assert (result.code, result.out) == (1, "")
    assert re.fullmatch(r"Error: Describe\w+ failed: ServiceUnavailable: .*, after 8 attempts\)\n", result.err)
    waits = [m.rsplit(" ", 1)[-1] for m in (r.getMessage() for r in caplog.records) if "; retrying in " in m]
    assert len(waits) >= 7 and set(waits) == {"0.000s"}  # 8 attempts of a read, 7 waits between them


@pytest.mark.parametrize(("setting", "value", "problem"), [
    ("RECONCILER_RETRY_BASE_DELAY", "soon", "a number of seconds, 0 or more, not 'soon'"),
    ("RECONCILER_RETRY_MAX_DELAY", "-1", "a number of seconds, 0 or more, not '-1'"),
    ("RECONCILER_RETRY_MAX_DELAY", "inf", "a number of seconds, 0 or more, not 'inf'"),
    ("RECONCILER_MIN_RPS", "0", "a number of requests a second, more than 0, not '0'"),
])
def test_a_retry_setting_that_is_no_such_number_is_one_error_line(cli: Cli, setting: str, value: str,
                                                                 problem: str) -> None:
    result = cli("plan", MANIFESTS, "--endpoint", "http://127.0.0.1:1", "--env-file", ENV_FILE,
                 env={**EMULATOR_ENV, setting: value})
    assert (result.code, result.out, result.err) == (1, "", f"Error: {setting} must be {problem}\n")


# ------------------------------------------------------------------------------- refused inputs


def test_plain_http_to_a_remote_host_is_refused(cli: Cli) -> None:
    result = cli("plan", MANIFESTS, "--endpoint", "http://example.com", "--env-file", ENV_FILE, env=EMULATOR_ENV)
    assert (result.code, result.out) == (1, "")
    assert result.err == ("Error: endpoint 'http://example.com' uses plain http to a host that is not loopback; "
                          "use https (http is allowed only for 127.0.0.0/8, ::1 and localhost)\n")


def test_an_emulator_state_of_another_region_is_refused(cli: Cli, tmp_path: Path) -> None:
    state = tmp_path / "shanghai.yaml"
    state.write_text((ROOT / STATE).read_text().replace("region: cn-hangzhou", "region: cn-shanghai"))
    result = cli("plan", MANIFESTS, "--emulator", str(state), "--env-file", ENV_FILE)
    assert (result.code, result.out) == (1, "")
    assert result.err == (f"Error: the emulator state {state} is region cn-shanghai; "
                          "the manifests declare cn-hangzhou\n")


def test_endpoint_and_emulator_together_are_refused(cli: Cli) -> None:
    result = cli("plan", MANIFESTS, "--emulator", STATE, "--endpoint", "http://127.0.0.1:1", "--env-file", ENV_FILE)
    assert (result.code, result.out, result.err) == (1, "", "Error: give either --endpoint or --emulator, not both\n")


@pytest.mark.parametrize(("written", "problem"), [
    ("orders_created", "API 'orders_created' does not exist in group 0009db9c828549768a200320714b8930"),
    ("46fbb52840d146f186e38e8e70fc8c99",
     "API id 46fbb52840d146f186e38e8e70fc8c99 does not exist in group 0009db9c828549768a200320714b8930"),
])
def test_an_api_missing_from_its_group_is_an_error_at_its_manifest_line(cli: Cli, tmp_path: Path, written: str,
                                                                        problem: str) -> None:
    manifest = tmp_path / "hangzhou.yaml"
    lines = (ROOT / MANIFESTS / "hangzhou.yaml").read_text().splitlines(keepends=True)
    line = next(n for n, text in enumerate(lines, 1) if "apis: [orders_list, orders_get, orders_create," in text)
    lines[line - 1] = lines[line - 1].replace("orders_create,", f"{written},")
    manifest.write_text("".join(lines))
    result = cli("plan", str(manifest), "--emulator", STATE, "--env-file", ENV_FILE)
    assert (result.code, result.out, result.err) == (1, "", f"Error: {manifest}:{line}: apis: {problem}\n")


# --------------------------------------------------------------------------- saved snapshots, V1


def demo_secrets() -> list[str]:
    """Every secret of the demo: the signature secrets of the emulator state and of the env file."""
    state = yaml.safe_load((ROOT / STATE).read_text())
    return [s["secret"] for s in state["signatures"]] + list(load_env_file(ROOT / ENV_FILE).values())


def encodings(secret: str) -> set[str]:
    raw = secret.encode()
    return {secret, quote(secret, safe=""), quote_plus(secret), base64.b64encode(raw).decode(),
            base64.urlsafe_b64encode(raw).decode().rstrip("=")}


def leaked(text: str, secrets: list[str]) -> list[str]:
    return sorted(form for secret in secrets for form in encodings(secret) if form in text)


def test_the_secret_scan_finds_every_form_of_a_secret() -> None:
    secrets = demo_secrets()
    assert len(secrets) == 7  # four signatures in the state, three variables in the env file
    for form in ("ordersSecret2026", "b3JkZXJzU2VjcmV0MjAyNg==", "b3JkZXJzU2VjcmV0MjAyNg"):
        assert leaked(f"...{form}...", secrets) != []
    assert leaked("s%40cret%21", ["s@cret!"]) == ["s%40cret%21"]


def test_a_saved_snapshot_replays_the_same_plan_and_holds_no_clear_secret(cli: Cli, demo_plan: str,
                                                                          tmp_path: Path) -> None:
    saved = tmp_path / "live.json"
    live = cli("plan", MANIFESTS, "--emulator", STATE, "--env-file", ENV_FILE, "--save-snapshot", str(saved),
               "--detailed-exitcode")
    offline = cli("plan", MANIFESTS, "--snapshot", str(saved), "--env-file", ENV_FILE, "--detailed-exitcode")
    assert (live.code, live.out) == (2, demo_plan)
    assert (offline.code, offline.out, offline.err) == (2, demo_plan, "")
    text = saved.read_text()
    assert leaked(text, demo_secrets()) == []
    assert text.count('"secret_scrypt": "scrypt:32768:8:1:') == 4
    assert "sha256" not in text


@pytest.mark.parametrize("mode", ["--emulator", "--endpoint"])
def test_signature_version_v1_plans_the_same(cli: Cli, demo_plan: str, caplog: pytest.LogCaptureFixture,
                                             mode: str) -> None:
    caplog.set_level(logging.DEBUG, logger="reconciler.aliyun")
    with running_emulator(ROOT / STATE) as emulator:
        where = [mode, STATE if mode == "--emulator" else emulator.url]
        result = cli("plan", MANIFESTS, *where, "--env-file", ENV_FILE, "--signature-version", "v1",
                     env=EMULATOR_ENV)
    assert (result.code, result.out, result.err) == (0, demo_plan, "")
    sent = [r.getMessage() for r in caplog.records if " POST " in r.getMessage()]
    assert len(sent) == 6  # signatures, three scopes, two groups: one page each
    assert all("SignatureMethod=HMAC-SHA1" in line and "SignatureVersion=1.0" in line for line in sent)


# --------------------------------------------------------------------------------- debug logs


@pytest.mark.parametrize("where", ["before the command name", "after it"])
def test_debug_logs_of_the_embedded_emulator_hold_no_secret(where: str, reconciler: Reconciler) -> None:
    args = ["plan", MANIFESTS, "--emulator", STATE, "--env-file", ENV_FILE]
    args = ["--debug", *args] if where == "before the command name" else [*args, "--debug"]
    result = reconciler(*args, env=subprocess_env())
    assert result.returncode == 0, result.stderr
    assert "DescribeSignatures attempt 1: POST http://127.0.0.1:" in result.stderr
    assert leaked(result.stdout + result.stderr, [*demo_secrets(), "testsecret"]) == []


@pytest.mark.parametrize("signature_version", ["v3", "v1"])
def test_debug_logs_with_sts_credentials_hold_no_secret(signature_version: str, reconciler: Reconciler) -> None:
    access_key_secret = "AkSecretForTheDebugScan"
    token = "StsTokenForTheDebugScan"
    with running_emulator(ROOT / STATE, access_key_id="STS.debugscan", access_key_secret=access_key_secret,
                          security_token=token) as emulator:
        env = subprocess_env(ALIBABA_CLOUD_ACCESS_KEY_ID="STS.debugscan",
                             ALIBABA_CLOUD_ACCESS_KEY_SECRET=access_key_secret,
                             ALIBABA_CLOUD_SECURITY_TOKEN=token)
        result = reconciler("--debug", "plan", MANIFESTS, "--endpoint", emulator.url, "--env-file", ENV_FILE,
                            "--signature-version", signature_version, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith(DEMO_SUMMARY)
    assert "DescribeSignatures attempt 1: POST http://127.0.0.1:" in result.stderr
    assert leaked(result.stdout + result.stderr, [*demo_secrets(), access_key_secret, token]) == []
