"""What goes on the wire, compared with what the vendor's SDKs send and expect.

- Headers: the product's request for DescribeSignatures is captured beside the vendor SDK's own, on a
  loopback server, header by header; every host / content-type / x-acs-* header present is signed.
- The emulator refuses a present header of those kinds that the V3 signature does not cover.
- V1 SignatureDoesNotMatch is answered in the vendor's format (the server's string to sign after
  ``server string to sign is:``): the legacy SDK (aliyun-python-sdk-core) parses it, and the product
  never shows it nor any secret or token in any encoding.
- Proxies and a custom CA bundle reach the product's transport.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import trustme
from alibabacloud_cloudapi20160714 import models
from alibabacloud_cloudapi20160714.client import Client
from alibabacloud_tea_openapi.models import Config
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.client import AcsClient
from aliyunsdkcore.request import RpcRequest
from pydantic import SecretStr

from reconciler.aliyun.auth import AcsV3Auth
from reconciler.aliyun.client import ApiClient
from reconciler.aliyun.credentials import Credentials
from reconciler.aliyun.errors import AuthenticationError, TransportError
from reconciler.aliyun.redaction import encodings
from reconciler.emulator.app import EmulatorApp
from reconciler.emulator.server import running_emulator
from reconciler.emulator.state import EmulatorState
from tests.support.cli import CliResult
from tests.support.emulator import Caller, make_app, make_state
from tests.support.loopback_servers import ForwardProxy, serve
from tests.support.paths import ROOT

DEMO_SUMMARY = "Plan: 1 to create, 1 to update, 0 to delete, 2 to bind, 1 to unbind, 1 to rebind, 1 unmanaged.\n"
MUST_BE_SIGNED = re.compile(r"host|content-type|x-acs-.*")
Cli = Callable[..., CliResult]


# ------------------------------------------------------------------------------ headers on the wire


@pytest.fixture
def capture() -> Iterator[tuple[int, list[dict[str, str]]]]:
    """A loopback server that records each request's headers and answers an empty DescribeSignatures page."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    seen: list[dict[str, str]] = []
    body = json.dumps({"RequestId": "R", "PageNumber": 1, "PageSize": 10, "TotalCount": 0,
                       "SignatureInfos": {"SignatureInfo": []}}).encode()

    def run() -> None:
        while True:
            try:
                client, _ = sock.accept()
            except OSError:
                return
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(65536)
                if not chunk:
                    break
                head += chunk
            lines = head.decode("latin-1").split("\r\n")[1:]
            seen.append({name.strip().lower(): value.strip() for name, _, value in
                         (line.partition(":") for line in lines if line)})
            client.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n"
                           b"content-length: %d\r\n\r\n%s" % (len(body), body))
            client.close()

    threading.Thread(target=run, daemon=True).start()
    try:
        yield sock.getsockname()[1], seen
    finally:
        sock.close()


def signed_names(headers: dict[str, str]) -> set[str]:
    match = re.search(r"SignedHeaders=([^,]+)", headers["authorization"])
    assert match is not None
    return set(match.group(1).split(";"))


