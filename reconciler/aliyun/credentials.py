"""Alibaba Cloud credentials, found the way the vendor's own tools find them.

The chain is the vendor's default chain (``alibabacloud_credentials``' ``DefaultCredentialsProvider``),
in its order, and each source is read by the vendor's library itself:

1. environment ``ALIBABA_CLOUD_ACCESS_KEY_ID`` / ``ALIBABA_CLOUD_ACCESS_KEY_SECRET`` (with
   ``ALIBABA_CLOUD_SECURITY_TOKEN`` for STS);
2. an OIDC role: ``ALIBABA_CLOUD_ROLE_ARN``, ``ALIBABA_CLOUD_OIDC_PROVIDER_ARN`` and
   ``ALIBABA_CLOUD_OIDC_TOKEN_FILE`` all set (``AssumeRoleWithOIDC``);
3. the CLI's ``~/.aliyun/config.json``: the profile named by ``ALIBABA_CLOUD_PROFILE``, else its
   ``current`` one, in any mode the library knows (AK, StsToken, RamRoleArn, EcsRamRole,
   ChainableRamRoleArn, OIDC, ...); skipped when ``ALIBABA_CLOUD_CLI_PROFILE_DISABLED=true``;
4. ``~/.alibabacloud/credentials.ini`` (or ``ALIBABA_CLOUD_CREDENTIALS_FILE``), section
   ``ALIBABA_CLOUD_PROFILE`` or ``default``;
5. the ECS instance RAM role from the metadata service (IMDSv2 token first, unless
   ``ALIBABA_CLOUD_ECS_METADATA_DISABLED=true``; ``ALIBABA_CLOUD_ECS_METADATA`` names the role);
6. ``ALIBABA_CLOUD_CREDENTIALS_URI``.

The first source that yields credentials is used for the whole run. ``--profile NAME`` replaces the
chain with that one profile of ``~/.aliyun/config.json`` (as the vendor's CLI's ``--profile`` does):
a profile that is absent or fails is an error, never a fall-through.

Design notes:

- The chain is built here from the same provider classes rather than through
  ``DefaultCredentialsProvider``, because that class reads the environment once at import, hides
  which source answered and drops the expiry of temporary credentials; everything else (file
  formats, STS calls, the metadata service, the URI's format) is the library's.
- Temporary credentials are cached until a third of their lifetime, at most 15 minutes, is left
  (the library refreshes 15 minutes early too), so a fetch of thousands of requests asks the
  library once per token, not once per request; a refresh is the library's async call, one at a time
  per source, so it never blocks the event loop.
- The library's async path is used throughout: it honours ``SSL_CERT_FILE`` and ``HTTPS_PROXY`` /
  ``HTTP_PROXY`` (its sync path trusts certifi only). ``resolve_credential_source`` runs the first fetch
  in an event loop of its own, so it is called outside one.
- ``CredentialSource.secrets()`` lists every secret and token handed out during the run, so the
  client can scrub them from any message; a source's ``name`` never contains one.
- An access key id without its secret (or the reverse) in the environment is an error rather than a
  fall-through: the user clearly meant the environment.
"""

from __future__ import annotations

import asyncio
import configparser
import json
import logging
import re
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, SecretStr, field_validator

from reconciler.aliyun.errors import CredentialsError
from reconciler.aliyun.redaction import Scrubber

ENV_ACCESS_KEY_ID = "ALIBABA_CLOUD_ACCESS_KEY_ID"
ENV_ACCESS_KEY_SECRET = "ALIBABA_CLOUD_ACCESS_KEY_SECRET"
ENV_SECURITY_TOKEN = "ALIBABA_CLOUD_SECURITY_TOKEN"
ENV_PROFILE = "ALIBABA_CLOUD_PROFILE"
ENV_ROLE_ARN = "ALIBABA_CLOUD_ROLE_ARN"
ENV_OIDC_PROVIDER_ARN = "ALIBABA_CLOUD_OIDC_PROVIDER_ARN"
ENV_OIDC_TOKEN_FILE = "ALIBABA_CLOUD_OIDC_TOKEN_FILE"
ENV_ROLE_SESSION_NAME = "ALIBABA_CLOUD_ROLE_SESSION_NAME"
ENV_STS_REGION = "ALIBABA_CLOUD_STS_REGION"
ENV_VPC_ENDPOINT = "ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED"
ENV_CLI_PROFILE_DISABLED = "ALIBABA_CLOUD_CLI_PROFILE_DISABLED"
ENV_CREDENTIALS_FILE = "ALIBABA_CLOUD_CREDENTIALS_FILE"
ENV_ECS_METADATA = "ALIBABA_CLOUD_ECS_METADATA"
ENV_ECS_METADATA_DISABLED = "ALIBABA_CLOUD_ECS_METADATA_DISABLED"
ENV_IMDSV1_DISABLED = "ALIBABA_CLOUD_IMDSV1_DISABLED"
ENV_CREDENTIALS_URI = "ALIBABA_CLOUD_CREDENTIALS_URI"
CLI_CONFIG = Path(".aliyun") / "config.json"
CREDENTIALS_INI = Path(".alibabacloud") / "credentials.ini"
DEFAULT_CONFIG_PATH = Path("~") / CLI_CONFIG
# Refresh when this much of a token's life is left at most (the vendor's library uses 15 minutes).
REFRESH_MARGIN_SECONDS = 15 * 60

