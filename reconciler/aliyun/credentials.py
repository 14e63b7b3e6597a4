"""Alibaba Cloud credentials and where to find them.

The lookup follows the vendor's chain, reduced to the sources a CLI tool can use:

1. an explicit profile (the ``profile`` argument, else ``ALIBABA_CLOUD_PROFILE``) from the CLI's
   profile file;
2. the environment variables ``ALIBABA_CLOUD_ACCESS_KEY_ID``, ``ALIBABA_CLOUD_ACCESS_KEY_SECRET``
   and, for STS, ``ALIBABA_CLOUD_SECURITY_TOKEN``;
3. the profile file's ``current`` profile.

Decisions where the task is silent: an empty variable counts as unset; an access key id without a
secret (or the reverse) in the environment is an error rather than a silent fall-through to the
profile file, because the user clearly meant the environment; a profile without ``mode`` is read as
``AK`` (old CLI versions wrote none); only ``AK`` and ``StsToken`` are supported, since the other
modes need network calls of their own. No message ever contains a secret.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, SecretStr, field_validator

from reconciler.aliyun.errors import CredentialsError

ENV_ACCESS_KEY_ID = "ALIBABA_CLOUD_ACCESS_KEY_ID"
ENV_ACCESS_KEY_SECRET = "ALIBABA_CLOUD_ACCESS_KEY_SECRET"
ENV_SECURITY_TOKEN = "ALIBABA_CLOUD_SECURITY_TOKEN"
ENV_PROFILE = "ALIBABA_CLOUD_PROFILE"
DEFAULT_CONFIG_PATH = Path("~/.aliyun/config.json")

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "Credentials",
    "CredentialsError",
    "resolve_credentials",
]


class Credentials(BaseModel):
    """An access key pair, with a security token for STS; the repr shows no secret."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    access_key_id: str
    access_key_secret: SecretStr
    security_token: SecretStr | None = None

    @field_validator("access_key_id")
    @classmethod
    def _id_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("access_key_id is empty")
        return value.strip()

    @field_validator("access_key_secret")
    @classmethod
    def _secret_not_blank(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("access_key_secret is empty")
        return value


def resolve_credentials(profile: str | None, environ: Mapping[str, str], config_path: Path) -> Credentials:
    """Find credentials as the vendor's tools do (see the module docstring); ``CredentialsError`` if none."""
    explicit = profile or environ.get(ENV_PROFILE) or None
    if explicit is not None:
        config = _read_config(config_path)
        if config is None:
            raise CredentialsError(f"profile {explicit!r} was asked for, but {config_path} does not exist")
        return _from_profile(config, explicit, config_path)

    from_env = _from_environment(environ)
    if from_env is not None:
        return from_env

    config = _read_config(config_path)
    current = config.get("current") if config is not None else None
    if config is not None and isinstance(current, str) and current:
        return _from_profile(config, current, config_path)

    raise CredentialsError(
        f"no Alibaba Cloud credentials found: set {ENV_ACCESS_KEY_ID} and {ENV_ACCESS_KEY_SECRET} "
        f"(and {ENV_SECURITY_TOKEN} for STS), or set {ENV_PROFILE} to a profile in {config_path}"
    )


def _from_environment(environ: Mapping[str, str]) -> Credentials | None:
    access_key_id = environ.get(ENV_ACCESS_KEY_ID, "").strip()
    secret = environ.get(ENV_ACCESS_KEY_SECRET, "").strip()
    if not access_key_id and not secret:
        return None
    if not secret:
        raise CredentialsError(f"{ENV_ACCESS_KEY_ID} is set but {ENV_ACCESS_KEY_SECRET} is not: set both")
    if not access_key_id:
        raise CredentialsError(f"{ENV_ACCESS_KEY_SECRET} is set but {ENV_ACCESS_KEY_ID} is not: set both")
    token = environ.get(ENV_SECURITY_TOKEN, "").strip()
    return Credentials(
        access_key_id=access_key_id,
        access_key_secret=SecretStr(secret),
        security_token=SecretStr(token) if token else None,
    )


def _read_config(config_path: Path) -> dict[str, Any] | None:
    """The parsed profile file, or ``None`` when there is none."""
    path = config_path.expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CredentialsError(f"cannot read {config_path}: {exc.strerror}") from exc
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CredentialsError(f"{config_path} is not valid JSON (line {exc.lineno})") from None
    if not isinstance(config, dict):
        raise CredentialsError(f"{config_path} is not a JSON object")
    return config


def _from_profile(config: Mapping[str, Any], name: str, config_path: Path) -> Credentials:
    profiles = config.get("profiles")
    entries = [p for p in profiles if isinstance(p, dict)] if isinstance(profiles, list) else []
    found = next((p for p in entries if p.get("name") == name), None)
    if found is None:
        known = ", ".join(sorted(str(p.get("name")) for p in entries)) or "none"
        raise CredentialsError(f"profile {name!r} is not in {config_path} (profiles there: {known})")

    mode = found.get("mode") or "AK"
    where = f"profile {name!r} in {config_path}"
    if mode not in ("AK", "StsToken"):
        raise CredentialsError(f"{where} uses mode {mode!r}; only AK and StsToken are supported")

    def field(key: str) -> str:
        value = found.get(key)
        if not isinstance(value, str) or not value.strip():
            raise CredentialsError(f"{where} (mode {mode}) has no {key}")
        return value.strip()

    return Credentials(
        access_key_id=field("access_key_id"),
        access_key_secret=SecretStr(field("access_key_secret")),
        security_token=SecretStr(field("sts_token")) if mode == "StsToken" else None,
    )