@pytest.mark.parametrize("token", [None, "sts-token-value"], ids=["access-key", "sts"])
def test_the_product_sends_what_the_sdk_sends_and_signs_every_header_it_must(
        capture: tuple[int, list[dict[str, str]]], token: str | None) -> None:
    port, seen = capture
    Client(Config(access_key_id="testid", access_key_secret="testsecret", security_token=token,
                  endpoint=f"127.0.0.1:{port}", protocol="http")).describe_signatures(
        models.DescribeSignaturesRequest(page_number=1, page_size=10))

    async def product() -> None:
        credentials = Credentials(access_key_id="testid", access_key_secret=SecretStr("testsecret"),
                                  security_token=SecretStr(token) if token else None)
        async with ApiClient(f"http://127.0.0.1:{port}", credentials) as client:
            await client.call("DescribeSignatures", {"PageNumber": 1, "PageSize": 10})

    asyncio.run(product())
    sdk, ours = seen
    # Every host / content-type / x-acs-* header present is signed, by both.
    for headers in (sdk, ours):
        assert {name for name in headers if MUST_BE_SIGNED.fullmatch(name)} <= signed_names(headers)
    assert "content-type" not in ours
    # The same signed headers, but the SDK's telemetry header x-acs-credentials-provider.
    assert signed_names(ours) == signed_names(sdk) - {"x-acs-credentials-provider"}
    if token:
        assert ours["x-acs-accesskey-id"] == sdk["x-acs-accesskey-id"] == "testid"
        assert ours["x-acs-security-token"] == sdk["x-acs-security-token"] == token
    # Unsigned, besides Authorization: transport headers only.
    assert set(sdk) - signed_names(sdk) == {"authorization", "accept-encoding", "content-length"}
    assert set(ours) - signed_names(ours) == {"authorization", "accept-encoding", "content-length", "connection"}
    assert (ours["content-length"], sdk["content-length"]) == ("0", "0")


class _AddsAfterSigning(AcsV3Auth):
    """Signs, then adds a header the signature does not cover."""

    def __init__(self, credentials: Credentials, name: str, value: str) -> None:
        super().__init__(credentials)
        self.extra = (name, value)

    def sign(self, request: httpx.Request, credentials: Credentials) -> None:
        super().sign(request, credentials)
        request.headers[self.extra[0]] = self.extra[1]


@pytest.mark.parametrize(("name", "value"), [("Content-Type", "application/octet-stream"),
                                             ("x-acs-extra", "1"), ("X-Acs-Credentials-Provider", "static_ak")])
def test_the_emulator_refuses_a_header_the_signature_does_not_cover(name: str, value: str) -> None:
    caller = Caller(make_app(make_state(signatures=1)))
    caller.auth = _AddsAfterSigning(Credentials(access_key_id="testid", access_key_secret=SecretStr("testsecret")),
                                    name, value)
    response = caller.call("DescribeSignatures")
    body = response.json()
    assert (response.status_code, body["Code"]) == (400, "IncompleteSignature")
    assert body["Message"] == (f"The request signature does not sign the header(s) {name.lower()}, which are present "
                               "in the request.")
    assert body["Recommend"].startswith("https://api.aliyun.com/troubleshoot?q=IncompleteSignature")


# ------------------------------------------------------------------ V1 SignatureDoesNotMatch


def test_v1_signature_mismatch_is_answered_in_the_vendors_format_and_the_legacy_sdk_parses_it() -> None:
    with running_emulator(make_state(signatures=1)) as emulator:
        request = RpcRequest("CloudAPI", "2016-07-14", "DescribeSignatures")
        request.set_endpoint(emulator.endpoint)
        request.set_protocol_type("http")
        request.set_method("POST")
        request.set_accept_format("JSON")
        request.add_query_param("PageSize", "10")
        with pytest.raises(ServerException) as wrong:
            AcsClient("testid", "notTheSecret", "cn-hangzhou", auto_retry=False).do_action_with_exception(request)
        # The legacy SDK compares the server's string to sign with its own and, as they are equal, tells
        # the user the secret is wrong: the emulator's message is the vendor's format, exactly.
        assert (wrong.value.get_error_code(), wrong.value.get_http_status()) == ("InvalidAccessKeySecret", 400)
        assert AcsClient("testid", "testsecret", "cn-hangzhou").do_action_with_exception(request)

        # The current SDK in RPC V1 sees the vendor's message, string to sign included.
        sdk = Client(Config(access_key_id="testid", access_key_secret="notTheSecret", endpoint=emulator.endpoint,
                            protocol="http", signature_algorithm="v2"))
        with pytest.raises(Exception) as current:
            sdk.describe_signatures(models.DescribeSignaturesRequest(page_size=10))
        message = current.value.message  # type: ignore[attr-defined]
        assert re.search(r"server string to sign is:POST&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeSignatures",
                         message), message