logger = logging.getLogger("reconciler.aliyun")

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "CredentialSource",
    "Credentials",
    "CredentialsError",
    "resolve_credential_source",
    "static_source",
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

    def secret_values(self) -> list[str]:
        token = self.security_token
        return [self.access_key_secret.get_secret_value(), *([token.get_secret_value()] if token else [])]


class _Provider(Protocol):
    """What the vendor's providers offer (``alibabacloud_credentials_api.ICredentialsProvider``)."""

    async def get_credentials_async(self) -> Any: ...


@dataclass(frozen=True)
class _Fetched:
    credentials: Credentials
    expiration: float | None  # epoch seconds; None = does not expire


async def _fetch(provider: _Provider) -> _Fetched:
    # The library's async path: it is the one that honours SSL_CERT_FILE (its sync path trusts certifi only).
    found = await provider.get_credentials_async()
    if found is None:
        raise CredentialsError("the source returned no credentials")
    token = found.get_security_token()
    expiration = found.get_expiration()
    return _Fetched(Credentials(access_key_id=found.get_access_key_id() or "",
                                access_key_secret=SecretStr(found.get_access_key_secret() or ""),
                                security_token=SecretStr(token) if token else None),
                    float(expiration) if expiration else None)


class CredentialSource:
    """The credentials of one source, refreshed before they expire; ``name`` says which source (no secret)."""

    def __init__(self, name: str, first: _Fetched, refresh: Callable[[], Awaitable[_Fetched]] | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.name = name
        self._refresh = refresh
        self._clock = clock
        self._secrets: list[str] = []
        self._guard = threading.Lock()
        self._lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        self._use(first)

    def _use(self, fetched: _Fetched) -> None:
        self._current = fetched
        for value in fetched.credentials.secret_values():
            if value not in self._secrets:
                self._secrets.append(value)
        if fetched.expiration is None or self._refresh is None:
            self._refresh_at = float("inf")
        else:
            now = self._clock()
            margin = min(REFRESH_MARGIN_SECONDS, max(fetched.expiration - now, 0.0) / 3)
            self._refresh_at = fetched.expiration - margin

    @property
    def expiration(self) -> float | None:
        return self._current.expiration

    def secrets(self) -> tuple[str, ...]:
        """Every secret and token this source has handed out during the run."""
        return tuple(self._secrets)

    def peek(self) -> Credentials:
        """The credentials held now, without refreshing."""
        return self._current.credentials

    async def current(self) -> Credentials:
        """The credentials to sign with: the cached ones, or fresh ones once they near expiry."""
        if self._clock() < self._refresh_at:
            return self._current.credentials
        async with self._loop_lock():
            if self._clock() >= self._refresh_at and self._refresh is not None:
                try:
                    fetched = await self._refresh()
                except CredentialsError:
                    raise
                except Exception as exc:  # the library's failures have many types; the message is what counts
                    raise CredentialsError(f"cannot refresh the credentials of {self.name}: "
                                           f"{failure_reason(exc, self.secrets())}") from None
                self._use(fetched)
                logger.debug("credentials of %s refreshed", self.name)
        return self._current.credentials

    def _loop_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        with self._guard:
            if self._lock is None or self._lock[0] is not loop:
                self._lock = (loop, asyncio.Lock())
            return self._lock[1]


def static_source(credentials: Credentials, name: str = "credentials given") -> CredentialSource:
    return CredentialSource(name, _Fetched(credentials, None))


# --- the chain ------------------------------------------------------------------------------------


class _Skipped(Exception):
    """A source that does not apply or failed; the message says why, for the no-credentials error."""


_HTTP_CODE = re.compile(r"http_code[:=]\s*(\d{3})")
_VENDOR_CODE = re.compile(r'"Code"\s*:\s*"([A-Za-z0-9_.]{1,80})"')
_WHITESPACE = re.compile(r"\s+")
_POOL = re.compile(r"ConnectionPool\(host='([^']*)', port=(\d+)\)")
_CAUSE = re.compile(r"Caused by (\w+)")
_QUERY = re.compile(r"\?[^\s'\")]*")


def failure_reason(exc: BaseException, secrets: tuple[str, ...] | list[str] = ()) -> str:
    """One short line for a provider's failure: an STS or URI answer as ``HTTP <status> <Code>``, never its
    body (it may echo a signed string); anything else as its message, scrubbed and cut short."""
    text = str(exc)
    status = _HTTP_CODE.search(text)
    if status is not None:
        code = _VENDOR_CODE.search(text)
        return f"HTTP {status.group(1)}" + (f" {code.group(1)}" if code else "")
    if "result:" in text:
        return text.split("result:", 1)[0].strip().rstrip(",") or type(exc).__name__
    pool = _POOL.search(text)
    if pool is not None:  # a request that failed: its URL holds the signed query, so only where and why
        cause = _CAUSE.search(text)
        return f"cannot reach {pool.group(1)}:{pool.group(2)}" + (f" ({cause.group(1)})" if cause else "")
    text = _QUERY.sub("?<query>", text)
    text = _WHITESPACE.sub(" ", Scrubber(secrets).scrub(text)).strip() or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


# The library's module-level copies of the environment (read once, at its import), by variable.
_LIBRARY_ENVIRONMENT = {
    "environment_access_key_id": (ENV_ACCESS_KEY_ID, None),
    "environment_access_key_secret": (ENV_ACCESS_KEY_SECRET, None),
    "environment_security_token": (ENV_SECURITY_TOKEN, None),
    "environment_ecs_metadata": (ENV_ECS_METADATA, None),
    "environment_ECSMeta_data": (ENV_ECS_METADATA, None),
    "environment_imds_v1_disabled": (ENV_IMDSV1_DISABLED, "false"),
    "environment_ecs_metadata_disabled": (ENV_ECS_METADATA_DISABLED, "false"),
    "environment_credentials_file": (ENV_CREDENTIALS_FILE, None),
    "environment_profile_name": (ENV_PROFILE, None),
    "environment_oidc_token_file": (ENV_OIDC_TOKEN_FILE, None),
    "environment_role_arn": (ENV_ROLE_ARN, None),
    "environment_oidc_provider_arn": (ENV_OIDC_PROVIDER_ARN, None),
    "environment_role_session_name": (ENV_ROLE_SESSION_NAME, None),
    "environment_credentials_uri": (ENV_CREDENTIALS_URI, None),
    "environment_cli_profile_disabled": (ENV_CLI_PROFILE_DISABLED, "false"),
    "environment_sts_region": (ENV_STS_REGION, None),
    "environment_enable_vpc": (ENV_VPC_ENDPOINT, "false"),
}


def _library(environ: Mapping[str, str]) -> Any:
    """The vendor's provider classes, imported when first needed (they pull in an HTTP stack).

    The library reads the environment once, at import, into module variables that its providers fall
    back on (a RamRoleArn profile's STS region, the metadata switches, ...): they are set from
    ``environ`` here, so that one mapping decides the whole resolution. The library also logs refresh
    failures, STS answers included, to a stderr handler of its own: that is replaced by one that drops
    them; the chain reports failures itself, in one line and without a response body.
    """
    import alibabacloud_credentials.provider as providers
    from alibabacloud_credentials.utils import auth_util

    for attribute, (variable, default) in _LIBRARY_ENVIRONMENT.items():
        setattr(auth_util, attribute, environ.get(variable, default))
    library_log = logging.getLogger("credentials")
    if not any(isinstance(handler, logging.NullHandler) for handler in library_log.handlers):
        library_log.handlers[:] = [logging.NullHandler()]
        library_log.propagate = False
    return providers


def _flag(environ: Mapping[str, str], name: str) -> bool:
    return environ.get(name, "").strip().lower() == "true"


def _value(environ: Mapping[str, str], name: str) -> str:
    return environ.get(name, "").strip()


@dataclass
class _Chain:
    environ: Mapping[str, str]
    home: Path
    clock: Callable[[], float]
    tried: list[str]
    secrets: list[str]

    def source(self, name: str, provider: _Provider) -> CredentialSource:
        try:
            first = asyncio.run(_fetch(provider))
        except CredentialsError as exc:
            raise _Skipped(str(exc)) from None
        except Exception as exc:
            raise _Skipped(failure_reason(exc, self.secrets)) from None
        return CredentialSource(name, first, lambda: _fetch(provider), clock=self.clock)


def _environment(chain: _Chain) -> CredentialSource:
    environ = chain.environ
    access_key_id, secret = _value(environ, ENV_ACCESS_KEY_ID), _value(environ, ENV_ACCESS_KEY_SECRET)
    if not access_key_id and not secret:
        raise _Skipped(f"{ENV_ACCESS_KEY_ID} and {ENV_ACCESS_KEY_SECRET} are not set")
    if not secret:
        raise CredentialsError(f"{ENV_ACCESS_KEY_ID} is set but {ENV_ACCESS_KEY_SECRET} is not: set both")
    if not access_key_id:
        raise CredentialsError(f"{ENV_ACCESS_KEY_SECRET} is set but {ENV_ACCESS_KEY_ID} is not: set both")
    token = _value(environ, ENV_SECURITY_TOKEN)
    credentials = Credentials(access_key_id=access_key_id, access_key_secret=SecretStr(secret),
                              security_token=SecretStr(token) if token else None)
    with_token = f" and {ENV_SECURITY_TOKEN}" if token else ""
    return CredentialSource(f"environment ({ENV_ACCESS_KEY_ID}, {ENV_ACCESS_KEY_SECRET}{with_token})",
                            _Fetched(credentials, None))


def _oidc(chain: _Chain) -> CredentialSource:
    OIDCRoleArnCredentialsProvider = _library(chain.environ).OIDCRoleArnCredentialsProvider
    environ = chain.environ
    names = (ENV_ROLE_ARN, ENV_OIDC_PROVIDER_ARN, ENV_OIDC_TOKEN_FILE)
    if not all(_value(environ, name) for name in names):
        raise _Skipped(f"{', '.join(names)} are not all set")
    try:
        provider = OIDCRoleArnCredentialsProvider(
            role_arn=_value(environ, ENV_ROLE_ARN), oidc_provider_arn=_value(environ, ENV_OIDC_PROVIDER_ARN),
            oidc_token_file_path=_value(environ, ENV_OIDC_TOKEN_FILE),
            role_session_name=_value(environ, ENV_ROLE_SESSION_NAME) or None,
            sts_region_id=_value(environ, ENV_STS_REGION) or None,
            enable_vpc=_flag(environ, ENV_VPC_ENDPOINT))
    except ValueError as exc:
        raise _Skipped(str(exc)) from None
    return chain.source(f"OIDC role from {ENV_ROLE_ARN} (token file {ENV_OIDC_TOKEN_FILE})", provider)


def _read_cli_config(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise CredentialsError(f"cannot read {path}: {getattr(exc, 'strerror', None) or 'not UTF-8 text'}") from None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CredentialsError(f"{path} is not valid JSON (line {exc.lineno})") from None
    if not isinstance(config, dict):
        raise CredentialsError(f"{path} is not a JSON object")
    return config


def _secret_fields(entries: Sequence[Mapping[str, Any]]) -> list[str]:
    return [value for entry in entries for key, value in entry.items()
            if isinstance(value, str) and value and ("secret" in key.lower() or "token" in key.lower())]


def _cli_profile(chain: _Chain, explicit: str | None) -> CredentialSource:
    CLIProfileCredentialsProvider = _library(chain.environ).CLIProfileCredentialsProvider
    path = chain.home / CLI_CONFIG
    if explicit is None and _flag(chain.environ, ENV_CLI_PROFILE_DISABLED):
        raise _Skipped(f"disabled by {ENV_CLI_PROFILE_DISABLED}")
    config = _read_cli_config(path)
    if config is None:
        if explicit is not None:
            raise CredentialsError(f"profile {explicit!r} was asked for, but {path} does not exist")
        raise _Skipped(f"{path} does not exist")
    profiles = config.get("profiles")
    entries = [p for p in profiles if isinstance(p, dict)] if isinstance(profiles, list) else []
    chain.secrets.extend(_secret_fields(entries))
    name = explicit or _value(chain.environ, ENV_PROFILE) or config.get("current")
    if not isinstance(name, str) or not name:
        raise _Skipped(f"{path} names no current profile")
    found = next((p for p in entries if p.get("name") == name), None)
    if found is None:
        known = ", ".join(sorted(str(p.get("name")) for p in entries)) or "none"
        message = f"profile {name!r} is not in {path} (profiles there: {known})"
        if explicit is not None:
            raise CredentialsError(message)
        raise _Skipped(message)
    # The library's own reading of the profile, every mode it supports; its inner provider keeps the expiry
    # of temporary credentials, which the wrapping provider drops.
    return _profile_source(chain, f"profile {name!r} ({found.get('mode')}) in {path}", lambda: (
        CLIProfileCredentialsProvider(profile_name=name, profile_file=str(path))._get_credentials_provider(
            config, name)))


def _profile_source(chain: _Chain, where: str, make_provider: Callable[[], _Provider]) -> CredentialSource:
    """The source a profile's provider gives, every failure (building the provider or using it) named after
    `where`."""
    try:
        provider = make_provider()
    except Exception as exc:
        raise _Skipped(f"{where}: {failure_reason(exc, chain.secrets)}") from None
    try:
        return chain.source(where, provider)
    except _Skipped as skipped:
        raise _Skipped(f"{where}: {skipped}") from None


def _credentials_ini(chain: _Chain) -> CredentialSource:
    ProfileCredentialsProvider = _library(chain.environ).ProfileCredentialsProvider
    path = Path(_value(chain.environ, ENV_CREDENTIALS_FILE) or chain.home / CREDENTIALS_INI)
    section_name = _value(chain.environ, ENV_PROFILE) or "default"
    if not path.is_file():
        raise _Skipped(f"{path} does not exist")
    parser = configparser.ConfigParser()
    try:
        parser.read_string(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, configparser.Error) as exc:
        raise CredentialsError(f"cannot read {path}: {type(exc).__name__}") from None
    sections = {name: {k: v.split("#")[0].strip() for k, v in parser.items(name)} for name in parser.sections()}
    chain.secrets.extend(_secret_fields(list(sections.values())))
    section = sections.get(section_name)
    if section is None:
        raise _Skipped(f"{path} has no section [{section_name}]")
    return _profile_source(chain, f"section [{section_name}] ({section.get('type')}) of {path}", lambda: (
        ProfileCredentialsProvider(profile_file=str(path), profile_name=section_name)._get_credentials_provider(
            section)))


def _ecs_ram_role(chain: _Chain) -> CredentialSource:
    EcsRamRoleCredentialsProvider = _library(chain.environ).EcsRamRoleCredentialsProvider
    if _flag(chain.environ, ENV_ECS_METADATA_DISABLED):
        raise _Skipped(f"disabled by {ENV_ECS_METADATA_DISABLED}")
    role = _value(chain.environ, ENV_ECS_METADATA) or None
    try:
        # async_update_enabled=False: no scheduler thread of the library's; CredentialSource refreshes.
        provider = EcsRamRoleCredentialsProvider(role_name=role, disable_imds_v1=_flag(chain.environ,
                                                 ENV_IMDSV1_DISABLED), async_update_enabled=False)
    except ValueError as exc:
        raise _Skipped(str(exc)) from None
    return chain.source("ECS instance RAM role" + (f" {role!r}" if role else "") + " (metadata service)", provider)


def _credentials_uri(chain: _Chain) -> CredentialSource:
    URLCredentialsProvider = _library(chain.environ).URLCredentialsProvider
    uri = _value(chain.environ, ENV_CREDENTIALS_URI)
    if not uri:
        raise _Skipped(f"{ENV_CREDENTIALS_URI} is not set")
    return chain.source(f"credentials URI ({ENV_CREDENTIALS_URI})", URLCredentialsProvider(uri=uri))


_CHAIN: tuple[tuple[str, Callable[[_Chain], CredentialSource]], ...] = (
    ("environment", _environment),
    ("OIDC role", _oidc),
    ("CLI profile", lambda chain: _cli_profile(chain, None)),
    ("credentials.ini", _credentials_ini),
    ("ECS RAM role", _ecs_ram_role),
    ("credentials URI", _credentials_uri),
)


def resolve_credential_source(profile: str | None, environ: Mapping[str, str], home: Path, *,
                              clock: Callable[[], float] = time.time) -> CredentialSource:
    """The first source of the vendor's chain that yields credentials (see the module docstring).

    ``CredentialsError`` (one line) when none does: it lists every source tried and why it gave nothing.
    """
    chain = _Chain(environ, home, clock, [], [v for k, v in environ.items()
                                                if v and ("SECRET" in k or "TOKEN" in k) and k.startswith("ALIBABA")])
    if profile:
        try:
            source = _cli_profile(chain, profile)
        except _Skipped as skipped:
            raise CredentialsError(f"cannot use {skipped}") from None
        logger.debug("credentials: %s", source.name)
        return source
    for label, step in _CHAIN:
        try:
            source = step(chain)
        except _Skipped as skipped:
            chain.tried.append(f"{label}: {skipped}")
            continue
        logger.debug("credentials: %s", source.name)
        return source
    raise CredentialsError("no Alibaba Cloud credentials found; tried " + "; ".join(chain.tried))
