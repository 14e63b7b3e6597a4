"""What a new user meets first: options where they are expected, env files, every manifest error at once,
clear messages for empty secrets, subfolders, emulator and export runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.cli import CliResult
from tests.support.demo import ORDERS_MANIFEST as BASE
from tests.support.paths import ROOT

Cli = Callable[..., CliResult]
MANIFESTS = ROOT / "manifests"
DEMO_STATE = ROOT / "examples" / "emulator-state.yaml"
DEMO_ENV = ROOT / "examples" / "demo.env"



@pytest.fixture(autouse=True)
def _no_demo_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ORDERS_SECRET", "PAYMENTS_SECRET", "INVENTORY_SECRET", "ORDERS_BACKEND_SECRET",
                 "PAYMENTS_BACKEND_SECRET", "INVENTORY_BACKEND_SECRET", "GITHUB_ACTIONS", "NO_COLOR",
                 "ALIBABA_CLOUD_PROFILE"):
        monkeypatch.delenv(name, raising=False)


# ---------------------------------------------------------------- env files


def test_every_env_file_is_read_later_ones_win_and_the_environment_wins_over_all(
        cli: Cli, write: Callable[[str, str], Path]) -> None:
    manifest = write("m.yaml", THREE_UNSET)
    first = write("a.env", "ORDERS_SECRET=bad\nPAYMENTS_SECRET=paymentsSecret01\n")
    second = write("b.env", "ORDERS_SECRET=ordersSecret01\n")
    # Only the first file sets PAYMENTS_SECRET; only the environment sets INVENTORY_SECRET; the second file
    # overrides the first's bad ORDERS_SECRET.
    result = cli("validate", str(manifest), "--env-file", str(first), "--env-file", str(second),
                 env={"INVENTORY_SECRET": "inventorySecret01"})
    assert (result.code, result.err) == (0, "")
    # The environment wins over every file.
    result = cli("validate", str(manifest), "--env-file", str(first), "--env-file", str(second),
                 env={"INVENTORY_SECRET": "inventorySecret01", "ORDERS_SECRET": "x"})
    assert result.code == 1
    assert "the value of ORDERS_SECRET breaks the vendor's rule" in result.err


def test_env_file_help_says_how_files_combine(cli: Cli) -> None:
    for command in ("validate", "plan", "apply"):
        text = " ".join(cli(command, "--help").out.split())
        assert ("Repeatable: every file is read in order, a later file wins over an earlier one, and the "
                "environment wins over all files.") in text


def test_a_secret_variable_set_but_empty_says_it_is_empty(cli: Cli, write: Callable[[str, str], Path]) -> None:
    manifest = write("m.yaml", BASE)
    result = cli("validate", str(manifest), env={"ORDERS_SECRET": ""})
    assert (result.code, result.out) == (1, "")
    assert result.err == (f"Error: {manifest}:5: signatures[0].secret: environment variable ORDERS_SECRET is set "
                          f"but empty (in CI: is the secret defined for this repository and job?)\n")


# ---------------------------------------------------------------- validate reports every error


THREE_UNSET = """\
region: cn-hangzhou
signatures:
  - name: orders_backend
    key: ordersKey01
    secret: ${env:ORDERS_SECRET}
  - name: payments_backend
    key: paymentsKey01
    secret: ${env:PAYMENTS_SECRET}
  - name: inventory_backend
    key: inventoryKey01
    secret: ${env:INVENTORY_SECRET}
bindings:
  - group: 0009db9c828549768a200320714b8930
    stage: RELEASE
    signature: orders_backend
    apis: [orders_list]
