"""Secrets at rest: a saved snapshot lets no guess be tested cheaply; `${env:...}` never reads a credential;
files that hold secrets are 0600; temporary files are exclusive, 0600 and gone after Ctrl-C or SIGTERM; a
multi-file export is all or nothing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from reconciler.errors import InputError
from reconciler.export import secret_variable_names
from reconciler.output import write_atomically, write_files_atomically
from tests.support.cli import CliResult
from tests.support.paths import ROOT

STATE = ROOT / "examples" / "emulator-state.yaml"
DEMO_ENV = ROOT / "examples" / "demo.env"
ORDERS = "0009db9c828549768a200320714b8930"
PAYMENTS = "5d1f3e0a7b8c4d2e9f6a1b3c5d7e9f01"
Cli = Callable[..., CliResult]


def live_secrets() -> dict[str, str]:
    state = yaml.safe_load(STATE.read_text(encoding="utf-8"))
    return {s["name"]: s["secret"] for s in state["signatures"]}


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


# ------------------------------------------------------------------ snapshot digests


def cheap_digests(signature_id: str, secret: str) -> set[str]:
    """What a digest one could test a guess against at GPU speed would look like, in hex and base64."""
    raw = [hashlib.sha256(secret.encode()).digest(), hashlib.sha1(secret.encode()).digest(),
           hashlib.md5(secret.encode()).digest(), hashlib.sha256((signature_id + secret).encode()).digest(),
           hmac.new(signature_id.encode(), secret.encode(), hashlib.sha256).digest(),
           hmac.new(secret.encode(), signature_id.encode(), hashlib.sha256).digest()]
    return {form for d in raw for form in (d.hex(), base64.b64encode(d).decode().rstrip("="))}


def test_a_saved_snapshot_holds_only_salted_scrypt_digests(cli: Cli, tmp_path: Path) -> None:
    saved = tmp_path / "live.json"
    result = cli("plan", str(ROOT / "manifests"), "--emulator", str(STATE), "--env-file", str(DEMO_ENV),
                 "--save-snapshot", str(saved), "-q")
    assert result.code == 0, result.err
    text = saved.read_text(encoding="utf-8")
    [snapshot] = json.loads(text)
    assert snapshot["format_version"] == "2"
    secrets = live_secrets()
    assert len(snapshot["signatures"]) == len(secrets) == 4
    salts = set()
    for entry in snapshot["signatures"]:
        secret = secrets[entry["name"]]
        assert set(entry) == {"id", "name", "key", "secret_scrypt", "created", "modified"}
        assert not [form for form in cheap_digests(entry["id"], secret) if form in text]
        assert secret not in text
        # The only way to test a guess is one scrypt at N=2^15, r=8, p=1 (32 MiB) under the entry's own salt.
        kind, n, r, p, salt, digest = entry["secret_scrypt"].split(":")
        assert (kind, n, r, p) == ("scrypt", "32768", "8", "1")
        assert hashlib.scrypt(secret.encode(), salt=bytes.fromhex(salt), n=32768, r=8, p=1, maxmem=2**26,
                              dklen=32).hex() == digest
        salts.add(salt)
    assert len(salts) == 4
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(saved.stat().st_mode) == 0o666 & ~umask


def test_equal_secrets_get_different_digests(cli: Cli, tmp_path: Path, write: Callable[[str, str], Path]) -> None:
    state = write("state.yaml", yaml.safe_dump({"region": "cn-hangzhou", "signatures": [
        {"name": "first_backend", "key": "firstKey01", "secret": "sameSecret01"},
        {"name": "second_backend", "key": "secondKey01", "secret": "sameSecret01"}]}))
    manifest = write("m.yaml", "region: cn-hangzhou\n")
    saved = tmp_path / "live.json"
    assert cli("plan", str(manifest), "--emulator", str(state), "--save-snapshot", str(saved), "-q").code == 0
    digests = [s["secret_scrypt"] for s in json.loads(saved.read_text(encoding="utf-8"))[0]["signatures"]]
    assert len(set(digests)) == 2


def test_an_offline_plan_still_compares_secrets(cli: Cli, tmp_path: Path, write: Callable[[str, str], Path]) -> None:
    saved = tmp_path / "live.json"
    args = ["plan", str(ROOT / "manifests"), "--emulator", str(STATE), "--env-file", str(DEMO_ENV), "-o", "json"]
    live = cli(*args, "--save-snapshot", str(saved))
    changed_env = write("changed.env", DEMO_ENV.read_text(encoding="utf-8").replace("ordersSecret2026",
                                                                                    "ordersSecret2027"))
    offline = cli("plan", str(ROOT / "manifests"), "--snapshot", str(saved), "--env-file", str(DEMO_ENV), "-o", "json")
    changed = cli("plan", str(ROOT / "manifests"), "--snapshot", str(saved), "--env-file", str(changed_env),
                  "-o", "json")
    assert json.loads(offline.out)["changes"] == json.loads(live.out)["changes"]
    assert json.loads(offline.out)["secrets_checked"] is True
    updates = [c for c in json.loads(changed.out)["changes"] if c["address"] == "signature.cn-hangzhou.orders_backend"]
    assert [(c["action"], c["changed"]) for c in updates] == [("update", ["secret"])]


def test_a_format_1_snapshot_is_refused_in_one_line(cli: Cli, write: Callable[[str, str], Path]) -> None:
    old = write("old.json", json.dumps({"format_version": "1", "region": "cn-hangzhou", "signatures": [
        {"id": "s1", "name": "orders_backend", "key": "ordersKey0123456789",
         "secret_sha256": "sha256:" + "0" * 64}]}))
    result = cli("plan", str(ROOT / "manifests"), "--snapshot", str(old), "--env-file", str(DEMO_ENV))
    assert (result.code, result.out) == (1, "")
    assert result.err == (f"Error: {old}: snapshot format '1' is not read by this version (format 1 held secret "
                          "digests that are cheap to test offline): delete it and save a new one with "
                          "`reconciler plan --save-snapshot`\n")


@pytest.mark.parametrize("content", ['{"region": "cn-hangzhou"}', '[1, 2]', '{"format_version": "9"}'])
def test_a_file_that_is_not_a_format_2_snapshot_is_one_line(cli: Cli, write: Callable[[str, str], Path],
                                                            content: str) -> None:
    other = write("other.json", content)
    result = cli("plan", str(ROOT / "manifests"), "--snapshot", str(other), "--skip-secrets")
    assert (result.code, result.out) == (1, "")
    assert result.err == (f"Error: {other}: not a snapshot of format 2 (no such 'format_version'); save one with "
                          "`reconciler plan --save-snapshot`\n")


def test_a_snapshot_digest_with_other_scrypt_parameters_is_refused(cli: Cli, write: Callable[[str, str], Path]) -> None:
    cheap = write("cheap.json", json.dumps({"format_version": "2", "region": "cn-hangzhou", "signatures": [
        {"id": "s1", "name": "orders_backend", "key": "ordersKey0123456789",
         "secret_scrypt": f"scrypt:2:1:1:{'0' * 32}:{'0' * 64}"}]}))
    result = cli("plan", str(ROOT / "manifests"), "--snapshot", str(cheap), "--skip-secrets")
    assert result.code == 1
    assert result.err.startswith(f"Error: {cheap}: snapshot field 'signatures.0.secret_scrypt': String should "
                                 "match pattern")
    assert len(result.err.splitlines()) == 1


# ------------------------------------------------------------------ ${env:NAME} never reads a credential


@pytest.mark.parametrize("variable", [
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_SECURITY_TOKEN", "ALICLOUD_SECRET_KEY", "ALIYUN_ACCESS_KEY",
    "GITHUB_TOKEN", "GH_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_TOKEN", "ACTIONS_RUNTIME_TOKEN", "CI_JOB_TOKEN",
    "CI_JOB_JWT_V2", "RECONCILER_GITLAB_TOKEN", "RECONCILER_EMULATOR_ACCESS_KEY_SECRET", "CI_REGISTRY_PASSWORD",
    "NPM_TOKEN", "DB_PASSWORD", "SLACK_API_KEY", "github_token",
])
@pytest.mark.parametrize("mode", [[], ["--skip-secrets"]])
def test_a_credential_variable_is_refused_naming_the_line(cli: Cli, write: Callable[[str, str], Path], variable: str,
                                                          mode: list[str]) -> None:
    manifest = write("m.yaml", "region: cn-hangzhou\nsignatures:\n  - name: orders_backend\n"
                               f"    key: ordersKey01\n    secret: ${{env:{variable}}}\n")
    result = cli("validate", str(manifest), *mode, env={variable: "validSecret01"})
    assert (result.code, result.out) == (1, "")
    assert result.err == (f"Error: {manifest}:5: signatures[0].secret: ${{env:{variable}}} may not be used: "
                          f"{variable} is named like a credential (of the cloud, the CI system or a token), never a "
                          f"signature secret; use a variable of your own, e.g. ORDERS_BACKEND_SECRET\n")
    assert "validSecret01" not in result.err


@pytest.mark.parametrize("variable", ["ORDERS_BACKEND_SECRET", "PAYMENTS_SECRET", "TOKENIZER_SECRET"])
def test_an_ordinary_variable_resolves(cli: Cli, write: Callable[[str, str], Path], variable: str) -> None:
    manifest = write("m.yaml", "region: cn-hangzhou\nsignatures:\n  - name: orders_backend\n"
                               f"    key: ordersKey01\n    secret: ${{env:{variable}}}\n")
    assert cli("validate", str(manifest), env={variable: "validSecret01"}).code == 0


def test_export_never_names_a_variable_plan_would_refuse() -> None:
    assert secret_variable_names(["aliyun_market", "deploy_token", "orders"]) == {
        "aliyun_market": "SIGNATURE_ALIYUN_MARKET_SECRET", "deploy_token": "DEPLOY_TOKEN_SECRET",
        "orders": "ORDERS_SECRET"}


# ------------------------------------------------------------------ file modes


@pytest.mark.parametrize(("before", "after"), [(None, 0o600), (0o644, 0o600), (0o666, 0o600), (0o400, 0o400),
                                               (0o640, 0o600), (0o600, 0o600)])
def test_a_file_with_secrets_is_0600_or_keeps_a_stricter_mode(tmp_path: Path, umask_022: None, before: int | None,
                                                              after: int) -> None:
    path = tmp_path / "seed.yaml"
    if before is not None:
        path.write_text("old\n", encoding="utf-8")
        path.chmod(before)
    write_atomically(path, "secret: s3cretValue\n", secret=True)
    assert (stat.S_IMODE(path.stat().st_mode), path.read_text(encoding="utf-8")) == (after, "secret: s3cretValue\n")


def test_other_files_keep_their_mode_or_follow_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o027)
    try:
        write_atomically(tmp_path / "new.txt", "plan\n")
        kept = tmp_path / "kept.txt"
        kept.write_text("old\n", encoding="utf-8")
        kept.chmod(0o664)
        write_atomically(kept, "plan\n")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o640
    assert stat.S_IMODE(kept.stat().st_mode) == 0o664


def test_the_emulator_saves_its_state_0600(tmp_path: Path, umask_022: None) -> None:
    from reconciler.emulator.state import EmulatorState

    state = EmulatorState.from_file(STATE)
    path = tmp_path / "state.yaml"
    path.write_text("region: cn-hangzhou\n", encoding="utf-8")
    path.chmod(0o644)
    state.dump_state(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o400)
    state.dump_state(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o400


def test_the_emulator_command_saves_its_state_0600(tmp_path: Path, umask_022: None) -> None:
    path = tmp_path / "state.yaml"
    path.write_text(STATE.read_text(encoding="utf-8"), encoding="utf-8")
    process = subprocess.Popen([sys.executable, "-m", "reconciler", "emulator", "--state", str(path), "--save"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("Emulator listening on http://127.0.0.1:")
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert (process.returncode, out, err) == (0, f"Emulator state saved to {path}\n", "")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# ------------------------------------------------------------------ temporary files


def test_a_symlink_planted_at_a_predictable_temp_name_is_never_written_through(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("the attacker's file\n", encoding="utf-8")
    for name in (f".plan.json.tmp{os.getpid()}", ".plan.json.tmp", "plan.json.tmp", ".plan.json.swp"):
        (tmp_path / name).symlink_to(victim)
    write_atomically(tmp_path / "plan.json", "s3cret-bearing text\n", secret=True)
    assert victim.read_text(encoding="utf-8") == "the attacker's file\n"
    assert (tmp_path / "plan.json").read_text(encoding="utf-8") == "s3cret-bearing text\n"
    assert not (tmp_path / "plan.json").is_symlink()


def test_the_temp_file_is_0600_while_written_whatever_the_final_mode(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[int, str]] = []
    real_fsync = os.fsync

    def looking_fsync(fd: int) -> None:
        seen.append((stat.S_IMODE(os.fstat(fd).st_mode),
                     next(p.name for p in tmp_path.iterdir() if p.name.startswith(".plan.txt."))))
        real_fsync(fd)

    monkeypatch.setattr("reconciler.output.os.fsync", looking_fsync)
    (tmp_path / "plan.txt").write_text("old\n", encoding="utf-8")
    (tmp_path / "plan.txt").chmod(0o644)
    write_atomically(tmp_path / "plan.txt", "new\n")
    [(mode, name)] = seen
    assert mode == 0o600
    assert name.endswith(".tmp") and name != f".plan.txt.tmp{os.getpid()}"
    assert stat.S_IMODE((tmp_path / "plan.txt").stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.txt"]


INTERRUPTING = """
import os, signal, sys
real = {{"fsync": os.fsync, "replace": os.replace}}
calls = {{"fsync": 0, "replace": 0}}

