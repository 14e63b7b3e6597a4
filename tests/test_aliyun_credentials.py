"""The credential chain: explicit profile, then environment, then the profile file's current profile."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from reconciler.aliyun.credentials import Credentials, CredentialsError, resolve_credentials
from reconciler.errors import ReconcilerError

ENV = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "env-id", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "env-secret"}


def profile_file(tmp_path: Path, current: str = "default", **extra: dict[str, Any]) -> Path:
    profiles = [
        {"name": "default", "mode": "AK", "access_key_id": "default-id", "access_key_secret": "default-secret"},
        {
            "name": "sts",
            "mode": "StsToken",
            "access_key_id": "STS.id",
            "access_key_secret": "sts-secret",
            "sts_token": "sts-token",
            "region_id": "cn-hangzhou",
        },
        {"name": "role", "mode": "RamRoleArn", "access_key_id": "x", "access_key_secret": "y"},
        *extra.values(),
    ]
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"current": current, "profiles": profiles}), encoding="utf-8")
    return path


def test_an_explicit_profile_beats_the_environment(tmp_path: Path) -> None:
    found = resolve_credentials("sts", ENV, profile_file(tmp_path))
    assert found.access_key_id == "STS.id"
    assert found.access_key_secret.get_secret_value() == "sts-secret"
    assert found.security_token is not None and found.security_token.get_secret_value() == "sts-token"


def test_alibaba_cloud_profile_selects_a_profile_and_beats_the_environment(tmp_path: Path) -> None:
    environ = {**ENV, "ALIBABA_CLOUD_PROFILE": "sts"}
    assert resolve_credentials(None, environ, profile_file(tmp_path)).access_key_id == "STS.id"


def test_the_profile_argument_beats_alibaba_cloud_profile(tmp_path: Path) -> None:
    environ = {"ALIBABA_CLOUD_PROFILE": "sts"}
    assert resolve_credentials("default", environ, profile_file(tmp_path)).access_key_id == "default-id"


def test_the_environment_beats_the_current_profile(tmp_path: Path) -> None:
    environ = {**ENV, "ALIBABA_CLOUD_SECURITY_TOKEN": "env-token"}
    found = resolve_credentials(None, environ, profile_file(tmp_path))
    assert found.access_key_id == "env-id"
    assert found.access_key_secret.get_secret_value() == "env-secret"
    assert found.security_token is not None and found.security_token.get_secret_value() == "env-token"


def test_the_current_profile_is_the_last_resort(tmp_path: Path) -> None:
    found = resolve_credentials(None, {}, profile_file(tmp_path, current="sts"))
    assert (found.access_key_id, found.security_token is not None) == ("STS.id", True)


def test_an_ak_profile_has_no_token(tmp_path: Path) -> None:
    assert resolve_credentials(None, {}, profile_file(tmp_path)).security_token is None


def test_nothing_found_says_exactly_what_to_set(tmp_path: Path) -> None:
    missing = tmp_path / "absent.json"
    with pytest.raises(CredentialsError) as caught:
        resolve_credentials(None, {"ALIBABA_CLOUD_ACCESS_KEY_ID": ""}, missing)
    assert str(caught.value) == (
        "no Alibaba Cloud credentials found: set ALIBABA_CLOUD_ACCESS_KEY_ID and "
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET (and ALIBABA_CLOUD_SECURITY_TOKEN for STS), "
        f"or set ALIBABA_CLOUD_PROFILE to a profile in {missing}"
    )
    assert isinstance(caught.value, ReconcilerError)
    assert "\n" not in str(caught.value)


def test_a_missing_profile_names_the_profiles_there(tmp_path: Path) -> None:
    path = profile_file(tmp_path)
    with pytest.raises(CredentialsError) as caught:
        resolve_credentials("prod", ENV, path)
    assert str(caught.value) == f"profile 'prod' is not in {path} (profiles there: default, role, sts)"


def test_a_current_profile_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="profile 'gone' is not in"):
        resolve_credentials(None, {}, profile_file(tmp_path, current="gone"))


def test_an_unknown_mode_is_a_clear_error(tmp_path: Path) -> None:
    path = profile_file(tmp_path)
    with pytest.raises(CredentialsError) as caught:
        resolve_credentials("role", {}, path)
    assert str(caught.value) == (f"profile 'role' in {path} uses mode 'RamRoleArn'; only AK and StsToken are supported")


def test_an_sts_profile_without_a_token_is_an_error(tmp_path: Path) -> None:
    broken = {"name": "half", "mode": "StsToken", "access_key_id": "i", "access_key_secret": "s"}
    path = profile_file(tmp_path, half=broken)
    with pytest.raises(CredentialsError) as caught:
        resolve_credentials("half", {}, path)
    assert str(caught.value) == f"profile 'half' in {path} (mode StsToken) has no sts_token"


def test_an_explicit_profile_without_a_profile_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "absent.json"
    with pytest.raises(CredentialsError) as caught:
        resolve_credentials(None, {**ENV, "ALIBABA_CLOUD_PROFILE": "prod"}, missing)
    assert str(caught.value) == f"profile 'prod' was asked for, but {missing} does not exist"


def test_a_profile_file_that_is_not_json_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("{\n oops", encoding="utf-8")
    with pytest.raises(CredentialsError) as caught:
        resolve_credentials(None, {}, path)
    assert str(caught.value) == f"{path} is not valid JSON (line 2)"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"ALIBABA_CLOUD_ACCESS_KEY_ID": "id"},
            "ALIBABA_CLOUD_ACCESS_KEY_ID is set but ALIBABA_CLOUD_ACCESS_KEY_SECRET is not: set both",
        ),
        (
            {"ALIBABA_CLOUD_ACCESS_KEY_SECRET": "half-secret"},
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET is set but ALIBABA_CLOUD_ACCESS_KEY_ID is not: set both",
        ),
    ],
)
def test_half_a_key_pair_in_the_environment_is_an_error(tmp_path: Path, environ: dict[str, str], message: str) -> None:
    with pytest.raises(CredentialsError) as caught:
        resolve_credentials(None, environ, profile_file(tmp_path))
    assert str(caught.value) == message
    assert "half-secret" not in str(caught.value)


def test_credentials_never_show_their_secrets() -> None:
    credentials = Credentials(
        access_key_id="id", access_key_secret=SecretStr("s3cret"), security_token=SecretStr("t0ken")
    )
    for text in (repr(credentials), str(credentials), credentials.model_dump_json()):
        assert "s3cret" not in text and "t0ken" not in text
    with pytest.raises(ValidationError):
        credentials.access_key_id = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="access_key_secret is empty"):
        Credentials(access_key_id="id", access_key_secret=SecretStr(" "))