def all_forms(*secrets: str) -> list[str]:
    return [form for secret in secrets for form in encodings(secret)]


def test_encodings_cover_what_the_vendor_echoes() -> None:
    forms = encodings("tok+en/=1 x")
    assert {"tok+en/=1 x", quote("tok+en/=1 x", safe=""), quote(quote("tok+en/=1 x", safe=""), safe=""),
            base64.b64encode(b"tok+en/=1 x").decode(), b"tok+en/=1 x".hex()} <= forms


def test_a_v1_mismatch_shows_no_secret_or_token_in_any_encoding_from_the_client() -> None:
    """A write whose signature fails: the message names the failure, never the string to sign, the token
    or the SignatureSecret it carried."""
    token, signature_secret = "Sts/Token+With=Chars 1", "New@Secret#2026"
    wrong = Credentials(access_key_id="STS.wrong", access_key_secret=SecretStr("notTheSecret"),
                        security_token=SecretStr(token))
    with running_emulator(make_state(signatures=1), access_key_id="STS.wrong", access_key_secret="theRealSecret",
                          security_token=token) as emulator:

        async def create() -> None:
            async with ApiClient(emulator.url, wrong, signature_version="v1", allow_writes=True) as client:
                await client.call("CreateSignature", {"SignatureName": "new_sig", "SignatureKey": "newKey01",
                                                      "SignatureSecret": signature_secret})

        with pytest.raises(AuthenticationError) as caught:
            asyncio.run(create())
    text = str(caught.value)
    assert text.startswith("CreateSignature failed: SignatureDoesNotMatch: Specified signature is not matched with "
                           "our calculation. server string to sign is: <not shown: it may hold secrets> (RequestId ")
    assert [form for form in all_forms(token, signature_secret, "notTheSecret") if form in text] == []


def test_plan_with_v1_and_sts_keeps_the_token_out_of_stderr(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    token = "PlanToken/With+Chars="
    monkeypatch.chdir(ROOT)
    with running_emulator(ROOT / "examples/emulator-state.yaml", access_key_id="STS.plan",
                          access_key_secret="theRealSecret", security_token=token) as emulator:
        result = cli("plan", "manifests/", "--endpoint", emulator.url, "--env-file", "examples/demo.env",
                     "--signature-version", "v1", env={"ALIBABA_CLOUD_ACCESS_KEY_ID": "STS.plan",
                                                       "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "wrongSecret",
                                                       "ALIBABA_CLOUD_SECURITY_TOKEN": token})
    assert (result.code, result.out) == (1, "")
    assert result.err.startswith("Error: DescribeSignatures failed: SignatureDoesNotMatch: ")
    assert result.err.count("\n") == 1
    assert [form for form in all_forms(token, "wrongSecret") if form in result.err] == []


# ------------------------------------------------------------------------- proxies and CA bundles


@pytest.fixture(scope="module")
def gateway_tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    folder = tmp_path_factory.mktemp("gateway-tls")
    ca = trustme.CA()
    cert = ca.issue_cert("apigateway.cn-hangzhou.aliyuncs.com")
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    ca.cert_pem.write_to_path(str(paths[0]))
    cert.cert_chain_pems[0].write_to_path(str(paths[1]))
    cert.private_key_pem.write_to_path(str(paths[2]))
    return paths


@pytest.fixture
def network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    for name in list(os.environ):
        if name.lower() in ("http_proxy", "https_proxy", "no_proxy", "all_proxy", "ssl_cert_file", "ssl_cert_dir"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "testid")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "testsecret")


def demo_gateway() -> EmulatorApp:
    return make_app(EmulatorState.from_file(ROOT / "examples/emulator-state.yaml"))