def interrupting(name):
    def call(*args):
        result = real[name](*args)
        calls[name] += 1
        if name == {hook!r} and calls[name] == {at}:
            os.kill(os.getpid(), signal.{signal})
        return result
    return call

os.fsync = interrupting("fsync")
os.replace = interrupting("replace")

from reconciler.aliyun.client import ApiClient
real_call = ApiClient.call_model

async def call_model(self, *args, **kwargs):
    calls.setdefault("call_model", 0)
    calls["call_model"] += 1
    if {hook!r} == "call_model" and calls["call_model"] == {at}:
        os.kill(os.getpid(), signal.{signal})
    return await real_call(self, *args, **kwargs)

ApiClient.call_model = call_model
from reconciler.cli import main
sys.argv = ["reconciler", *sys.argv[1:]]
main()
"""


def interrupted_run(args: list[str], cwd: Path, *, hook: str, at: int, sig: str) -> subprocess.CompletedProcess[str]:
    script = INTERRUPTING.format(hook=hook, at=at, signal=sig)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALIBABA_CLOUD_")}
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=120, check=False)


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_a_signal_while_writing_leaves_the_old_file_and_no_temp_file(tmp_path: Path, sig: str) -> None:
    (tmp_path / "plan.txt").write_text("the previous plan\n", encoding="utf-8")
    done = interrupted_run(["plan", str(ROOT / "manifests"), "--emulator", str(STATE), "--env-file", str(DEMO_ENV),
                            "--out", "plan.txt", "-q"], tmp_path, hook="fsync", at=1, sig=sig)
    assert "Traceback" not in done.stderr
    if sig == "SIGTERM":
        assert (done.returncode, done.stderr) == (143, "Terminated.\n")
    else:
        assert done.returncode != 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.txt"]
    assert (tmp_path / "plan.txt").read_text(encoding="utf-8") == "the previous plan\n"


def test_sigterm_while_reading_the_live_state_stops_the_run_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "plan.txt").write_text("the previous plan\n", encoding="utf-8")
    done = interrupted_run(["plan", str(ROOT / "manifests"), "--emulator", str(STATE), "--env-file", str(DEMO_ENV),
                            "--out", "plan.txt", "--save-snapshot", "live.json", "-q"], tmp_path, hook="call_model",
                           at=2, sig="SIGTERM")
    assert (done.returncode, done.stdout, done.stderr) == (143, "", "Terminated.\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.txt"]
    assert (tmp_path / "plan.txt").read_text(encoding="utf-8") == "the previous plan\n"


def old_export(folder: Path) -> dict[str, str]:
    folder.mkdir()
    names = ["cn-hangzhou.yaml", f"cn-hangzhou.{ORDERS}.yaml", f"cn-hangzhou.{PAYMENTS}.yaml"]
    for name in names:
        (folder / name).write_text(f"# the previous {name}\n", encoding="utf-8")
    return {name: (folder / name).read_text(encoding="utf-8") for name in names}


def contents(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") if p.is_file() else "(folder)" for p in folder.iterdir()}


EXPORT = ["export", "--region", "cn-hangzhou", "--all-groups", "--emulator", str(STATE), "--split-by", "group",
          "--out", "out", "-q"]


@pytest.mark.parametrize(("hook", "at"), [("fsync", 3), ("replace", 2)])
def test_sigterm_during_a_multi_file_export_leaves_every_old_file(tmp_path: Path, hook: str, at: int) -> None:
    before = old_export(tmp_path / "out")
    done = interrupted_run(EXPORT, tmp_path, hook=hook, at=at, sig="SIGTERM")
    assert (done.returncode, done.stderr) == (143, "Terminated.\n")
    assert contents(tmp_path / "out") == before


def test_an_export_failing_on_its_third_file_leaves_every_old_file(cli: Cli, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    before = old_export(tmp_path / "out")
    real_replace = os.replace
    calls = iter(range(1, 100))

    def third_fails(src: str, dst: str) -> None:
        if next(calls) == 3:  # the first two files are in place by now
            raise OSError(5, "Input/output error")
        real_replace(src, dst)

    monkeypatch.setattr("reconciler.output.os.replace", third_fails)
    result = cli(*EXPORT)
    assert (result.code, result.out) == (1, "")
    assert result.err == f"Error: {Path('out') / list(before)[2]}: cannot write: Input/output error\n"
    assert contents(tmp_path / "out") == before


def test_an_export_onto_a_folder_of_the_same_name_leaves_every_old_file(cli: Cli, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    before = old_export(tmp_path / "out")
    third = tmp_path / "out" / f"cn-hangzhou.{PAYMENTS}.yaml"
    third.unlink()
    third.mkdir()
    del before[third.name]
    result = cli(*EXPORT)
    assert (result.code, result.out) == (1, "")
    assert result.err == f"Error: {Path('out') / third.name}: cannot write: it is a folder\n"
    assert contents(tmp_path / "out") == {**before, third.name: "(folder)"}


def test_a_write_failing_on_the_third_temp_file_replaces_nothing(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    before = old_export(tmp_path / "out")
    real_fsync = os.fsync
    calls = iter(range(1, 100))

    def full_disk(fd: int) -> None:
        if next(calls) == 3:
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr("reconciler.output.os.fsync", full_disk)
    with pytest.raises(InputError) as caught:
        write_files_atomically([(tmp_path / "out" / name, "new\n") for name in before])
    assert str(caught.value) == f"{tmp_path / 'out' / list(before)[2]}: cannot write: No space left on device"
    assert contents(tmp_path / "out") == before


def test_a_multi_file_write_adds_no_file_when_it_fails(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").mkdir()
    with pytest.raises(InputError):
        write_files_atomically([(tmp_path / "a.yaml", "a\n"), (tmp_path / "b.yaml", "b\n"),
                                (tmp_path / "c.yaml", "c\n")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]
