"""The credential chain as `reconciler plan` uses it against the emulator: `--profile` alone when given;
else the vendor's chain: the environment, then the CLI profile file's profile named by
ALIBABA_CLOUD_PROFILE or its current one (tests/test_credential_modes.py covers the other sources).

The emulator accepts one key (testid / testsecret); every other source holds a key it does not know,
so which source won shows in the outcome."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.emulator.server import RunningEmulator, running_emulator
from tests.support.cli import CliResult
from tests.support.paths import ROOT

DEMO_SUMMARY = "Plan: 1 to create, 1 to update, 0 to delete, 2 to bind, 1 to unbind, 1 to rebind, 1 unmanaged.\n"
GOOD_ENV = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "testid", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "testsecret"}
UNKNOWN_ENV = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "envUnknownId", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "envUnknownSecret"}
PROFILES = {
    "current": "",
    "profiles": [
        {"name": "good", "mode": "AK", "access_key_id": "testid", "access_key_secret": "testsecret"},
        {"name": "unknown", "mode": "AK", "access_key_id": "fileUnknownId", "access_key_secret": "fileSecret01"},
    ],
}
NOT_FOUND = re.compile(r"Error: DescribeSignatures failed: InvalidAccessKeyId\.NotFound: Specified access key is not "
                       r"found\. \(RequestId [0-9A-F-]{36}\)\n")

Cli = Callable[..., CliResult]


@pytest.fixture(scope="module")
def emulator() -> Iterator[RunningEmulator]:
    with running_emulator(ROOT / "examples/emulator-state.yaml") as running:
        yield running


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty HOME, no ALIBABA_CLOUD_* variables and no proxy, off ECS, run from the project root."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in list(os.environ):
        if name.startswith("ALIBABA_CLOUD_") or name.lower() in ("http_proxy", "https_proxy", "no_proxy"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")
    return tmp_path


def write_profiles(home: Path, current: str = "") -> None:
    config = home / ".aliyun" / "config.json"
    config.parent.mkdir()
    config.write_text(json.dumps({**PROFILES, "current": current}))


def plan(cli: Cli, emulator: RunningEmulator, *options: str, env: dict[str, str] | None = None) -> CliResult:
    return cli("plan", "manifests/", "--endpoint", emulator.url, "--env-file", "examples/demo.env", *options, env=env)


def assert_planned(result: CliResult) -> None:
    assert (result.code, result.err) == (0, "")
    assert result.out.endswith(DEMO_SUMMARY)


def assert_unknown_key(result: CliResult) -> None:
    assert (result.code, result.out) == (1, "")
    assert NOT_FOUND.fullmatch(result.err), result.err


# (profile file's current profile, options, environment, which source must win)
CHAIN = [
    pytest.param("", (), GOOD_ENV, assert_planned, id="environment"),
    pytest.param("good", (), {}, assert_planned, id="current-profile-without-environment"),
    pytest.param("unknown", (), GOOD_ENV, assert_planned, id="environment-before-current-profile"),
    pytest.param("good", (), UNKNOWN_ENV, assert_unknown_key, id="environment-not-current-profile"),
    pytest.param("", (), {**UNKNOWN_ENV, "ALIBABA_CLOUD_PROFILE": "good"}, assert_unknown_key,
                 id="environment-before-profile-variable"),
    pytest.param("unknown", (), {"ALIBABA_CLOUD_PROFILE": "good"}, assert_planned,
                 id="profile-variable-before-current-profile"),
    pytest.param("", ("--profile", "good"), UNKNOWN_ENV, assert_planned, id="profile-option-before-environment"),
    pytest.param("good", ("--profile", "unknown"), GOOD_ENV, assert_unknown_key,
                 id="profile-option-before-environment-and-current"),
    pytest.param("", ("--profile", "good"), {"ALIBABA_CLOUD_PROFILE": "unknown"}, assert_planned,
                 id="profile-option-before-profile-variable"),
]


@pytest.mark.parametrize(("current", "options", "env", "check"), CHAIN)
def test_credentials_chain_order(cli: Cli, emulator: RunningEmulator, home: Path, current: str,
                                 options: tuple[str, ...], env: dict[str, str],
                                 check: Callable[[CliResult], None]) -> None:
    write_profiles(home, current)
    check(plan(cli, emulator, *options, env=env))


def test_a_wrong_secret_in_the_environment_is_rejected_by_the_endpoint(cli: Cli, emulator: RunningEmulator,
                                                                       home: Path) -> None:
    env = {**GOOD_ENV, "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "notTheSecret"}
    result = plan(cli, emulator, env=env)
    assert (result.code, result.out) == (1, "")
    mismatch = r"Error: DescribeSignatures failed: SignatureDoesNotMatch: [^\n]+ \(RequestId [0-9A-F-]{36}\)\n"
    assert re.fullmatch(mismatch, result.err), result.err
    assert "notTheSecret" not in result.err


def test_no_credentials_at_all_is_one_line_saying_what_to_set(cli: Cli, emulator: RunningEmulator,
                                                            home: Path) -> None:
    result = plan(cli, emulator)
    assert (result.code, result.out) == (1, "")
    assert result.err == (
        "Error: no Alibaba Cloud credentials found; tried "
        "environment: ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET are not set; "
        "OIDC role: ALIBABA_CLOUD_ROLE_ARN, ALIBABA_CLOUD_OIDC_PROVIDER_ARN, ALIBABA_CLOUD_OIDC_TOKEN_FILE are not all "
        f"set; CLI profile: {home}/.aliyun/config.json does not exist; "
        f"credentials.ini: {home}/.alibabacloud/credentials.ini does not exist; "
        "ECS RAM role: disabled by ALIBABA_CLOUD_ECS_METADATA_DISABLED; "
        "credentials URI: ALIBABA_CLOUD_CREDENTIALS_URI is not set\n")


def test_an_unknown_profile_names_the_profiles_there(cli: Cli, emulator: RunningEmulator, home: Path) -> None:
    write_profiles(home)
    result = plan(cli, emulator, "--profile", "staging", env=GOOD_ENV)
    assert (result.code, result.out) == (1, "")
    assert result.err == (f"Error: profile 'staging' is not in {home}/.aliyun/config.json "
                          "(profiles there: good, unknown)\n")


def test_a_profile_without_a_profile_file_is_an_error(cli: Cli, emulator: RunningEmulator, home: Path) -> None:
    result = plan(cli, emulator, "--profile", "good", env=GOOD_ENV)
    assert (result.code, result.out) == (1, "")
    assert result.err == f"Error: profile 'good' was asked for, but {home}/.aliyun/config.json does not exist\n"


def test_sts_credentials_send_their_token(cli: Cli, home: Path) -> None:
    sts = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "STS.testid", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "stsSecret01"}
    config = home / ".aliyun" / "config.json"
    config.parent.mkdir()
    config.write_text(json.dumps({"current": "sts", "profiles": [
        {"name": "sts", "mode": "StsToken", "access_key_id": "STS.testid", "access_key_secret": "stsSecret01",
         "sts_token": "stsToken01"}]}))
    with running_emulator(ROOT / "examples/emulator-state.yaml", access_key_id="STS.testid",
                          access_key_secret="stsSecret01", security_token="stsToken01") as emulator:
        from_profile = plan(cli, emulator)
        without_token = plan(cli, emulator, env=sts)  # the environment wins over the current profile
        from_env = plan(cli, emulator, env={**sts, "ALIBABA_CLOUD_SECURITY_TOKEN": "stsToken01"})
    assert_planned(from_profile)
    assert_planned(from_env)
    assert (without_token.code, without_token.out) == (1, "")
    assert without_token.err.startswith("Error: DescribeSignatures failed: MissingSecurityToken: ")
    assert without_token.err.count("\n") == 1