def plan_against(cli: Cli, endpoint: str, env: dict[str, str] | None = None) -> CliResult:
    return cli("plan", "manifests/", "--endpoint", endpoint, "--env-file", "examples/demo.env", env=env)


def test_https_through_a_connect_proxy_with_a_custom_ca_bundle(
        cli: Cli, network: None, gateway_tls: tuple[Path, Path, Path]) -> None:
    bundle, certfile, keyfile = gateway_tls
    endpoint = "https://apigateway.cn-hangzhou.aliyuncs.com"
    with serve(demo_gateway(), certfile=certfile, keyfile=keyfile) as port:
        proxy = ForwardProxy({("apigateway.cn-hangzhou.aliyuncs.com", 443): ("127.0.0.1", port)})
        try:
            untrusted = plan_against(cli, endpoint, env={"HTTPS_PROXY": proxy.url})
            trusted = plan_against(cli, endpoint, env={"HTTPS_PROXY": proxy.url, "SSL_CERT_FILE": str(bundle)})
        finally:
            proxy.close()
    assert (untrusted.code, untrusted.out) == (1, "")
    assert "certificate verify failed" in untrusted.err and untrusted.err.count("\n") == 1
    assert (trusted.code, trusted.err) == (0, "")
    assert trusted.out.endswith(DEMO_SUMMARY)
    assert proxy.seen and set(proxy.seen) == {"CONNECT apigateway.cn-hangzhou.aliyuncs.com:443"}


def test_http_proxy_and_no_proxy(cli: Cli, network: None) -> None:
    with serve(demo_gateway()) as port:
        proxy = ForwardProxy()
        try:
            endpoint = f"http://127.0.0.1:{port}"
            through = plan_against(cli, endpoint, env={"HTTP_PROXY": proxy.url})
            forwarded = list(proxy.seen)
            direct = plan_against(cli, endpoint, env={"HTTP_PROXY": proxy.url, "NO_PROXY": "localhost,127.0.0.1"})
        finally:
            proxy.close()
    assert through.out.endswith(DEMO_SUMMARY) and direct.out.endswith(DEMO_SUMMARY), (through, direct)
    assert forwarded and all(line == f"POST http://127.0.0.1:{port}/" for line in forwarded)
    assert proxy.seen == forwarded  # nothing more went through the proxy once NO_PROXY named the host


def test_a_proxy_that_refuses_is_one_clear_error_without_its_password(network: None,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://deploy:pr0xyPassw0rd@127.0.0.1:9")

    async def call() -> None:
        credentials = Credentials(access_key_id="testid", access_key_secret=SecretStr("testsecret"))
        async with ApiClient("https://apigateway.cn-hangzhou.aliyuncs.com", credentials, max_attempts=1) as client:
            await client.call("DescribeSignatures", {})

    with pytest.raises(TransportError) as caught:
        asyncio.run(call())
    assert caught.value.connection_failed
    assert "pr0xyPassw0rd" not in str(caught.value) and "\n" not in str(caught.value)


def test_the_vendors_async_sdk_is_refused_for_its_unsigned_content_type() -> None:
    """The vendor's async SDK sends, through aiohttp, a Content-Type it does not sign; the V3 rule says a
    present content-type is signed, and the emulator holds to the rule (the sync SDK sends none)."""
    with running_emulator(make_state(signatures=1)) as emulator:
        client = Client(Config(access_key_id="testid", access_key_secret="testsecret", endpoint=emulator.endpoint,
                               protocol="http"))
        assert client.describe_signatures(models.DescribeSignaturesRequest()).body.total_count == 1
        with pytest.raises(Exception) as caught:
            asyncio.run(client.describe_signatures_async(models.DescribeSignaturesRequest()))
    assert caught.value.code == "IncompleteSignature"  # type: ignore[attr-defined]
    assert "content-type" in caught.value.message  # type: ignore[attr-defined]
