"""Bounded input: links out of a manifest folder, FIFOs and devices are refused before they are read; reads
stop at a bound counted in bytes read; a lying TotalCount, a non-UTF-8 env file and a malformed endpoint each
end in one line; the emulator closes slow-header connections, stays on loopback and takes its secret from the
environment."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.emulator.app import EmulatorApp
from reconciler.emulator.server import running_emulator
from reconciler.emulator.state import EmulatorState
from reconciler.emulator.verify import AccessKey
from reconciler.inputfile import InputFileError, read_input
from tests.support.cli import CliResult
from tests.support.loopback_servers import serve
from tests.support.paths import ROOT
from tests.support.prewarmed import Prewarmed

STATE = ROOT / "examples" / "emulator-state.yaml"
DEMO_ENV = ROOT / "examples" / "demo.env"
Cli = Callable[..., CliResult]
OUTSIDE_CONTENT = "region: cn-hangzhou\n# outsideContentThatMustNotShow\nsignatures: [oops\n"
EMULATOR_CREDENTIALS = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "testid", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "testsecret"}


Reconciler = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def reconciler(prewarmed: Prewarmed) -> Reconciler:
    """A process of its own, so that a read that blocks (a FIFO) fails the test by timeout instead of hanging it."""

    def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALIBABA_CLOUD_")}
        return prewarmed.run(args, env=env, cwd=cwd, timeout=60)

    return run


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A work tree (a folder holding .git) with manifests/, and a file outside it."""
    (tmp_path / "outside.yaml").write_text(OUTSIDE_CONTENT, encoding="utf-8")
    tree = tmp_path / "repo"
    (tree / ".git").mkdir(parents=True)
    (tree / "manifests").mkdir()
    (tree / "manifests" / "hangzhou.yaml").write_text("region: cn-hangzhou\n", encoding="utf-8")
    return tree


# ------------------------------------------------------------------ links


def test_a_link_in_a_manifest_folder_to_a_file_outside_it_is_refused_unread(cli: Cli, repo: Path) -> None:
    link = repo / "manifests" / "stolen.yaml"
    link.symlink_to(repo.parent / "outside.yaml")
    result = cli("validate", str(repo / "manifests"))
    assert (result.code, result.out) == (1, "")
    assert result.err == (f"Error: {link}: is a symbolic link to a file outside {repo / 'manifests'}; refused "
                          "without reading it\n")


def test_a_link_to_a_secret_file_elsewhere_in_the_work_tree_is_refused(cli: Cli, repo: Path) -> None:
    (repo / "secrets.env").write_text("ORDERS_SECRET=ordersSecret01\n", encoding="utf-8")
    link = repo / "manifests" / "env.yaml"
    link.symlink_to(repo / "secrets.env")
    result = cli("validate", str(repo / "manifests"))
    assert (result.code, result.out) == (1, "")
    assert result.err == (f"Error: {link}: is a symbolic link to a file outside {repo / 'manifests'}; refused "
                          "without reading it\n")


def test_a_link_inside_the_manifest_folder_is_followed(cli: Cli, repo: Path) -> None:
    (repo / "manifests" / "versions").mkdir()
    (repo / "manifests" / "versions" / "shanghai.txt").write_text("region: cn-shanghai\n", encoding="utf-8")
    (repo / "manifests" / "shanghai.yaml").symlink_to(Path("versions") / "shanghai.txt")
    result = cli("validate", str(repo / "manifests"), "--skip-secrets")
    assert (result.code, result.err) == (0, ""), result.err
    assert result.out.startswith("Valid: 2 file(s), 2 region(s)")


def test_a_file_given_directly_may_link_within_its_work_tree_only(cli: Cli, repo: Path) -> None:
    inside = repo / "current.yaml"
    inside.symlink_to(repo / "manifests" / "hangzhou.yaml")
    assert cli("validate", str(inside)).code == 0
    outside = repo / "stolen.yaml"
    outside.symlink_to(repo.parent / "outside.yaml")
    result = cli("validate", str(outside))
    assert (result.code, result.out) == (1, "")
    assert result.err == f"Error: {outside}: is a symbolic link to a file outside {repo}; refused without reading it\n"


