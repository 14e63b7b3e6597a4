"""`reconciler plan` with every credential mode of the vendor's chain, over real HTTP on loopback.

The gateway emulator shares its key ring with the STS emulator, the metadata service and the
credentials URI (reconciler.emulator.sts): the plan succeeds only when the product signed with the
temporary key and token one of them issued. STS is served over TLS with a test CA given through
SSL_CERT_FILE, and reached as sts.aliyuncs.com through a loopback proxy given through HTTPS_PROXY; the
metadata service is reached as 100.100.100.200 through HTTP_PROXY, as on an ECS instance. NO_PROXY keeps
the product's own requests to the loopback gateway off the proxy.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from reconciler.aliyun.client import ApiClient
from reconciler.aliyun.credentials import Credentials, CredentialSource, resolve_credential_source
from reconciler.aliyun.errors import AuthenticationError
from reconciler.emulator.app import EmulatorApp
from reconciler.emulator.state import EmulatorState
from reconciler.emulator.sts import CredentialsUriApp, InstanceMetadataApp, Issuer, StsApp
from reconciler.emulator.verify import AccessKey
from tests.support.cli import CliResult
from tests.support.loopback_servers import ForwardProxy, serve
from tests.support.paths import ROOT

DEMO_SUMMARY = "Plan: 1 to create, 1 to update, 0 to delete, 2 to bind, 1 to unbind, 1 to rebind, 1 unmanaged.\n"
ROLE = "acs:ram::1234567890123456:role/reconciler-plan"
OIDC_PROVIDER = "acs:ram::1234567890123456:oidc-provider/github"
OIDC_TOKEN = "eyJhbGciOiJSUzI1NiJ9.github-actions-oidc-token.signature"
Cli = Callable[..., CliResult]


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A test CA (bundle: the CA alone) and a server certificate for the STS names and loopback."""
    folder = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("sts.aliyuncs.com", "sts.cn-shanghai.aliyuncs.com", "127.0.0.1")
    bundle, certfile, keyfile = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    ca.cert_pem.write_to_path(str(bundle))
    cert.private_key_pem.write_to_path(str(keyfile))
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    return bundle, certfile, keyfile


@dataclass
class World:
    offset: list[float]  # seconds the emulators' shared clock is ahead of the real one
    issuer: Issuer
    sts: StsApp
    metadata: InstanceMetadataApp
    gateway_url: str
    uri: str
    proxy: ForwardProxy
    ca_bundle: Path


