"""The hostile-values corpus through the command line, from both untrusted sources: the live state (a snapshot,
the emulator over HTTP, an endpoint's error answer) and a pull request (manifest values with YAML escapes, file
names with newlines). Assertions are on what a terminal, GitHub's runner and GitHub's renderer make of the
output: no raw control character, no line the runner reads as a workflow command, nothing active in markdown,
and every error exactly one line."""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.emulator.server import running_emulator
from reconciler.emulator.state import EmulatorState
from reconciler.inert import inert
from reconciler.snapshot import BindingScope, LiveApi, LiveBinding, LiveGroup, LiveSignature, Snapshot
from tests.support.cli import CliResult
from tests.support.hostile import HOSTILE, markdown_findings, raw_controls, runner_commands
from tests.support.loopback_servers import serving
from tests.support.paths import ROOT
from tests.support.prewarmed import Prewarmed
from tests.support.snapshots import write_snapshot

Cli = Callable[..., CliResult]
ORDERS = "0009db9c828549768a200320714b8930"
API1, API2, API3 = (f"a{n:031x}" for n in (1, 2, 3))
CREDENTIALS = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "testid", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "testsecret"}
SECRETS = {"ORDERS_SECRET": "ordersSecret01"}
ANNOTATION = "::error file="

MANIFEST = f"""\
region: cn-hangzhou
signatures:
  - name: orders_backend
    key: ordersKey01
    secret: ${{env:ORDERS_SECRET}}
bindings:
  - group: {ORDERS}
    stage: RELEASE
    signature: orders_backend
    apis: [{API1}, {API2}]
"""


def assert_inert(result: CliResult) -> None:
    """Nothing raw for a terminal, nothing for the runner (but our own annotation), in stdout and stderr."""
    for stream in (result.out, result.err):
        assert raw_controls(stream) == []
        assert runner_commands(stream, ours=ANNOTATION) == []


def assert_one_error_line(result: CliResult) -> str:
    assert result.code == 1
    lines = result.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.err
    assert_inert(result)
    return lines[0]


def hostile_snapshot(value: str) -> Snapshot:
    """Live state where an account put `value` in every name it controls (API names and ids, a signature's name
    and key): a bind, a rebind away from, and an unbind from a signature so named, and that signature unmanaged."""
    return Snapshot(
        region="cn-hangzhou",
        signatures=(LiveSignature(id="sig-orders", name="orders_backend", key="ordersKey01", secret="ordersSecret01"),
                    LiveSignature(id="sig-evil", name=value, key=value, secret="evilSecret01")),
        groups=(LiveGroup(id=ORDERS, name=value, apis=(LiveApi(id=API1, name=value), LiveApi(id=API2, name=value),
                                                      LiveApi(id=value, name=value))),),
        scopes=(BindingScope(group=ORDERS, stage="RELEASE"),),
        bindings=(LiveBinding(group=ORDERS, stage="RELEASE", api_id=API2, api_name=value, signature_id="sig-evil",
                              signature_name=value),
                  LiveBinding(group=ORDERS, stage="RELEASE", api_id=value, api_name=value, signature_id="sig-evil",
                              signature_name=value)))


def _strings(document: Any) -> set[str]:
    if isinstance(document, dict):
        return {s for item in document.values() for s in _strings(item)}
    if isinstance(document, list):
        return {s for item in document for s in _strings(item)}
    return {document} if isinstance(document, str) else set()


@pytest.fixture
def manifests(write: Callable[[str, str], Path]) -> Path:
    return write("manifests/m.yaml", MANIFEST).parent


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_plans_of_a_hostile_live_state_are_inert_in_every_format(cli: Cli, manifests: Path, tmp_path: Path,
                                                                 name: str) -> None:
    value = HOSTILE[name]
    snapshot = tmp_path / "live.json"
    write_snapshot(hostile_snapshot(value), snapshot)
    base = tmp_path / "base"
    base.mkdir()
    (base / "m.yaml").write_text(MANIFEST.replace(f", {API2}]", "]"))
    for extra in ((), ("--base", str(base)), ("--target", f"group={ORDERS}")):
        for output in (("-o", "text"), ("--compact",), ("-o", "markdown"), ("-o", "json")):
            result = cli("plan", str(manifests), "--snapshot", str(snapshot), *output, *extra, env=SECRETS)
            assert (result.code, result.err) == (0, ""), result.err
            assert_inert(result)
            if output == ("-o", "markdown"):
                assert markdown_findings(result.out) == []
            elif output == ("-o", "json"):
                assert value in _strings(json.loads(result.out))
            else:
                assert inert(value) in result.out