def test_a_manifest_folder_that_links_out_of_the_work_tree_is_refused(cli: Cli, repo: Path) -> None:
    elsewhere = repo.parent / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "x.yaml").write_text(OUTSIDE_CONTENT, encoding="utf-8")
    (repo / "linked").symlink_to(elsewhere)
    result = cli("validate", str(repo / "linked"))
    assert (result.code, result.out) == (1, "")
    assert result.err == (f"Error: {repo / 'linked'}: is a symbolic link to a file outside {repo}; refused without "
                          "reading it\n")


def test_a_base_folder_with_a_link_out_is_refused_unread(cli: Cli, repo: Path) -> None:
    base = repo / "base"
    base.mkdir()
    (base / "stolen.yaml").symlink_to(repo.parent / "outside.yaml")
    result = cli("plan", str(repo / "manifests"), "--base", str(base), "--snapshot", str(repo / "none.json"))
    assert result.code == 1
    assert "outsideContentThatMustNotShow" not in result.out + result.err
    assert result.err.endswith(f"{base / 'stolen.yaml'}: is a symbolic link to a file outside {base}; refused "
                               "without reading it\n")


# ------------------------------------------------------------------ FIFOs, devices, sizes


def input_options(target: str) -> dict[str, list[str]]:
    """Each way to hand the product a file, with `target` as the file."""
    manifests = str(ROOT / "manifests")
    return {
        "manifest": ["validate", target],
        "--env-file": ["validate", manifests, "--env-file", target],
        "--snapshot": ["plan", manifests, "--skip-secrets", "--snapshot", target],
        "--plan-file": ["apply", manifests, "--env-file", str(DEMO_ENV), "--emulator", str(STATE), "--plan-file",
                        target],
        "--emulator": ["plan", manifests, "--skip-secrets", "--emulator", target],
        "emulator --state": ["emulator", "--state", target],
    }


@pytest.mark.parametrize("option", list(input_options("x")))
def test_dev_zero_is_refused_in_one_line(option: str, tmp_path: Path, reconciler: Reconciler) -> None:
    done = reconciler(*input_options("/dev/zero")[option], cwd=tmp_path)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == "Error: /dev/zero: is a character device, not a regular file; refused\n"


@pytest.mark.parametrize("option", list(input_options("x")))
def test_a_fifo_is_refused_before_it_is_opened(option: str, tmp_path: Path, reconciler: Reconciler) -> None:
    fifo = tmp_path / "input.yaml"
    os.mkfifo(fifo)
    done = reconciler(*input_options(str(fifo))[option], cwd=tmp_path)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == f"Error: {fifo}: is a FIFO, not a regular file; refused\n"


def test_a_fifo_in_a_manifest_folder_is_refused(tmp_path: Path, reconciler: Reconciler) -> None:
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "a.yaml").write_text("region: cn-hangzhou\n", encoding="utf-8")
    os.mkfifo(tmp_path / "manifests" / "b.yaml")
    done = reconciler("validate", "manifests", cwd=tmp_path)
    assert (done.returncode, done.stderr) == (1, "Error: manifests/b.yaml: is a FIFO, not a regular file; refused\n")


def test_a_unix_socket_is_refused(tmp_path: Path, reconciler: Reconciler) -> None:
    path = tmp_path / "s.yaml"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        done = reconciler("validate", str(path), cwd=tmp_path)
    assert (done.returncode, done.stderr) == (1, f"Error: {path}: is a socket, not a regular file; refused\n")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_the_bound_counts_bytes_read_not_the_size_a_file_claims() -> None:
    status = Path("/proc/self/status")
    assert status.stat().st_size == 0  # claims to be empty, holds a kilobyte
    with pytest.raises(InputFileError) as caught:
        read_input(status, limit=100, what="env file")
    assert str(caught.value) == "/proc/self/status: file is more than 100 bytes; env files larger than that are refused"
    assert len(read_input(status, limit=1 << 20, what="env file")) > 100