@pytest.fixture
def world(tls: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[World]:
    bundle, certfile, keyfile = tls
    key_ring = {"testid": AccessKey("testid", "testsecret")}
    offset = [0.0]

    def clock() -> float:
        return time.time() + offset[0]

    issuer = Issuer(key_ring, clock=clock)
    sts = StsApp(issuer, oidc_tokens={OIDC_PROVIDER: OIDC_TOKEN}, roles=[ROLE])
    metadata = InstanceMetadataApp(issuer, "ecs-reconciler", imds_v2_only=True)
    gateway = EmulatorApp(EmulatorState.from_file(ROOT / "examples/emulator-state.yaml"), key_ring, clock=clock)
    with serve(gateway) as gateway_port, serve(sts, certfile=certfile, keyfile=keyfile) as sts_port, \
            serve(metadata) as metadata_port, serve(CredentialsUriApp(issuer)) as uri_port:
        proxy = ForwardProxy({("sts.aliyuncs.com", 443): ("127.0.0.1", sts_port),
                              ("sts.cn-shanghai.aliyuncs.com", 443): ("127.0.0.1", sts_port),
                              ("100.100.100.200", 80): ("127.0.0.1", metadata_port)})
        monkeypatch.chdir(ROOT)
        monkeypatch.setenv("HOME", str(tmp_path))
        for name in list(os.environ):
            if name.startswith("ALIBABA_CLOUD_") or name.lower() in ("http_proxy", "https_proxy", "no_proxy"):
                monkeypatch.delenv(name)
        monkeypatch.setenv("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")
        monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        try:
            yield World(offset, issuer, sts, metadata, f"http://127.0.0.1:{gateway_port}",
                        f"http://127.0.0.1:{uri_port}/credentials", proxy, bundle)
        finally:
            proxy.close()


def write_profiles(home: Path, current: str, *profiles: dict[str, object]) -> None:
    config = home / ".aliyun" / "config.json"
    config.parent.mkdir(exist_ok=True)
    config.write_text(json.dumps({"current": current, "profiles": list(profiles)}))


@dataclass
class Planned:
    result: CliResult
    debug: list[str]  # what --debug logs of the reconciler.aliyun logger


@pytest.fixture
def plan(cli: Cli, world: World, caplog: pytest.LogCaptureFixture) -> Callable[..., Planned]:
    def run(*options: str, env: dict[str, str] | None = None) -> Planned:
        caplog.clear()
        caplog.set_level(logging.DEBUG, logger="reconciler.aliyun")
        result = cli("plan", "manifests/", "--endpoint", world.gateway_url, "--env-file", "examples/demo.env",
                     *options, env=env)
        return Planned(result, [r.getMessage() for r in caplog.records if r.name == "reconciler.aliyun"])

    return run


def assert_planned_with_issued_key(planned: Planned, world: World, source: str) -> None:
    result = planned.result
    assert result.code == 0, result.err
    assert result.out.endswith(DEMO_SUMMARY)
    assert world.issuer.issued, "no temporary key was issued"
    assert [line for line in planned.debug if line.startswith("credentials: ")] == [f"credentials: {source}"]
    everything = result.out + result.err + "\n".join(planned.debug)
    for key in world.issuer.issued:
        assert key.secret not in everything
        assert key.security_token is not None and key.security_token not in everything
    assert "testsecret" not in everything


AK = {"name": "base", "mode": "AK", "access_key_id": "testid", "access_key_secret": "testsecret"}
RAM_ROLE = {"name": "deploy", "mode": "RamRoleArn", "access_key_id": "testid", "access_key_secret": "testsecret",
            "ram_role_arn": ROLE, "ram_session_name": "ci"}


def test_oidc_role_from_the_environment(plan: Callable[..., Planned], world: World, tmp_path: Path) -> None:
    token_file = tmp_path / "oidc-token"
    token_file.write_text(OIDC_TOKEN)
    env = {"ALIBABA_CLOUD_ROLE_ARN": ROLE, "ALIBABA_CLOUD_OIDC_PROVIDER_ARN": OIDC_PROVIDER,
           "ALIBABA_CLOUD_OIDC_TOKEN_FILE": str(token_file)}
    planned = plan(env=env)
    assert_planned_with_issued_key(
        planned, world, "OIDC role from ALIBABA_CLOUD_ROLE_ARN (token file ALIBABA_CLOUD_OIDC_TOKEN_FILE)")
    assert world.sts.calls == ["AssumeRoleWithOIDC"]
    assert OIDC_TOKEN not in planned.result.err
    assert "CONNECT sts.aliyuncs.com:443" in world.proxy.seen


def test_a_wrong_oidc_token_is_one_line_listing_the_chain(plan: Callable[..., Planned], world: World,
                                                          tmp_path: Path) -> None:
    token_file = tmp_path / "oidc-token"
    token_file.write_text("not-the-token")
    env = {"ALIBABA_CLOUD_ROLE_ARN": ROLE, "ALIBABA_CLOUD_OIDC_PROVIDER_ARN": OIDC_PROVIDER,
           "ALIBABA_CLOUD_OIDC_TOKEN_FILE": str(token_file)}
    result = plan(env=env).result
    assert (result.code, result.out) == (1, "")
    assert result.err.count("\n") == 1
    assert "OIDC role: HTTP 400 AuthenticationFail.OIDCToken.Invalid; CLI profile: " in result.err
    assert "not-the-token" not in result.err


@pytest.mark.parametrize(("profile", "source_profiles", "source"), [
    pytest.param(RAM_ROLE, [], "profile 'deploy' (RamRoleArn)", id="RamRoleArn"),
    pytest.param({"name": "chained", "mode": "ChainableRamRoleArn", "source_profile": "deploy",
                  "ram_role_arn": ROLE, "ram_session_name": "chained"}, [RAM_ROLE],
                 "profile 'chained' (ChainableRamRoleArn)", id="ChainableRamRoleArn"),
    pytest.param({"name": "sh", "mode": "RamRoleArn", "access_key_id": "testid", "access_key_secret": "testsecret",
                  "ram_role_arn": ROLE, "sts_region": "cn-shanghai"}, [],
                 "profile 'sh' (RamRoleArn)", id="RamRoleArn-sts-region"),
])
def test_role_profiles_assume_the_role(plan: Callable[..., Planned], world: World, profile: dict[str, object],
                                       source_profiles: list[dict[str, object]], source: str) -> None:
    write_profiles(Path(os.environ["HOME"]), "", AK, *source_profiles, profile)
    planned = plan("--profile", str(profile["name"]))
    assert_planned_with_issued_key(planned, world, f"{source} in {os.environ['HOME']}/.aliyun/config.json")
    assert set(world.sts.calls) == {"AssumeRole"}
    if profile.get("sts_region"):
        assert "CONNECT sts.cn-shanghai.aliyuncs.com:443" in world.proxy.seen


def test_oidc_profile(plan: Callable[..., Planned], world: World, tmp_path: Path) -> None:
    token_file = tmp_path / "oidc-token"
    token_file.write_text(OIDC_TOKEN)
    write_profiles(tmp_path, "gha", {"name": "gha", "mode": "OIDC", "ram_role_arn": ROLE,
                                     "oidc_provider_arn": OIDC_PROVIDER, "oidc_token_file": str(token_file)})
    planned = plan()  # the current profile, found by the chain
    assert_planned_with_issued_key(planned, world, f"profile 'gha' (OIDC) in {tmp_path}/.aliyun/config.json")


def test_ecs_ram_role_profile_and_instance_role(plan: Callable[..., Planned], world: World, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALIBABA_CLOUD_ECS_METADATA_DISABLED")
    monkeypatch.setenv("HTTP_PROXY", world.proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    from_chain = plan()
    assert_planned_with_issued_key(from_chain, world, "ECS instance RAM role (metadata service)")
    write_profiles(tmp_path, "", {"name": "ecs", "mode": "EcsRamRole", "ram_role_name": "ecs-reconciler"})
    from_profile = plan("--profile", "ecs")
    assert_planned_with_issued_key(from_profile, world, f"profile 'ecs' (EcsRamRole) in {tmp_path}/.aliyun/config.json")
    # IMDSv2: every read carried a session token from PUT /latest/api/token (the service refuses others).
    reads = [(method, path, tokened) for method, path, tokened in world.metadata.requests if method == "GET"]
    assert reads and all(tokened for _, _, tokened in reads)
    assert ("GET", "/latest/meta-data/ram/security-credentials/", True) in reads
    assert not any(line.startswith("GET http://127.0.0.1") for line in world.proxy.seen)


def test_credentials_uri(plan: Callable[..., Planned], world: World) -> None:
    planned = plan(env={"ALIBABA_CLOUD_CREDENTIALS_URI": world.uri})
    assert_planned_with_issued_key(planned, world, "credentials URI (ALIBABA_CLOUD_CREDENTIALS_URI)")


def test_credentials_ini_ram_role(plan: Callable[..., Planned], world: World, tmp_path: Path) -> None:
    ini = tmp_path / ".alibabacloud" / "credentials.ini"
    ini.parent.mkdir()
    ini.write_text(f"[default]\ntype = ram_role_arn\naccess_key_id = testid\naccess_key_secret = testsecret\n"
                   f"role_arn = {ROLE}\nrole_session_name = ini\n")
    planned = plan()
    assert_planned_with_issued_key(planned, world, f"section [default] (ram_role_arn) of {ini}")


def test_temporary_credentials_are_refreshed_mid_run_and_an_expired_token_is_refused(world: World) -> None:
    """Keys that live 60 s: the client refreshes before its key expires, and goes on; the first key, once
    its 60 s are over, is refused by the gateway. The emulators' clock is moved, nothing waits."""
    world.issuer.lifetime = 60.0
    write_profiles(Path(os.environ["HOME"]), "", AK, RAM_ROLE)
    source = resolve_credential_source("deploy", os.environ, Path(os.environ["HOME"]), clock=world.issuer.clock)
    first = source.peek()

    async def describe(credentials: Credentials | CredentialSource) -> None:
        async with ApiClient(world.gateway_url, credentials) as client:
            await client.call("DescribeSignatures", {"PageSize": 1})

    asyncio.run(describe(source))
    world.offset[0] += 45  # 15 s left, under a third of the 60: the next call refreshes first
    asyncio.run(describe(source))
    assert [key.id for key in world.issuer.issued] == [first.access_key_id, source.peek().access_key_id]
    assert first.access_key_id != source.peek().access_key_id

    world.offset[0] += 20  # the first key is 65 s old
    with pytest.raises(AuthenticationError) as caught:
        asyncio.run(describe(first))
    assert caught.value.code == "InvalidSecurityToken.Expired"
    assert first.access_key_secret.get_secret_value() not in str(caught.value)
    asyncio.run(describe(source))  # the refreshed key still works


def test_a_refused_assume_role_shows_the_code_never_the_sts_answer(plan: Callable[..., Planned], world: World,
                                                                  tmp_path: Path) -> None:
    """STS answers a wrong signature with its string to sign, where a source token sits encoded twice."""
    token = "SourceSts/Token+1="
    world.issuer.key_ring["STS.source"] = AccessKey("STS.source", "realSecret", token)
    source = {"name": "src", "mode": "StsToken", "access_key_id": "STS.source", "access_key_secret": "wrongSecret",
              "sts_token": token}
    chained = {"name": "chained", "mode": "ChainableRamRoleArn", "source_profile": "src", "ram_role_arn": ROLE}
    write_profiles(tmp_path, "", source, chained)
    result = plan("--profile", "chained").result
    assert (result.code, result.out) == (1, "")
    assert result.err == (f"Error: cannot use profile 'chained' (ChainableRamRoleArn) in "
                          f"{tmp_path}/.aliyun/config.json: HTTP 400 SignatureDoesNotMatch\n")
    assert world.sts.calls == ["AssumeRole"]