def _emulator_state(api_name: str, signature_name: str) -> EmulatorState:
    """The emulator with an API and a signature renamed behind the vendor's back (its rules refuse such names)."""
    state = EmulatorState.from_dict({
        "region": "cn-hangzhou",
        "signatures": [{"name": "orders_backend", "key": "ordersKey01", "secret": "ordersSecret01"},
                       {"name": "evil_backend", "key": "evilKey01", "secret": "evilSecret01"}],
        "groups": [{"name": "orders", "id": ORDERS,
                    "apis": [{"id": API1, "name": "api_one"}, {"id": API2, "name": "api_two"},
                             {"id": API3, "name": "api_three"}],
                    "bindings": {"RELEASE": {API2: "evil_backend", API3: "evil_backend"}}}],
    })
    for api in state.describe_apis(ORDERS, None, None, 1, 100)[0]:
        object.__setattr__(api, "name", api_name)
    evil = state.signature_by_name("evil_backend")
    assert evil is not None
    evil.name = signature_name
    return state


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_an_api_name_cannot_clear_the_screen_above_the_apply_prompt(cli: Cli, manifests: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    attack = HOSTILE["clear-screen"]
    with running_emulator(_emulator_state(attack, "evil_backend")) as emulator:
        monkeypatch.setattr(sys, "stdin", _Terminal("no\n"))
        result = cli("apply", str(manifests), "--endpoint", emulator.url, "-q", env={**CREDENTIALS, **SECRETS})
    assert (result.code, result.err) == (1, "Error: apply cancelled; nothing was changed\n")
    assert "\x1b" not in result.out
    lines = result.out.splitlines()
    assert "No changes. Live state matches the manifests." not in lines
    assert (f"  + bind   \\x1b[2J\\x1b[HNo changes. Live state matches the manifests. (not a valid API name) "
            f"({API1}) -> orders_backend") in lines
    assert result.out.endswith("Apply these changes? Only 'yes' will be accepted: ")
    assert_inert(result)


@pytest.mark.parametrize("name", ["newline-error", "clear-screen", "bidi-override", "stop-commands", "c1-csi"])
def test_apply_lines_show_live_names_escaped(cli: Cli, manifests: Path, name: str) -> None:
    value = HOSTILE[name]
    with running_emulator(_emulator_state(value, value)) as emulator:
        result = cli("apply", str(manifests), "--endpoint", emulator.url, "-q", "--auto-approve",
                     env={**CREDENTIALS, **SECRETS})
    assert (result.code, result.err) == (0, ""), result.err
    assert_inert(result)
    assert f"rebound 1 API of group {ORDERS} stage RELEASE from {inert(value)} to orders_backend" \
        in result.out.splitlines()
    assert f"unbound 1 API of group {ORDERS} stage RELEASE from {inert(value)}" in result.out.splitlines()


@pytest.mark.parametrize("name", ["newline-error", "clear-screen", "bidi-override", "stop-commands", "tab"])
def test_exports_summary_shows_live_names_escaped(cli: Cli, name: str, tmp_path: Path) -> None:
    value = HOSTILE[name]
    with running_emulator(_emulator_state(value, value)) as emulator:
        result = cli("export", "--region", "cn-hangzhou", "--all-groups", "--endpoint", emulator.url, "-q",
                     "--out", str(tmp_path / "out"), env=CREDENTIALS)
        to_stdout = cli("export", "--region", "cn-hangzhou", "--all-groups", "--endpoint", emulator.url, "-q",
                        env=CREDENTIALS)
    for run in (result, to_stdout):
        assert_inert(run)
        assert run.code == 0 or len(run.err.splitlines()) == 1, run.err
    if to_stdout.code == 0:  # the manifest shows the name escaped, and reads back as the live name
        assert value in {signature["name"] for signature in yaml.safe_load(to_stdout.out)["signatures"]}


# ---------------------------------------------------------------- errors and warnings


def _annotation_message(line: str) -> tuple[dict[str, str], str]:
    """A workflow command parsed as GitHub's runner does: properties up to the first `::`, then the message."""
    assert line.startswith("::error ")
    properties, _, message = line[len("::error "):].partition("::")

    def unescape(text: str) -> str:
        return text.replace("%0D", "\r").replace("%0A", "\n").replace("%3A", ":").replace("%2C", ",") \
            .replace("%25", "%")

    fields = dict(item.split("=", 1) for item in properties.split(","))
    return {key: unescape(val) for key, val in fields.items()}, unescape(message)


def test_a_group_value_cannot_spoof_a_workflow_command(cli: Cli, write: Callable[[str, str], Path],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = write("manifests/m.yaml", MANIFEST.replace(f"group: {ORDERS}",
                                                          'group: "payments\\n::error title=Build passed::spoofed"'))
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_WORKSPACE", str(manifest.parent.parent))
    result = cli("validate", str(manifest), env=SECRETS)
    line = assert_one_error_line(result)
    assert line == (f"Error: {manifest}:7: bindings[0].group: must be an API group id (32 lowercase hex "
                    "characters), not 'payments\\n::error title=Build passed::spoofed'")
    [annotation] = result.out.splitlines()
    properties, message = _annotation_message(annotation)
    assert properties == {"file": "manifests/m.yaml", "line": "7", "title": "reconciler: bindings[0].group"}
    assert message == ("must be an API group id (32 lowercase hex characters), not "
                       "'payments\\n::error title=Build passed::spoofed'")


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_manifest_errors_from_any_value_are_one_inert_line(cli: Cli, write: Callable[[str, str], Path],
                                                           monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    value = json.dumps(HOSTILE[name])  # a YAML double-quoted scalar: the escapes a pull request can write
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    for field_line in (f"group: {value}", f"signature: {value}", f"stage: {value}", f"{value}: 1"):
        manifest = write("manifests/m.yaml", MANIFEST.replace("stage: RELEASE", field_line, 1)
                         if not field_line.startswith("group") else
                         MANIFEST.replace(f"group: {ORDERS}", field_line))
        result = cli("validate", str(manifest), env=SECRETS)
        # validate reports every error of the file: each is one line, with its one annotation.
        errors = result.err.splitlines()
        assert result.code == 1 and errors and all(line.startswith("Error: ") for line in errors), result.err
        assert_inert(result)
        annotations = result.out.splitlines()
        assert len(annotations) == len(errors) and all(line.startswith(ANNOTATION) for line in annotations)


@pytest.mark.parametrize("name", ["newline-error", "stop-commands", "clear-screen", "bidi-override", "quick-approve",
                                  "not-utf-8"])
def test_file_names_with_newlines_stay_on_one_line(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   name: str) -> None:
    folder = tmp_path / "manifests"
    folder.mkdir()
    # Bytes that are not UTF-8 come back from the file system as lone surrogates.
    stem = os.fsdecode(b"bad\xff\n::error::x") if name == "not-utf-8" else HOSTILE[name].replace("/", "_")
    file = folder / (stem + ".yaml")
    # A literal secret gives a warning naming the file; then a broken group gives an error naming it.
    file.write_text(MANIFEST.replace("${env:ORDERS_SECRET}", "literalSecret01"))
    warned = cli("validate", str(folder))
    assert warned.code == 0
    assert_inert(warned)
    assert warned.err.count("\n") == 1 and warned.err.startswith("Warning: ")
    file.write_text(MANIFEST.replace(f"group: {ORDERS}", "group: payments"))
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    failed = cli("validate", str(folder), env=SECRETS)
    assert assert_one_error_line(failed).startswith(f"Error: {inert(str(file))}:7: bindings[0].group: ")
    properties, _ = _annotation_message(failed.out.rstrip("\n"))
    assert properties["file"] == inert(str(file))


class _HostileEndpoint(BaseHTTPRequestHandler):
    """An endpoint whose error answer is made of hostile text."""

    body: bytes = b""

    def do_POST(self) -> None:
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    do_GET = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up on a request (the run failed on another) is not news


@pytest.fixture
def hostile_endpoint() -> Iterator[Callable[[str], str]]:
    with serving(_QuietServer(("127.0.0.1", 0), _HostileEndpoint)) as url:

        def serve(value: str) -> str:
            _HostileEndpoint.body = json.dumps({"Code": f"Forbidden{value}", "Message": value,
                                                "RequestId": value, "HostId": value}).encode()
            return url

        yield serve


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_api_errors_from_the_endpoint_are_one_inert_line(cli: Cli, manifests: Path,
                                                         hostile_endpoint: Callable[[str], str], name: str) -> None:
    url = hostile_endpoint(HOSTILE[name])
    result = cli("plan", str(manifests), "--endpoint", url, "-q", env={**CREDENTIALS, **SECRETS})
    assert_one_error_line(result)


@pytest.mark.parametrize("name", ["newline-error", "clear-screen", "bidi-override", "stop-commands", "c1-csi"])
def test_debug_logs_show_what_the_endpoint_said_escaped(manifests: Path, hostile_endpoint: Callable[[str], str],
                                                        name: str, prewarmed: Prewarmed) -> None:
    # A process of its own: in-process, pytest's log capture would take the place of --debug's stderr handler.
    url = hostile_endpoint(HOSTILE[name])
    done = prewarmed.run(["--debug", "plan", str(manifests), "--endpoint", url, "-q"], errors="surrogateescape",
                         timeout=120, env={**os.environ, **CREDENTIALS, **SECRETS}, cwd=ROOT)
    assert done.returncode == 1
    assert f"RequestId {inert(HOSTILE[name])}" in done.stderr  # the endpoint's answer is logged, escaped
    assert_inert(CliResult(done.returncode, done.stdout, done.stderr))


@pytest.mark.parametrize("name", ["newline-error", "clear-screen", "bidi-override", "stop-commands"])
def test_usage_errors_echo_the_value_escaped_on_one_line(cli: Cli, manifests: Path, name: str) -> None:
    value = HOSTILE[name]
    for args in (("plan", str(manifests), "-o", value), ("plan", str(manifests), "--target", value),
                 ("plan", str(manifests), "--target", f"group={value}", "--snapshot", value),
                 ("validate", value)):
        assert_one_error_line(cli(*args, env=SECRETS))


def test_a_yaml_escape_in_a_value_is_shown_escaped(cli: Cli, write: Callable[[str, str], Path]) -> None:
    manifest = write("manifests/m.yaml", MANIFEST.replace("apis: [", 'apis: ["\\e[2J\\e[HNo changes\\a", '))
    snapshot = write("live.json", "")
    live = Snapshot(region="cn-hangzhou", groups=(LiveGroup(id=ORDERS, apis=(LiveApi(id=API1, name="api_one"),)),),
                    scopes=(BindingScope(group=ORDERS, stage="RELEASE"),))
    write_snapshot(live, snapshot)
    result = cli("plan", str(manifest), "--snapshot", str(snapshot), env=SECRETS)
    line = assert_one_error_line(result)
    assert "\\x1b[2J\\x1b[HNo changes\\x07" in line


def test_a_usage_error_is_one_line_with_where_to_look(cli: Cli, manifests: Path) -> None:
    result = cli("plan", str(manifests), "--zzz")
    assert (result.code, result.out) == (1, "")
    # click's wording of the first part varies between its versions; the shape is ours.
    assert result.err.startswith("Error: No such option") and "--zzz" in result.err
    assert result.err.endswith(". See 'reconciler plan --help'.\n") and result.err.count("\n") == 1
