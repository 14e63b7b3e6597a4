"""Secret hygiene: distinctive secrets planted in manifests, the environment, the credentials (access key
secret, STS token) and the emulator's state never show - in clear, base64 or URL-encoded - in the stdout
or stderr of any command run with --debug, nor in any file written (plans, saved plan, snapshot, export)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
import yaml

from reconciler.emulator.server import running_emulator
from reconciler.emulator.state import EmulatorState
from tests.support.paths import ROOT
from tests.support.prewarmed import Prewarmed

MANIFEST_ENV_SECRET = "plantedManifestSecret7Q"
MANIFEST_LITERAL_SECRET = "plantedLiteral@Secret8R"
LIVE_SECRET = "plantedLive#Secret1U"
ACCESS_KEY_SECRET = "plantedAccessKey/Secret+9S="
STS_TOKEN = "plantedStsToken/0T+abc=="
PLANTED = (MANIFEST_ENV_SECRET, MANIFEST_LITERAL_SECRET, LIVE_SECRET, ACCESS_KEY_SECRET, STS_TOKEN)
GROUP = "0009db9c828549768a200320714b8930"


def encodings(secret: str) -> set[str]:
    raw = secret.encode()
    return {secret, quote(secret, safe=""), quote_plus(secret), base64.b64encode(raw).decode().rstrip("="),
            base64.urlsafe_b64encode(raw).decode().rstrip("="), raw.hex()}


def leaks(text: str) -> list[str]:
    return [form for secret in PLANTED for form in encodings(secret) if form in text]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "hangzhou.yaml").write_text(yaml.safe_dump({
        "region": "cn-hangzhou",
        "signatures": [
            {"name": "orders_backend", "key": "ordersKey01", "secret": "${env:ORDERS_SECRET}"},
            {"name": "literal_backend", "key": "literalKey01", "secret": MANIFEST_LITERAL_SECRET},
            {"name": "new_backend", "key": "newKey01", "secret": "${env:ORDERS_SECRET}"},
        ],
        "bindings": [{"group": GROUP, "stage": "RELEASE", "signature": "orders_backend", "apis": ["orders_list"]},
                     {"group": GROUP, "stage": "RELEASE", "signature": "new_backend", "apis": ["orders_get"]}],
    }), encoding="utf-8")
    return tmp_path


def live_state() -> EmulatorState:
    return EmulatorState.from_dict({
        "region": "cn-hangzhou",
        "signatures": [{"name": "orders_backend", "key": "ordersKey01", "secret": LIVE_SECRET},
                       {"name": "literal_backend", "key": "literalKey01", "secret": LIVE_SECRET},
                       {"name": "unmanaged_key", "key": "unmanagedKey", "secret": LIVE_SECRET}],
        "groups": [{"id": GROUP, "name": "orders", "apis": [{"name": "orders_list"}, {"name": "orders_get"}],
                    "bindings": {"RELEASE": {"orders_list": "unmanaged_key"}}}],
    })


@pytest.fixture
def emulator_url() -> Iterator[str]:
    with running_emulator(live_state(), access_key_id="plantedid", access_key_secret=ACCESS_KEY_SECRET,
                          security_token=STS_TOKEN) as emulator:
        yield emulator.url


Reconciler = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def reconciler(prewarmed: Prewarmed) -> Reconciler:
    """`reconciler --debug ARGS` in a process of its own, with the planted credentials and secret."""

    def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALIBABA_CLOUD_")}
        env.update(HOME=str(cwd / "home"), ORDERS_SECRET=MANIFEST_ENV_SECRET, ALIBABA_CLOUD_ACCESS_KEY_ID="plantedid",
                   ALIBABA_CLOUD_ACCESS_KEY_SECRET=ACCESS_KEY_SECRET, ALIBABA_CLOUD_SECURITY_TOKEN=STS_TOKEN,
                   SOURCE_DATE_EPOCH="1767225600")
        return prewarmed.run(["--debug", *args], env=env, cwd=cwd, timeout=60)

    return run


@pytest.mark.slow  # nine commands, each in its own process, as a user runs them
def test_no_command_shows_or_writes_a_planted_secret(workspace: Path, emulator_url: str,
                                                     reconciler: Reconciler) -> None:
    endpoint = ["--endpoint", emulator_url]
    # The reads run side by side (each writes its own files); then, in order, what needs their files or
    # changes the live state.
    reads = [
        ["validate", "manifests"],
        ["plan", "manifests", *endpoint, "-o", "text", "--out", "plan.txt", "--save-snapshot", "snapshot.json",
         "--out-plan", "saved-plan.json"],
        ["plan", "manifests", *endpoint, "-o", "json"],
        ["plan", "manifests", *endpoint, "-o", "markdown", "--detailed-exitcode"],
        ["export", "--region", "cn-hangzhou", "--all-groups", *endpoint, "--out", "exported"],
        ["export", "--region", "cn-hangzhou", "--all-groups", *endpoint],
    ]
    then = [
        ["plan", "manifests", "--snapshot", "snapshot.json", "-o", "json", "--out", "offline.json"],
        ["apply", "manifests", *endpoint, "--auto-approve", "--signature-version", "v1"],
        ["apply", "manifests", *endpoint, "--auto-approve"],
    ]
    with ThreadPoolExecutor(max_workers=len(reads)) as pool:
        runs = list(zip(reads, pool.map(lambda command: reconciler(*command, cwd=workspace), reads), strict=True))
    runs += [(command, reconciler(*command, cwd=workspace)) for command in then]
    found: list[str] = []
    for command, done in runs:
        assert "Traceback" not in done.stderr, done.stderr
        assert done.returncode in (0, 2), (command, done.stderr[-500:])
        found += [f"{command[0]} {form!r} on stdout" for form in leaks(done.stdout)]
        found += [f"{command[0]} {form!r} on stderr" for form in leaks(done.stderr)]
        if "--endpoint" in command:  # --debug really logged the exchange; the signature only as redacted
            assert "DEBUG reconciler.aliyun" in done.stderr, command
            if "v1" not in command:
                assert "'authorization': '<redacted>'" in done.stderr, command
    written = [p for p in workspace.rglob("*") if p.is_file() and p.parent.name != "manifests"]
    assert {p.name for p in written} >= {"plan.txt", "snapshot.json", "saved-plan.json", "offline.json",
                                        "cn-hangzhou.yaml"}
    found += [f"{p.name}: {form!r}" for p in written for form in leaks(p.read_text(encoding="utf-8"))]
    assert not found, found


@pytest.mark.slow  # the emulator and three plans, each in its own process
def test_the_emulator_never_prints_its_access_key_secret(tmp_path: Path, quick_retries: None,
                                                         prewarmed: Prewarmed) -> None:
    state_file = tmp_path / "state.yaml"
    live_state().dump_state(state_file)
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "--debug", "emulator", "--state", str(state_file), "--port", "0",
         "--access-key-id", "plantedid", "--access-key-secret", ACCESS_KEY_SECRET, "--malformed-rate", "0.5",
         "--seed", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().split()[-1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALIBABA_CLOUD_")}
        manifests = tmp_path / "m.yaml"
        manifests.write_text("region: cn-hangzhou\n", encoding="utf-8")
        env.update(HOME=str(tmp_path), ALIBABA_CLOUD_ACCESS_KEY_ID="plantedid",
                   ALIBABA_CLOUD_ACCESS_KEY_SECRET=ACCESS_KEY_SECRET)
        for _ in range(3):
            prewarmed.run(["--debug", "plan", str(manifests), "--endpoint", url], env=env, cwd=ROOT, timeout=60)
    finally:
        process.terminate()
        out, err = process.communicate(timeout=15)
    assert "Traceback" not in err
    assert not leaks(out + err), leaks(out + err)