def test_a_large_env_file_is_refused_in_one_line(cli: Cli, tmp_path: Path) -> None:
    env_file = tmp_path / "big.env"
    env_file.write_bytes(b"A=b\n" * 300_000)
    result = cli("validate", str(ROOT / "manifests"), "--env-file", str(env_file))
    assert (result.code, result.err) == (1, f"Error: {env_file}: file is 1200000 bytes; env files larger than 1048576 "
                                            "bytes are refused\n")


def test_a_non_utf8_env_file_is_one_line_naming_its_line(cli: Cli, tmp_path: Path) -> None:
    env_file = tmp_path / "latin1.env"
    env_file.write_bytes(b"ORDERS_BACKEND_SECRET=ok\nPAYMENTS_BACKEND_SECRET=caf\xe9\n")
    result = cli("validate", str(ROOT / "manifests"), "--env-file", str(env_file))
    assert (result.code, result.out) == (1, "")
    assert result.err == f"Error: {env_file}:2: env file is not UTF-8 text\n"


# ------------------------------------------------------------------ endpoints and listings


@pytest.mark.parametrize(("endpoint", "problem"), [
    ("http://xn--localhost", "its host name is not valid IDNA"),
    ("https://xn--ls8h.example", "its host name is not valid IDNA"),
    ("https://a..b", "'a..b' is not a host name"),
    ("https://-gateway.example", "'-gateway.example' is not a host name"),
    ("https://exa%mple.com", "'exa%mple.com' is not a host name"),
])
def test_a_malformed_endpoint_is_one_line(cli: Cli, monkeypatch: pytest.MonkeyPatch, endpoint: str,
                                          problem: str) -> None:
    for name, value in EMULATOR_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    result = cli("plan", str(ROOT / "manifests"), "--skip-secrets", "--endpoint", endpoint)
    assert (result.code, result.out) == (1, "")
    assert result.err == f"Error: endpoint {endpoint!r} is not a URL: {problem}\n"


@pytest.mark.parametrize("port", ["0", "99999"])
def test_an_endpoint_port_out_of_range_is_one_line(cli: Cli, monkeypatch: pytest.MonkeyPatch, port: str) -> None:
    for name, value in EMULATOR_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    endpoint = f"http://127.0.0.1:{port}"
    result = cli("plan", str(ROOT / "manifests"), "--skip-secrets", "--endpoint", endpoint)
    assert (result.code, result.out) == (1, "")
    assert result.err == f"Error: endpoint {endpoint!r}: port {port} is not between 1 and 65535\n"