"""


def test_validate_names_every_unset_secret_one_line_each(cli: Cli, write: Callable[[str, str], Path]) -> None:
    manifest = write("m.yaml", THREE_UNSET)
    result = cli("validate", str(manifest))
    hint = "is not set (set it, use --env-file, or plan with --skip-secrets)"
    assert (result.code, result.out) == (1, "")
    assert result.err.splitlines() == [
        f"Error: {manifest}:5: signatures[0].secret: environment variable ORDERS_SECRET {hint}",
        f"Error: {manifest}:8: signatures[1].secret: environment variable PAYMENTS_SECRET {hint}",
        f"Error: {manifest}:11: signatures[2].secret: environment variable INVENTORY_SECRET {hint}",
    ]


def test_validate_reports_errors_across_files_and_each_is_an_annotation_in_actions(
        cli: Cli, write: Callable[[str, str], Path], tmp_path: Path) -> None:
    write("m/a.yaml", BASE.replace("stage: RELEASE", "stage: PROD"))
    write("m/b.yaml", "region: cn-hangzhou\nsignatures:\n  - name: x1\n    key: k\n    secret: s\n")
    write("m/c.yaml", "region: [unclosed\n")
    folder = tmp_path / "m"
    result = cli("validate", str(folder), env={"ORDERS_SECRET": "ordersSecret01", "GITHUB_ACTIONS": "true"})
    rule = "breaks the vendor's rule"
    assert result.code == 1
    errors = result.err.splitlines()
    assert errors[0] == f"Error: {folder}/a.yaml:8: bindings[0].stage: must be RELEASE or TEST (got 'PROD')"
    assert errors[1].startswith(f"Error: {folder}/b.yaml:3: signatures[0].name: signature name 'x1' {rule}")
    assert errors[2].startswith(f"Error: {folder}/b.yaml:4: signatures[0].key: key 'k' {rule}")
    assert errors[3].startswith(f"Error: {folder}/b.yaml:5: signatures[0].secret: literal secret {rule}")
    assert errors[4].startswith(f"Error: {folder}/c.yaml:2: YAML syntax error")
    assert len(errors) == 5
    annotations = result.out.splitlines()
    assert len(annotations) == 5
    assert annotations[0].startswith(f"::error file={folder}/a.yaml,line=8,title=reconciler%3A bindings[0].stage::")


def test_validate_caps_the_list_and_says_how_many_more(cli: Cli, write: Callable[[str, str], Path]) -> None:
    signatures = "".join(f"  - name: backend_{i:02d}\n    key: key{i:02d}ok\n    secret: ${{env:UNSET_{i:02d}}}\n"
                         for i in range(25))
    manifest = write("m.yaml", f"region: cn-hangzhou\nsignatures:\n{signatures}")
    result = cli("validate", str(manifest))
    lines = result.err.splitlines()
    assert result.code == 1
    assert len(lines) == 21
    assert lines[19].startswith(f"Error: {manifest}:62: signatures[19].secret: environment variable UNSET_19")
    assert lines[20] == "Error: ... and 5 more error(s) not shown; fix these and run again"


def test_a_broken_file_does_not_cause_reference_errors_in_the_others(
        cli: Cli, write: Callable[[str, str], Path], tmp_path: Path) -> None:
    # b.yaml binds to a signature declared in a.yaml, which cannot be read: only a.yaml's error is real.
    write("m/a.yaml", "region: cn-hangzhou\nsignatures: [\n")
    write("m/b.yaml", BASE.replace("signatures:\n  - name: orders_backend\n    key: ordersKey01\n"
                                   "    secret: ${env:ORDERS_SECRET}\n", "signatures: []\n"))
    result = cli("validate", str(tmp_path / "m"))
    assert result.code == 1
    assert len(result.err.splitlines()) == 1
    assert result.err.startswith(f"Error: {tmp_path}/m/a.yaml:")


# ---------------------------------------------------------------- subfolders


def test_a_subfolder_with_manifests_is_refused_in_one_line(cli: Cli, write: Callable[[str, str], Path],
                                                          tmp_path: Path) -> None:
    write("m2/a.yaml", BASE)
    write("m2/staging/x.yaml", BASE)
    write("m2/.github/workflow.yml", "on: push\n")  # hidden folders are not manifests
    write("m2/notes/readme.txt", "no manifests here\n")
    result = cli("validate", str(tmp_path / "m2"), "--skip-secrets")
    assert (result.code, result.out) == (1, "")
    assert result.err == (f"Error: {tmp_path}/m2/staging: subfolders are not read; give it as a PATH of its own "
                          f"to plan it together with {tmp_path}/m2, or move its manifests out\n")


def test_a_subfolder_given_as_a_path_of_its_own_is_read(cli: Cli, write: Callable[[str, str], Path],
                                                       tmp_path: Path) -> None:
    write("m2/a.yaml", BASE)
    write("m2/staging/x.yaml", BASE.replace("orders", "staging"))
    result = cli("validate", str(tmp_path / "m2"), str(tmp_path / "m2" / "staging"), "--skip-secrets")
    assert (result.code, result.err) == (0, "")
    assert result.out.startswith("Valid: 2 file(s), 1 region(s), 2 signature(s), 2 binding(s).")


# ---------------------------------------------------------------- options


def test_debug_works_after_the_command_name(cli: Cli) -> None:
    result = cli("validate", str(MANIFESTS), "--debug", "--skip-secrets")
    assert (result.code, result.err) == (0, "")
    assert cli("--debug", "validate", str(MANIFESTS), "--skip-secrets").code == 0
    for command in ("plan", "apply", "export", "validate", "schema", "emulator"):
        assert "--debug" in cli(command, "--help").out


def test_output_choices_are_case_insensitive_and_explained(cli: Cli) -> None:
    result = cli("plan", str(MANIFESTS), "--emulator", str(DEMO_STATE), "--env-file", str(DEMO_ENV), "-o", "JSON",
                 "-q")
    assert result.code == 0
    assert result.out.startswith('{\n  "format_version": "1"')
    help_text = " ".join(cli("plan", "--help").out.split())
    assert ("-o, --output [text|json|markdown] text for a terminal, json for a program (docs/plan.schema.json), "
            "markdown for a pull-request comment.") in help_text


def test_no_color_is_an_option_of_every_command_that_prints_a_plan(cli: Cli) -> None:
    for command in ("plan", "apply"):
        assert "--no-color" in cli(command, "--help").out


def test_apply_has_no_skip_secrets(cli: Cli) -> None:
    assert "--skip-secrets" not in cli("apply", "--help").out
    result = cli("apply", str(MANIFESTS), "--skip-secrets")
    assert result.code == 1
    assert result.err.endswith("Error: No such option '--skip-secrets'. See 'reconciler apply --help'.\n")


def test_top_level_help_shows_whole_command_descriptions(cli: Cli) -> None:
    text = " ".join(cli("--help").out.split())
    assert "apply Make the live state match the manifests: create, update, rebind, bind, unbind, delete " \
           "(prune: true)." in text
    assert "export Write the live state of a region as manifests; a plan of them shows no changes." in text
    assert "Make the live state match the manifests: create, update, rebind,..." not in text


def test_plan_out_file_prints_the_summary_line_on_stderr(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "plan.md"
    result = cli("plan", str(MANIFESTS), "--emulator", str(DEMO_STATE), "--env-file", str(DEMO_ENV),
                 "-o", "markdown", "--out", str(out), "-q")
    assert (result.code, result.out) == (0, "")
    assert result.err == "Plan: 1 to create, 1 to update, 0 to delete, 2 to bind, 1 to unbind, 1 to rebind, " \
                         "1 unmanaged.\n"
    assert out.read_text(encoding="utf-8").startswith("### reconciler plan")


def test_emulator_with_profile_is_refused_in_one_true_line(cli: Cli) -> None:
    result = cli("plan", str(MANIFESTS), "--emulator", str(DEMO_STATE), "--env-file", str(DEMO_ENV),
                 "--profile", "prod")
    assert (result.code, result.out) == (1, "")
    assert result.err == ("Error: give --profile or --emulator, not both: the embedded emulator uses credentials "
                          "made up for the run\n")
    # A profile from the environment is not the user's choice for this run: it is left unused.
    result = cli("plan", str(MANIFESTS), "--emulator", str(DEMO_STATE), "--env-file", str(DEMO_ENV), "-q",
                 env={"ALIBABA_CLOUD_PROFILE": "prod"})
    assert result.code == 0


# ---------------------------------------------------------------- apply


def test_apply_with_nothing_to_do_needs_no_terminal(cli: Cli, tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text("region: cn-hangzhou\nsignatures:\n  - name: orders_backend\n    key: ordersKey01\n"
                        "    secret: ordersSecret01\n",
                        encoding="utf-8")
    state = tmp_path / "state.yaml"
    state.write_text("region: cn-hangzhou\nsignatures:\n"
                     "  - {name: orders_backend, key: ordersKey01, secret: ordersSecret01}\n", encoding="utf-8")
    result = cli("apply", str(manifest), "--emulator", str(state), "-q")  # stdin is not a terminal under pytest
    assert (result.code, result.out, result.err) == (0, "No changes. Live state matches the manifests.\n", "")


def test_apply_to_the_embedded_emulator_says_the_changes_are_gone_before_asking(
        cli: Cli, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import io
    import sys

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    said_before_prompt: list[str] = []

    def prompt(*args: object, **kwargs: object) -> str:
        said_before_prompt.append(capsys.readouterr().err)
        return "no"

    monkeypatch.setattr(sys, "stdin", Terminal())
    monkeypatch.setattr("click.prompt", prompt)
    result = cli("apply", str(MANIFESTS), "--emulator", str(DEMO_STATE), "--env-file", str(DEMO_ENV), "-q")
    assert result.code == 1
    assert said_before_prompt == [
        f"Note: the changes go to an embedded emulator and are gone when this command ends; to keep them, serve "
        f"{DEMO_STATE} with `reconciler emulator --save` and use --endpoint.\n"]
    assert result.err == "Error: apply cancelled; nothing was changed\n"


# ---------------------------------------------------------------- network failures retrying cannot fix


class _Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def _describe_once(url: str, **options: object) -> tuple[str, int]:
    """The error of one DescribeSignatures call (retries allowed) and how many times the client slept."""
    import asyncio

    from reconciler.aliyun.client import ApiClient
    from reconciler.aliyun.credentials import Credentials
    from reconciler.aliyun.errors import ApiError

    sleeps = _Sleeps()

    async def call() -> str:
        async with ApiClient(url, Credentials(access_key_id="id", access_key_secret="secret"), sleep=sleeps,
                             max_attempts=5, **options) as api:  # type: ignore[arg-type]
            try:
                await api.call("DescribeSignatures", {})
            except ApiError as exc:
                return str(exc)
        return "no error"

    return asyncio.run(call()), len(sleeps.delays)


class _PlainServer:
    """A plain TCP server on loopback that answers anything with a plain-HTTP 400 (as a web server does)."""

    def __enter__(self) -> int:
        import socket
        import threading

        self.socket = socket.create_server(("127.0.0.1", 0))
        self.accepted = 0

        def serve() -> None:
            while True:
                try:
                    connection, _ = self.socket.accept()
                except OSError:
                    return
                self.accepted += 1
                with connection:
                    connection.recv(4096)
                    connection.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

        threading.Thread(target=serve, daemon=True).start()
        port: int = self.socket.getsockname()[1]
        return port

    def __exit__(self, *exc: object) -> None:
        self.socket.close()


def test_tls_to_a_plain_http_port_fails_at_once_with_a_hint() -> None:
    with _PlainServer() as port:
        message, sleeps = _describe_once(f"https://127.0.0.1:{port}")
    assert sleeps == 0
    assert message.startswith("DescribeSignatures failed: ClientConnectorSSLError: ")
    assert message.endswith("; this endpoint does not speak TLS; use http://? (plain http only to loopback)")


def _self_signed(tmp_path: Path, host: str) -> tuple[Path, Path]:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def test_a_certificate_that_does_not_verify_fails_at_once_with_a_hint(tmp_path: Path) -> None:
    import socket
    import ssl
    import threading

    cert_file, key_file = _self_signed(tmp_path, "apigateway.example.invalid")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server = socket.create_server(("127.0.0.1", 0))
    handshakes: list[int] = []

    def serve() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            handshakes.append(1)
            try:
                with context.wrap_socket(connection, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                pass

    threading.Thread(target=serve, daemon=True).start()
    try:
        message, sleeps = _describe_once(f"https://127.0.0.1:{server.getsockname()[1]}")
    finally:
        server.close()
    assert (sleeps, len(handshakes)) == (0, 1)
    assert message.startswith("DescribeSignatures failed: ClientConnectorCertificateError: ")
    assert message.endswith("; the server's certificate does not verify for this host; check the endpoint's host "
                            "name")


def test_a_host_that_does_not_resolve_fails_at_once_with_a_hint() -> None:
    # .invalid never resolves (RFC 6761): no network is needed to fail.
    message, sleeps = _describe_once("https://apigateway.cn-nowhere.invalid")
    assert sleeps == 0
    assert message.startswith("DescribeSignatures failed: ClientConnectorDNSError: ")
    assert message.endswith("; the host name apigateway.cn-nowhere.invalid does not resolve; check the endpoint or "
                            "the region")


def test_a_port_out_of_range_is_refused_before_any_request(cli: Cli) -> None:
    result = cli("plan", str(MANIFESTS), "--skip-secrets", "--endpoint", "http://127.0.0.1:99999",
                 env={"ALIBABA_CLOUD_ACCESS_KEY_ID": "id", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "secret"})
    assert (result.code, result.out) == (1, "")
    assert result.err == "Error: endpoint 'http://127.0.0.1:99999': port 99999 is not between 1 and 65535\n"


def test_a_garbled_success_on_a_read_is_retried_like_a_503() -> None:
    import asyncio

    import httpx

    from reconciler.aliyun.client import ApiClient
    from reconciler.aliyun.credentials import Credentials
    from reconciler.aliyun.errors import TransportError

    answers = [httpx.Response(200, content=b'{"RequestId": "r", "Tot', headers={"content-type": "application/json"}),
               httpx.Response(200, json={"RequestId": "r2", "TotalCount": 0})]
    requests: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request.headers["x-acs-action"])
        return answers.pop(0) if len(answers) > 1 else answers[0]

    def client(**options: object) -> ApiClient:
        return ApiClient("http://127.0.0.1:8080", Credentials(access_key_id="id", access_key_secret="secret"),
                         transport=httpx.MockTransport(handler), sleep=_Sleeps(), **options)  # type: ignore[arg-type]

    async def read() -> dict[str, object]:
        async with client() as api:
            return await api.call("DescribeSignatures", {})

    assert asyncio.run(read()) == {"RequestId": "r2", "TotalCount": 0}
    assert requests == ["DescribeSignatures", "DescribeSignatures"]

    # A write is not repeated: it may have been carried out.
    answers[:] = [httpx.Response(200, content=b"<html>", headers={"content-type": "text/html"})]
    requests.clear()

    async def write() -> None:
        async with client(allow_writes=True) as api:
            await api.call("DeleteSignature", {"SignatureId": "s"})

    with pytest.raises(TransportError, match="HTTP 200 with content type 'text/html' instead of JSON"):
        asyncio.run(write())
    assert requests == ["DeleteSignature"]


# ---------------------------------------------------------------- progress


def test_progress_shows_from_the_first_request_before_any_page_arrives() -> None:
    import asyncio
    import io

    from reconciler.fetcher import Fetcher, FetchTarget
    from reconciler.progress import TerminalProgress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    progress = TerminalProgress(screen)
    seen_at_first_request: list[str] = []

    class SlowClient:
        endpoint = "http://127.0.0.1:1"

        async def call_model(self, action: str, params: dict[str, str], model: type) -> object:
            if not seen_at_first_request:
                seen_at_first_request.append(screen.getvalue())
            return model.model_validate({"RequestId": "r", "TotalCount": 0})

    fetcher = Fetcher(SlowClient(), progress=progress.tracker)  # type: ignore[arg-type]
    asyncio.run(fetcher.snapshot(FetchTarget(region="cn-hangzhou", scopes=(), api_groups=())))
    assert seen_at_first_request == ["\rReading live state: 0/1 pages"]
    progress.close()
    assert screen.getvalue().endswith("\rReading live state: 1/1 pages\r\x1b[K")


def _big_scope(count: int) -> tuple[object, str]:
    from reconciler.emulator.state import EmulatorState, derived_id

    apis = [f"api{n:04d}" for n in range(count)]
    state = EmulatorState.from_dict({
        "region": "cn-hangzhou",
        "signatures": [{"name": "new_backend", "key": "newKey01", "secret": "newSecret01"}],
        "groups": [{"name": "big", "apis": [{"name": a} for a in apis]}],
    })
    group = derived_id("group", "big")
    manifest = ("region: cn-hangzhou\nsignatures:\n  - {name: new_backend, key: newKey01, secret: newSecret01}\n"
                f"bindings:\n  - {{group: {group}, stage: RELEASE, signature: new_backend, "
                f"apis: [{', '.join(apis)}]}}\n")
    return state, manifest


def test_apply_logs_one_line_per_scope_with_the_total(cli: Cli, tmp_path: Path) -> None:
    from reconciler.emulator.server import running_emulator

    state, text = _big_scope(2000)
    manifest = tmp_path / "big.yaml"
    manifest.write_text(text, encoding="utf-8")
    with running_emulator(state) as emulator:  # type: ignore[arg-type]
        result = cli("apply", str(manifest), "--endpoint", emulator.url, "-q", "--auto-approve",
                     env={"ALIBABA_CLOUD_ACCESS_KEY_ID": "testid", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "testsecret"})
    assert result.code == 0, result.err
    log = result.out.split("to rebind.\n\n", 1)[1].splitlines()
    from reconciler.emulator.state import derived_id
    assert log == [f"bound 2000 APIs of group {derived_id('group', 'big')} stage RELEASE to new_backend",
                   "Apply complete: 0 created, 0 updated, 0 rebound, 2000 bound, 0 unbound, 0 deleted."]


def test_a_scope_cut_short_by_a_failure_says_how_much_of_it_was_done(cli: Cli, tmp_path: Path) -> None:
    from reconciler.emulator.apierror import VendorErrorAnswer
    from reconciler.emulator.server import running_emulator
    from reconciler.emulator.state import derived_id

    state, text = _big_scope(500)
    manifest = tmp_path / "big.yaml"
    manifest.write_text(text, encoding="utf-8")
    real = state.set_signature_apis  # type: ignore[attr-defined]
    calls = [0]

    def third_fails(*args: object) -> object:
        calls[0] += 1
        if calls[0] == 3:
            raise VendorErrorAnswer(400, "InvalidParameter", "refused for the test")
        return real(*args)

    state.set_signature_apis = third_fails  # type: ignore[attr-defined]
    with running_emulator(state) as emulator:  # type: ignore[arg-type]
        result = cli("apply", str(manifest), "--endpoint", emulator.url, "-q", "--auto-approve", "--concurrency", "1",
                     env={"ALIBABA_CLOUD_ACCESS_KEY_ID": "testid", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "testsecret"})
    assert result.code == 1
    log = result.out.split("to rebind.\n\n", 1)[1].splitlines()
    group = derived_id("group", "big")
    assert log[0] == f"bound 200 of 500 APIs of group {group} stage RELEASE to new_backend (the rest not done)"
    assert log[1] == "Apply stopped at the first failure. Done: 2 step(s), logged above."


# ---------------------------------------------------------------- export and the embedded emulator


def test_export_summary_counts_group_stage_pairs_and_says_stdout(cli: Cli) -> None:
    result = cli("export", "--region", "cn-hangzhou", "--all-groups", "--emulator", str(DEMO_STATE), "-q")
    assert result.code == 0
    # The demo has 9 bindings in 3 (group, stage) pairs, written as 5 entries (one per signature in a pair).
    assert result.err.splitlines()[0] == ("Exported 4 signature(s) and 9 binding(s) in 3 (group, stage) pair(s) "
                                          "of region cn-hangzhou to stdout.")
    assert result.out.count("  - group: ") == 5


def test_export_of_a_region_the_emulator_state_is_not_says_so_truly(cli: Cli) -> None:
    result = cli("export", "--region", "cn-beijing", "--all-groups", "--emulator", str(DEMO_STATE))
    assert (result.code, result.out) == (1, "")
    assert result.err == f"Error: the emulator state {DEMO_STATE} is region cn-hangzhou; --region is cn-beijing\n"


def test_an_emulator_state_for_a_region_nothing_asks_for_is_said_to_be_unused(cli: Cli, tmp_path: Path) -> None:
    shanghai = tmp_path / "shanghai.yaml"
    shanghai.write_text(DEMO_STATE.read_text(encoding="utf-8").replace("region: cn-hangzhou", "region: cn-shanghai"),
                        encoding="utf-8")
    result = cli("plan", str(MANIFESTS), "--env-file", str(DEMO_ENV), "-q", "--emulator", str(DEMO_STATE),
                 "--emulator", str(shanghai))
    assert result.code == 0
    assert result.err == (f"Warning: the emulator state {shanghai} (region cn-shanghai) is not used: the manifests "
                          f"declare cn-hangzhou\n")
    exported = cli("export", "--region", "cn-hangzhou", "--all-groups", "-q", "--emulator", str(DEMO_STATE),
                   "--emulator", str(shanghai))
    assert exported.code == 0
    assert exported.err.splitlines()[0] == (f"Warning: the emulator state {shanghai} (region cn-shanghai) is not "
                                            f"used: --region is cn-hangzhou")


def test_export_group_by_name_says_it_takes_an_id(cli: Cli) -> None:
    result = cli("export", "--region", "cn-hangzhou", "--group", "orders", "--emulator", str(DEMO_STATE))
    assert (result.code, result.out) == (1, "")
    assert result.err == ("Error: region cn-hangzhou has no API group orders; --group takes the id: 'orders' is the "
                          "name of group 0009db9c828549768a200320714b8930\n")
    result = cli("export", "--region", "cn-hangzhou", "--group", "billing", "--emulator", str(DEMO_STATE))
    assert result.err == ("Error: region cn-hangzhou has no API group billing; --group takes a group's id "
                          "(32 hex characters), not its name\n")
    assert "API group id (32 hex characters, not the group's name)" in " ".join(cli("export", "--help").out.split())


# ---------------------------------------------------------------- completion


def test_target_completes_kinds_then_names_from_the_manifests(monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    from reconciler.cli import cli as command

    def complete(words: str) -> list[str]:
        monkeypatch.setenv("_RECONCILER_COMPLETE", "bash_complete")
        monkeypatch.setenv("COMP_WORDS", words)
        monkeypatch.setenv("COMP_CWORD", str(len(words.split(" ")) - 1))
        with pytest.raises(SystemExit):
            command.main(prog_name="reconciler", complete_var="_RECONCILER_COMPLETE")
        return [line.split(",", 1)[1] for line in capsys.readouterr().out.splitlines()]

    assert complete(f"reconciler plan {MANIFESTS} --target ") == ["signature=", "group="]
    assert complete(f"reconciler plan {MANIFESTS} --target sig") == ["signature="]
    assert complete(f"reconciler plan {MANIFESTS} --target signature=") == [
        "signature=inventory_backend", "signature=orders_backend", "signature=payments_backend"]
    assert complete(f"reconciler plan {MANIFESTS} --target group=5") == ["group=5d1f3e0a7b8c4d2e9f6a1b3c5d7e9f01"]


# ---------------------------------------------------------------- emulator state files


@pytest.mark.parametrize(("text", "line"), [
    ("regin: cn-hangzhou\nsignatures: []\n", "1: field 'regin': unknown field (did you mean 'region'?)"),
    ("region: cn-hangzhou\nsignatures:\n  - name: orders_backend\n    key: k1\n    secret: ordersSecret01\n",
     "4: field 'signatures.0.key': must be 6-20 characters: letters, digits or '_', starting with a letter"),
    ("region: cn-hangzhou\nsignatures:\n  - {name: orders_backend, key: ordersKey01, secret: ordersSecret01}\n"
     "groups:\n  - name: orders\n    apis: [{name: orders_list}]\n    bindings:\n"
     "      RELEASE: {orders_list: nobody_here}\n",
     "8: field 'groups.0.bindings.RELEASE.orders_list': signature 'nobody_here' is not declared under 'signatures'"),
    ("region: cn-hangzhou\ngroups:\n  - name: orders\n    apis:\n      - {name: orders_list, idd: x}\n",
     "5: field 'groups.0.apis.0.idd': unknown field (did you mean 'id'?)"),
])
def test_emulator_state_errors_name_the_line_and_suggest_a_misspelt_field(cli: Cli, tmp_path: Path, text: str,
                                                                          line: str) -> None:
    state = tmp_path / "state.yaml"
    state.write_text(text, encoding="utf-8")
    result = cli("plan", str(MANIFESTS), "--skip-secrets", "--emulator", str(state))
    assert (result.code, result.out, result.err) == (1, "", f"Error: {state}:{line}\n")


# ---------------------------------------------------------------- plans a reviewer can read


def _demo_plan(cli: Cli, *extra: str, state: Path = DEMO_STATE) -> CliResult:
    return cli("plan", str(MANIFESTS), "--emulator", str(state), "--env-file", str(DEMO_ENV), "-q", *extra)


def test_bindings_are_sorted_by_api_name_and_groups_are_named_beside_their_id(cli: Cli) -> None:
    lines = _demo_plan(cli).out.splitlines()
    start = lines.index("  # bindings in group 0009db9c828549768a200320714b8930 (orders), stage RELEASE")
    assert [line.split()[2] for line in lines[start + 1:start + 4]] == ["orders_create", "orders_delete", "orders_get"]
    assert "  # bindings in group 5d1f3e0a7b8c4d2e9f6a1b3c5d7e9f01 (payments), stage RELEASE" in lines
    markdown = _demo_plan(cli, "-o", "markdown").out
    assert ("> - unbind `orders_delete (46fbb52840d146f186e38e8e70fc8c93)` from `orders_backend` "
            "(group `0009db9c828549768a200320714b8930` (`orders`), RELEASE, cn-hangzhou)\n") in markdown
    assert "`orders_create (46fbb52840d146f186e38e8e70fc8c92)` → `orders_backend` (group `orders`, RELEASE) |" \
        in markdown


def test_json_names_the_groups_and_an_unbind_gives_the_line_that_owns_its_scope(cli: Cli) -> None:
    import json

    document = json.loads(_demo_plan(cli, "-o", "json").out)
    assert document["group_names"] == {"0009db9c828549768a200320714b8930": "orders",
                                       "5d1f3e0a7b8c4d2e9f6a1b3c5d7e9f01": "payments"}
    unbind = next(c for c in document["changes"] if c["action"] == "unbind")
    # Line 20 of manifests/hangzhou.yaml is `  - group: 0009db9c...  # orders` with `stage: RELEASE` below.
    assert unbind["source"] == f"{MANIFESTS}/hangzhou.yaml:20"
    assert (MANIFESTS / "hangzhou.yaml").read_text(encoding="utf-8").splitlines()[19].startswith(
        "  - group: 0009db9c828549768a200320714b8930")


def test_the_caution_box_marks_unbinds_that_are_drift(cli: Cli) -> None:
    # The base holds the same manifests: every change, the unbind included, is already pending there.
    markdown = _demo_plan(cli, "-o", "markdown", "--base", str(MANIFESTS)).out
    assert ("> - unbind `orders_delete (46fbb52840d146f186e38e8e70fc8c93)` from `orders_backend` "
            "(group `0009db9c828549768a200320714b8930` (`orders`), RELEASE, cn-hangzhou) - **drift**: already "
            "pending on the base, not introduced here\n") in markdown


def test_a_group_name_from_the_live_state_is_inert_text(cli: Cli, tmp_path: Path) -> None:
    state = tmp_path / "state.yaml"
    state.write_text(DEMO_STATE.read_text(encoding="utf-8").replace("name: orders\n", 'name: "ord\\e[31mers|`x`"\n'),
                     encoding="utf-8")
    text = _demo_plan(cli, state=state).out
    assert "  # bindings in group 0009db9c828549768a200320714b8930 (ord\\x1b[31mers|`x`), stage RELEASE" in text
    assert "\x1b" not in text
    markdown = _demo_plan(cli, "-o", "markdown", state=state).out
    # A code span longer than the name's backtick run; `|` escaped for the table.
    assert "(group `` ord\\x1b[31mers\\|`x` ``, RELEASE) |" in markdown


def test_apply_no_color_takes_the_colour_out_of_the_plan_on_a_terminal(cli: Cli,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    def apply(*extra: str) -> CliResult:
        monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
        return cli("apply", str(MANIFESTS), "--emulator", str(DEMO_STATE), "--env-file", str(DEMO_ENV), "-q",
                   "--auto-approve", *extra)

    coloured = apply()
    assert coloured.code == 0
    assert "\x1b[32m  + bind   orders_create" in coloured.out
    plain = apply("--no-color")
    assert plain.code == 0
    assert "\x1b" not in plain.out
    assert "  + bind   orders_create (46fbb52840d146f186e38e8e70fc8c92) -> orders_backend\n" in plain.out
