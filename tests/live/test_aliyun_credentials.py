"""The credential chain, in the vendor's order: environment, OIDC role, the CLI's profile file, the
credentials.ini file, the ECS RAM role, a credentials URI; ``--profile`` picks one CLI profile instead.

These tests need no network: sources that would call out are given what makes them skip or fail at once
(the metadata service is disabled through ALIBABA_CLOUD_ECS_METADATA_DISABLED, as a user off ECS may)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from reconciler.aliyun.credentials import (
    Credentials,
    CredentialsError,
    CredentialSource,
    _Fetched,
    resolve_credential_source,
)
from reconciler.errors import ReconcilerError

OFF_ECS = {"ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true"}
ENV = {**OFF_ECS, "ALIBABA_CLOUD_ACCESS_KEY_ID": "env-id", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "env-secret"}


def profile_file(home: Path, current: str = "default", **extra: dict[str, Any]) -> Path:
    profiles = [
        {"name": "default", "mode": "AK", "access_key_id": "default-id", "access_key_secret": "default-secret"},
        {"name": "sts", "mode": "StsToken", "access_key_id": "STS.id", "access_key_secret": "sts-secret",
         "sts_token": "sts-token", "region_id": "cn-hangzhou"},
        *extra.values(),
    ]
    path = home / ".aliyun" / "config.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({"current": current, "profiles": profiles}), encoding="utf-8")
    return path


def resolve(profile: str | None, environ: dict[str, str], home: Path) -> tuple[Credentials, str]:
    source = resolve_credential_source(profile, environ, home)
    return source.peek(), source.name


def test_the_profile_option_beats_the_environment(tmp_path: Path) -> None:
    found, name = resolve("sts", ENV, profile_file(tmp_path).parent.parent)
    assert found.access_key_id == "STS.id"
    assert found.access_key_secret.get_secret_value() == "sts-secret"
    assert found.security_token is not None and found.security_token.get_secret_value() == "sts-token"
    assert name == f"profile 'sts' (StsToken) in {tmp_path}/.aliyun/config.json"


def test_the_environment_beats_alibaba_cloud_profile_as_in_the_vendors_chain(tmp_path: Path) -> None:
    profile_file(tmp_path)
    found, name = resolve(None, {**ENV, "ALIBABA_CLOUD_PROFILE": "sts"}, tmp_path)
    assert (found.access_key_id, name) == (
        "env-id", "environment (ALIBABA_CLOUD_ACCESS_KEY_ID, ALIBABA_CLOUD_ACCESS_KEY_SECRET)")


def test_alibaba_cloud_profile_names_the_cli_profile_when_the_environment_has_no_key(tmp_path: Path) -> None:
    profile_file(tmp_path)
    assert resolve(None, {**OFF_ECS, "ALIBABA_CLOUD_PROFILE": "sts"}, tmp_path)[0].access_key_id == "STS.id"


def test_the_profile_option_beats_alibaba_cloud_profile(tmp_path: Path) -> None:
    profile_file(tmp_path)
    assert resolve("default", {**OFF_ECS, "ALIBABA_CLOUD_PROFILE": "sts"}, tmp_path)[0].access_key_id == "default-id"


def test_the_environment_with_a_token_is_sts(tmp_path: Path) -> None:
    profile_file(tmp_path)
    found, name = resolve(None, {**ENV, "ALIBABA_CLOUD_SECURITY_TOKEN": "env-token"}, tmp_path)
    assert found.security_token is not None and found.security_token.get_secret_value() == "env-token"
    assert name.endswith("and ALIBABA_CLOUD_SECURITY_TOKEN)")


def test_the_current_profile_comes_after_the_environment(tmp_path: Path) -> None:
    profile_file(tmp_path, current="sts")
    found, _ = resolve(None, OFF_ECS, tmp_path)
    assert (found.access_key_id, found.security_token is not None) == ("STS.id", True)


def test_credentials_ini_comes_after_the_cli_profile_file(tmp_path: Path) -> None:
    ini = tmp_path / ".alibabacloud" / "credentials.ini"
    ini.parent.mkdir()
    ini.write_text("[default]\ntype = access_key\naccess_key_id = ini-id\naccess_key_secret = ini-secret\n\n"
                   "[other]\ntype = access_key\naccess_key_id = other-id\naccess_key_secret = other-secret\n")
    found, name = resolve(None, OFF_ECS, tmp_path)
    assert (found.access_key_id, name) == ("ini-id", f"section [default] (access_key) of {ini}")
    assert resolve(None, {**OFF_ECS, "ALIBABA_CLOUD_PROFILE": "other"}, tmp_path)[0].access_key_id == "other-id"
    profile_file(tmp_path)
    assert resolve(None, OFF_ECS, tmp_path)[0].access_key_id == "default-id"


def test_nothing_found_lists_every_source_tried(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError) as caught:
        resolve_credential_source(None, {**OFF_ECS, "ALIBABA_CLOUD_ACCESS_KEY_ID": ""}, tmp_path)
    assert str(caught.value) == (
        "no Alibaba Cloud credentials found; tried "
        "environment: ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET are not set; "
        "OIDC role: ALIBABA_CLOUD_ROLE_ARN, ALIBABA_CLOUD_OIDC_PROVIDER_ARN, ALIBABA_CLOUD_OIDC_TOKEN_FILE are not all "
        f"set; CLI profile: {tmp_path}/.aliyun/config.json does not exist; "
        f"credentials.ini: {tmp_path}/.alibabacloud/credentials.ini does not exist; "
        "ECS RAM role: disabled by ALIBABA_CLOUD_ECS_METADATA_DISABLED; "
        "credentials URI: ALIBABA_CLOUD_CREDENTIALS_URI is not set")
    assert isinstance(caught.value, ReconcilerError)


def test_a_missing_profile_names_the_profiles_there(tmp_path: Path) -> None:
    path = profile_file(tmp_path)
    with pytest.raises(CredentialsError) as caught:
        resolve_credential_source("prod", ENV, tmp_path)
    assert str(caught.value) == f"profile 'prod' is not in {path} (profiles there: default, sts)"


def test_a_current_profile_that_does_not_exist_is_listed_as_tried(tmp_path: Path) -> None:
    path = profile_file(tmp_path, current="gone")
    with pytest.raises(CredentialsError, match=f"CLI profile: profile 'gone' is not in {path} "):
        resolve_credential_source(None, OFF_ECS, tmp_path)


def test_an_unknown_mode_is_a_clear_error(tmp_path: Path) -> None:
    path = profile_file(tmp_path, odd={"name": "odd", "mode": "Telepathy"})
    with pytest.raises(CredentialsError) as caught:
        resolve_credential_source("odd", {}, tmp_path)
    assert str(caught.value) == (
        f"cannot use profile 'odd' (Telepathy) in {path}: unsupported profile mode 'Telepathy' form cli credentials "
        "file.")


def test_a_ram_role_profile_whose_sts_is_unreachable_is_an_error_naming_it(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    role = {"name": "role", "mode": "RamRoleArn", "access_key_id": "src-id", "access_key_secret": "srcSecret01",
            "ram_role_arn": "acs:ram::123:role/deploy", "ram_session_name": "ci"}
    path = profile_file(tmp_path, role=role)
    # An https proxy that refuses connections: the STS call fails at once, off the network.
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    with pytest.raises(CredentialsError) as caught:
        resolve_credential_source("role", {}, tmp_path)
    assert str(caught.value).startswith(f"cannot use profile 'role' (RamRoleArn) in {path}: ")
    assert "srcSecret01" not in str(caught.value) and "\n" not in str(caught.value)


def test_an_explicit_profile_without_a_profile_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError) as caught:
        resolve_credential_source("prod", ENV, tmp_path)
    assert str(caught.value) == f"profile 'prod' was asked for, but {tmp_path}/.aliyun/config.json does not exist"


def test_a_profile_file_that_is_not_json_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / ".aliyun" / "config.json"
    path.parent.mkdir()
    path.write_text("{\n oops", encoding="utf-8")
    with pytest.raises(CredentialsError) as caught:
        resolve_credential_source(None, OFF_ECS, tmp_path)
    assert str(caught.value) == f"{path} is not valid JSON (line 2)"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"ALIBABA_CLOUD_ACCESS_KEY_ID": "id"},
         "ALIBABA_CLOUD_ACCESS_KEY_ID is set but ALIBABA_CLOUD_ACCESS_KEY_SECRET is not: set both"),
        ({"ALIBABA_CLOUD_ACCESS_KEY_SECRET": "half-secret"},
         "ALIBABA_CLOUD_ACCESS_KEY_SECRET is set but ALIBABA_CLOUD_ACCESS_KEY_ID is not: set both"),
    ],
)
def test_half_a_key_pair_in_the_environment_is_an_error(tmp_path: Path, environ: dict[str, str], message: str) -> None:
    profile_file(tmp_path)
    with pytest.raises(CredentialsError) as caught:
        resolve_credential_source(None, environ, tmp_path)
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


def temporary(n: int, expiration: float) -> _Fetched:
    return _Fetched(Credentials(access_key_id=f"STS.{n}", access_key_secret=SecretStr(f"secret{n}"),
                                security_token=SecretStr(f"token{n}")), expiration)


def test_temporary_credentials_are_cached_until_near_expiry_then_refreshed_once() -> None:
    now = [1000.0]
    refreshes: list[int] = []

    async def refresh() -> _Fetched:
        refreshes.append(1)
        await asyncio.sleep(0)  # concurrent callers meet the refresh in progress
        return temporary(len(refreshes) + 1, now[0] + 3600)

    source = CredentialSource("test", temporary(1, 1000.0 + 3600), refresh, clock=lambda: now[0])

    async def ids(count: int) -> set[str]:
        found = await asyncio.gather(*(source.current() for _ in range(count)))
        return {c.access_key_id for c in found}

    assert asyncio.run(ids(50)) == {"STS.1"} and refreshes == []
    now[0] += 3600 - 15 * 60 - 1  # more than 15 minutes left: still the cached key
    assert asyncio.run(ids(50)) == {"STS.1"} and refreshes == []
    now[0] += 2  # under 15 minutes left: 50 concurrent callers, one refresh
    assert asyncio.run(ids(50)) == {"STS.2"} and refreshes == [1]
    assert source.secrets() == ("secret1", "token1", "secret2", "token2")


def test_short_lived_credentials_refresh_when_a_third_of_their_life_is_left() -> None:
    now = [0.0]
    async def refresh() -> _Fetched:
        return temporary(2, now[0] + 60)

    source = CredentialSource("test", temporary(1, 60.0), refresh, clock=lambda: now[0])
    now[0] = 39.0
    assert asyncio.run(source.current()).access_key_id == "STS.1"
    now[0] = 41.0
    assert asyncio.run(source.current()).access_key_id == "STS.2"