class ClaimsFiftyMillionSignatures:
    """The emulator behind a proxy that makes every DescribeSignatures page claim 50,000,000 signatures; it
    records the pages it rewrote."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.pages: list[int] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        start: dict[str, Any] = {}

        async def rewrite(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            body = message["body"]
            payload = json.loads(body)
            if "SignatureInfos" in payload:
                self.pages.append(payload["PageNumber"])
                body = json.dumps({**payload, "TotalCount": 50_000_000}).encode()
            headers = [(name, value) for name, value in start["headers"] if name != b"content-length"]
            await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
            await send({**message, "body": body})

        await self.app(scope, receive, rewrite if scope["type"] == "http" else send)


def test_an_absurd_total_count_fails_at_its_first_page(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in EMULATOR_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    keys = [AccessKey(EMULATOR_CREDENTIALS["ALIBABA_CLOUD_ACCESS_KEY_ID"],
                      EMULATOR_CREDENTIALS["ALIBABA_CLOUD_ACCESS_KEY_SECRET"])]
    lying = ClaimsFiftyMillionSignatures(EmulatorApp(EmulatorState.from_file(STATE), keys))
    with serve(lying) as port:
        result = cli("plan", str(ROOT / "manifests"), "--skip-secrets", "--endpoint", f"http://127.0.0.1:{port}",
                     "-q")
    assert (result.code, result.out) == (1, "")
    assert result.err == ("Error: DescribeSignatures: the endpoint claims TotalCount 50000000, more than the 1000000 "
                          "items a listing is read to; nothing was planned\n")
    assert lying.pages == [1]


# ------------------------------------------------------------------ the emulator


@pytest.fixture
def slow_header_emulator() -> Iterator[tuple[str, int]]:
    with running_emulator(EmulatorState.from_dict({"region": "cn-hangzhou"}), header_timeout=0.5) as emulator:
        host, port = emulator.endpoint.rsplit(":", 1)
        yield host, int(port)


def test_a_client_trickling_its_headers_is_cut_off(slow_header_emulator: tuple[str, int]) -> None:
    request = b"POST /?Action=DescribeSignatures HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"a" * 200 + b"\r\n\r\n"
    with socket.create_connection(slow_header_emulator) as sock:
        sock.settimeout(0.1)
        sent = 0
        closed = False
        for byte in request:  # one byte every 0.1 s: the whole request would take 25 s
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            sent += 1
            try:
                if sock.recv(1) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except OSError:  # a reset (unread bytes in flight when the server closed) is a close too
                closed = True
                break
    assert closed
    assert sent < len(request)


def test_a_prompt_client_is_served_after_a_slow_one_is_cut_off(slow_header_emulator: tuple[str, int]) -> None:
    with socket.create_connection(slow_header_emulator) as idle:
        idle.settimeout(30)
        idle.sendall(b"POST / HTTP/1.1\r\n")
        assert idle.recv(1) == b""  # closed after the header timeout
    with socket.create_connection(slow_header_emulator) as prompt:
        prompt.sendall(b"POST /?Action=DescribeSignatures HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        prompt.settimeout(30)
        assert prompt.recv(12) == b"HTTP/1.1 400"  # the emulator's answer: no credentials given


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1", "example.com"])
def test_the_emulator_listens_on_loopback_only_unless_allowed(tmp_path: Path, host: str,
                                                              reconciler: Reconciler) -> None:
    done = reconciler("emulator", "--state", str(STATE), "--host", host, cwd=tmp_path)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (f"Error: the emulator listens on loopback only (127.0.0.1, ::1, localhost), not {host!r}: "
                           "it serves signature secrets to well-known credentials; --allow-remote listens there "
                           "anyway\n")


def test_allow_remote_listens_on_every_address() -> None:
    with running_emulator(STATE, host="0.0.0.0", allow_remote=True) as emulator:
        port = int(emulator.url.rsplit(":", 1)[1])
        assert emulator.url == f"http://0.0.0.0:{port}"
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            assert sock.recv(12) == b"HTTP/1.1 400"


def test_the_emulator_reads_its_access_key_secret_from_the_environment(tmp_path: Path) -> None:
    from alibabacloud_cloudapi20160714 import models
    from alibabacloud_cloudapi20160714.client import Client
    from alibabacloud_tea_openapi.models import Config

    env = {**os.environ, "RECONCILER_EMULATOR_ACCESS_KEY_SECRET": "fromEnvironment42"}
    process = subprocess.Popen([sys.executable, "-m", "reconciler", "emulator", "--state", str(STATE)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        assert process.stdout is not None
        endpoint = process.stdout.readline().split()[-1].removeprefix("http://")

        def signatures(secret: str) -> Any:
            client = Client(Config(access_key_id="testid", access_key_secret=secret, endpoint=endpoint,
                                   protocol="http"))
            return client.describe_signatures(models.DescribeSignaturesRequest()).body.total_count

        assert signatures("fromEnvironment42") == 4
        with pytest.raises(Exception) as refused:
            signatures("testsecret")
        assert getattr(refused.value, "code", None) == "SignatureDoesNotMatch"
    finally:
        process.terminate()
        out, err = process.communicate(timeout=30)
    assert "fromEnvironment42" not in out + err


def test_the_emulator_help_names_the_variable_and_why() -> None:
    done = subprocess.run([sys.executable, "-m", "reconciler", "emulator", "--help"], capture_output=True, text=True,
                          timeout=60, check=False)
    help_text = " ".join(done.stdout.split())
    assert "env var: RECONCILER_EMULATOR_ACCESS_KEY_SECRET" in help_text
    assert "every user of the machine sees a command line's flags (ps, /proc)" in help_text
