"""`plan` over the network starts each region's signature listing while the manifests load: the same requests
and the same plan as without the early start, every error in its place and form, nothing left running.

Nothing is timed: the loading is made to wait (10 s at most) until the server has answered a listing, so the
early read has certainly been under way (or done) when the manifests finish loading.
"""

from __future__ import annotations

import asyncio
import gc
import os
import re
import signal
import threading
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import reconciler.live
import reconciler.manifest
import reconciler.planning
from benchmarks.plan_benchmark import minimum_requests
from benchmarks.workload import UNMANAGED, Size, write_tenant
from reconciler.emulator.app import EmulatorApp
from reconciler.emulator.server import DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET
from reconciler.emulator.state import EmulatorState
from reconciler.emulator.verify import AccessKey
from tests.support.cli import CliResult
from tests.support.emulator import make_state
from tests.support.loopback_servers import serve

SIZE = Size(groups=2, apis=10, signatures=150)  # 155 live signatures: two pages, so the listing is read twice
WAIT_SECONDS = 10.0

Cli = Callable[..., CliResult]


class Server:
    """The emulator behind a recorder: the action of every request, in order, and an event set once a
    signature listing has been answered. While `stand_in` is set, it answers instead; requests of `held` wait
    until `release` is set."""

    def __init__(self, app: EmulatorApp) -> None:
        self.app: Any = app
        self.stand_in: Any = None
        self.actions: list[str] = []
        self.listing_answered = threading.Event()
        self.held = ""
        self.arrived = threading.Event()
        self.release = threading.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        action = dict(scope["headers"]).get(b"x-acs-action", b"").decode()
        self.actions.append(action)
        if action == self.held:
            self.arrived.set()
            while not self.release.is_set():
                await asyncio.sleep(0.01)
        await (self.stand_in or self.app)(scope, receive, send)
        if action == "DescribeSignatures":
            self.listing_answered.set()


@pytest.fixture(autouse=True)
def leaves_nothing_behind(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
                          ) -> Iterator[None]:
    """No credentials but those a test gives; afterwards no thread of the read, no unclosed connection or
    session, no task destroyed while pending."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in [name for name in os.environ if name.startswith("ALIBABA_CLOUD_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")  # no instance to ask on a test machine
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert [t.name for t in threading.enumerate() if t.name == "reconciler-early-read"] == []
    assert "Task was destroyed" not in caplog.text
    assert "Unclosed" not in caplog.text


@pytest.fixture
def tenant(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    return write_tenant(SIZE, tmp_path / "tenant")


@pytest.fixture
def server(tenant: tuple[Path, Path, dict[str, str]]) -> Iterator[tuple[Server, str]]:
    keys = (AccessKey(DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET),)
    recorder = Server(EmulatorApp(EmulatorState.from_file(tenant[0]), keys))
    with serve(recorder) as port:
        try:
            yield recorder, f"http://127.0.0.1:{port}"
        finally:
            recorder.release.set()


CREDENTIALS = {"ALIBABA_CLOUD_ACCESS_KEY_ID": DEFAULT_ACCESS_KEY_ID,
               "ALIBABA_CLOUD_ACCESS_KEY_SECRET": DEFAULT_ACCESS_KEY_SECRET}
WRONG_CREDENTIALS = {"ALIBABA_CLOUD_ACCESS_KEY_ID": DEFAULT_ACCESS_KEY_ID,
                     "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "not-the-secret-of-this-key"}


def loading_waits_for(monkeypatch: pytest.MonkeyPatch, event: threading.Event,
                      then: Callable[[], None] = lambda: None) -> list[bool]:
    """Loading the manifests first waits until `event` is set, then calls `then`; returns [whether `event` was
    set within WAIT_SECONDS], once per load."""
    waited: list[bool] = []
    load = reconciler.manifest.load_desired_state

    def waiting(*args: Any, **kwargs: Any) -> Any:
        waited.append(event.wait(WAIT_SECONDS))
        then()
        return load(*args, **kwargs)

    monkeypatch.setattr(reconciler.manifest, "load_desired_state", waiting)
    return waited


def plan(cli: Cli, manifests: Path, url: str, env: dict[str, str], *extra: str) -> CliResult:
    return cli("plan", str(manifests), "--endpoint", url, "--no-color", *extra, env=env)


def without_early_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """What `plan` did before the early start: no region is hinted, so nothing is read before loading."""
    monkeypatch.setattr(reconciler.planning, "hinted_regions", lambda paths: [])


def test_the_listing_is_read_while_the_manifests_load_with_the_same_requests_and_plan(
        cli: Cli, tenant: tuple[Path, Path, dict[str, str]], server: tuple[Server, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    state, manifests, env = tenant
    recorder, url = server
    waited = loading_waits_for(monkeypatch, recorder.listing_answered)
    result = plan(cli, manifests, url, env | CREDENTIALS)
    assert result.code == 0, result.err
    assert waited == [True]
    # The listing read twice (two pages each), a page of bindings per scope, an API list per group: the
    # same requests as a plan that starts reading after loading, and the same plan as the embedded emulator's.
    assert len(recorder.actions) == minimum_requests(SIZE) == 4 + 4 + 2
    assert Counter(recorder.actions) == {"DescribeSignatures": 4, "DescribeApiSignatures": 4, "DescribeApis": 2}
    embedded = cli("plan", str(manifests), "--emulator", str(state), "--no-color", env=env)
    assert (result.out, result.err) == (embedded.out, embedded.err)


def test_a_region_hinted_but_not_declared_is_read_for_nothing(
        cli: Cli, tenant: tuple[Path, Path, dict[str, str]], server: tuple[Server, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The early listing of a region the manifests do not declare is dropped unseen: here it is answered
    from another state (other signatures), and the plan is still the one of the tenant's state alone."""
    state, manifests, env = tenant
    recorder, url = server
    recorder.stand_in = EmulatorApp(make_state(signatures=3),
                                    (AccessKey(DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET),))
    monkeypatch.setattr(reconciler.planning, "hinted_regions", lambda paths: ["cn-shanghai"])
    waited = loading_waits_for(monkeypatch, recorder.listing_answered,
                               then=lambda: setattr(recorder, "stand_in", None))
    result = plan(cli, manifests, url, env | CREDENTIALS)
    assert result.code == 0, result.err
    assert waited == [True]
    assert "sig0000 " not in result.out
    embedded = cli("plan", str(manifests), "--emulator", str(state), "--no-color", env=env)
    assert (result.out, result.err) == (embedded.out, embedded.err)
    assert len(recorder.actions) == minimum_requests(SIZE) + 1  # the one page read for nothing


def broken(manifests: Path) -> str:
    """Break the signatures file at its last line; return that line's `FILE:LINE`."""
    path = manifests / "signatures.yaml"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines, "colour: blue"]) + "\n")
    return f"{path}:{len(lines) + 1}"


@pytest.mark.parametrize("credentials", ["wrong", "missing"])
def test_a_manifest_error_is_its_one_line_whatever_the_early_requests_met(
        credentials: str, cli: Cli, tenant: tuple[Path, Path, dict[str, str]], server: tuple[Server, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    _, manifests, env = tenant
    recorder, url = server
    where = broken(manifests)
    env |= WRONG_CREDENTIALS if credentials == "wrong" else {}
    if credentials == "wrong":  # the early listing is refused before the manifests are loaded
        loading_waits_for(monkeypatch, recorder.listing_answered)
    result = plan(cli, manifests, url, env)
    assert result.code == 1
    assert result.err.startswith(f"Error: {where}") and result.err.count("\n") == 1, result.err
    without_early_start(monkeypatch)
    assert plan(cli, manifests, url, env) == result


@pytest.mark.parametrize("credentials", ["wrong", "missing"])
def test_a_failure_of_the_early_read_is_reported_after_loading_as_without_it(
        credentials: str, cli: Cli, tenant: tuple[Path, Path, dict[str, str]], server: tuple[Server, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    _, manifests, env = tenant
    recorder, url = server
    env |= WRONG_CREDENTIALS if credentials == "wrong" else {}
    if credentials == "wrong":
        waited = loading_waits_for(monkeypatch, recorder.listing_answered)
    result = plan(cli, manifests, url, env)
    assert result.code == 1
    assert result.err.count("\n") == 1, result.err
    assert ("SignatureDoesNotMatch" if credentials == "wrong" else "no Alibaba Cloud credentials found") in result.err
    if credentials == "wrong":
        assert waited == [True]
        assert recorder.actions[0] == "DescribeSignatures"
    without_early_start(monkeypatch)
    before = plan(cli, manifests, url, env)
    assert (before.code, before.out, ids_out(before.err)) == (result.code, result.out, ids_out(result.err))


def ids_out(text: str) -> str:
    """`text` with the ids that differ from request to request (request ids, hashes) left out."""
    return re.sub(r"[0-9A-Fa-f-]{32,}", "ID", text)


def test_ctrl_c_while_the_manifests_load_stops_the_early_read(
        cli: Cli, tenant: tuple[Path, Path, dict[str, str]], server: tuple[Server, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    _, manifests, env = tenant
    recorder, url = server

    def interrupted() -> None:
        raise KeyboardInterrupt

    waited = loading_waits_for(monkeypatch, recorder.listing_answered, then=interrupted)
    result = plan(cli, manifests, url, env | CREDENTIALS)
    assert waited == [True]
    assert (result.code, result.out, result.err.strip()) == (130, "", "Interrupted.")


def test_ctrl_c_while_the_live_state_is_read_stops_every_request(
        cli: Cli, tenant: tuple[Path, Path, dict[str, str]], server: tuple[Server, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGINT reaches the main thread while it waits for the read running in the other thread."""
    _, manifests, env = tenant
    recorder, url = server
    recorder.held = "DescribeApis"  # asked for only after loading: the read is then in its second thread
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    main = threading.main_thread().ident
    assert main is not None

    def interrupt() -> None:
        if recorder.arrived.wait(WAIT_SECONDS):
            signal.pthread_kill(main, signal.SIGINT)

    interrupter = threading.Thread(target=interrupt)
    interrupter.start()
    try:
        result = plan(cli, manifests, url, env | CREDENTIALS)
    finally:
        interrupter.join()
        signal.signal(signal.SIGINT, previous)
    assert recorder.arrived.is_set()
    assert (result.code, result.out, result.err.strip()) == (130, "", "Interrupted.")


@pytest.mark.parametrize("flag", ["--snapshot", "--changed-only", "--emulator"])
def test_nothing_is_read_early_where_it_would_not_help(
        flag: str, cli: Cli, tenant: tuple[Path, Path, dict[str, str]], server: tuple[Server, str],
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """With a saved snapshot, a pull request's --changed-only plan (named signatures) or an embedded emulator
    (no latency to hide), no read is started before the manifests are loaded, and nothing is asked of the
    endpoint."""
    state, manifests, env = tenant
    recorder, url = server
    started: list[tuple[str, ...]] = []

    class Recorded(reconciler.live.EarlyRead):
        def __init__(self, options: Any, endpoint: str | None, regions: Any) -> None:
            started.append(tuple(regions))
            super().__init__(options, endpoint, regions)

    monkeypatch.setattr(reconciler.live, "EarlyRead", Recorded)
    extra = {"--snapshot": [flag, str(tmp_path / "none.json")], "--changed-only": [flag, "--base", str(manifests)],
             "--emulator": [flag, str(state)]}[flag]
    cli("plan", str(manifests), "--endpoint", url, *extra, env=env | CREDENTIALS)
    assert (started, recorder.actions) == ([], [])
    cli("plan", str(manifests), "--endpoint", url, env=env | CREDENTIALS)
    assert started == [("cn-hangzhou",)]


def test_pages_read_before_progress_is_shown_count_in_it() -> None:
    """On a terminal, the count a plan shows includes the pages read while the manifests loaded."""
    import io

    from reconciler.fetcher import PageProgress
    from reconciler.progress import TerminalProgress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    early = PageProgress()
    early.expect(2)
    early.page_read()
    shown = TerminalProgress(screen)
    early.count_into(shown.tracker)
    early.page_read()
    early.expect(1)
    early.page_read()
    shown.close()
    assert screen.getvalue().startswith("\rReading live state: 1/2 pages")
    assert screen.getvalue().endswith("\rReading live state: 3/3 pages\r\x1b[K")


def test_the_hint_is_each_files_top_level_region_line_when_it_is_a_region_id(tmp_path: Path) -> None:
    from reconciler.planning import HINT_BYTES, hinted_regions

    files = {
        "a.yaml": "# the orders team's keys\nregion: cn-hangzhou  # production\nsignatures: []\n",
        "b.yaml": "region: 'cn-shanghai'\n",
        "c.yaml": "signatures: []\nregion: \"ap-southeast-1\"\r\n",
        "d.yaml": "bindings:\n  - region: eu-central-1\n",  # not top level
        "e.yaml": "region: cn-beijing.evil.example\n",  # no region id: never a host name
        "f.yaml": "region: localhost\n",
        "h.yaml": "region: 1-2\n",
        "g.yaml": "x: " + "y" * HINT_BYTES + "\nregion: us-west-1\n",  # beyond the bytes read
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert hinted_regions([tmp_path]) == ["ap-southeast-1", "cn-hangzhou", "cn-shanghai"]
    assert hinted_regions([tmp_path / "missing"]) == []


def test_a_manifest_path_that_is_a_fifo_is_refused_as_before_not_waited_on(
        cli: Cli, tmp_path: Path, server: tuple[Server, str]) -> None:
    _, url = server
    fifo = tmp_path / "manifest.yaml"
    os.mkfifo(fifo)
    result = cli("plan", str(fifo), "--endpoint", url, env=CREDENTIALS)
    assert result.code == 1
    assert result.err.startswith(f"Error: {fifo}") and result.err.count("\n") == 1, result.err


def test_a_read_never_started_leaves_nothing_and_one_started_late_still_reads(
        tenant: tuple[Path, Path, dict[str, str]], server: tuple[Server, str], monkeypatch: pytest.MonkeyPatch
        ) -> None:
    """The read's thread may start after entering its block (after a fork, say), or only when the fetch needs it."""
    from reconciler.live import ConnectionOptions, EarlyRead
    from reconciler.manifest import load_desired_state
    from reconciler.planning import live_state

    _, manifests, env = tenant
    recorder, url = server
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    options = ConnectionOptions(endpoint=url)
    with EarlyRead(options, url, ["cn-hangzhou"]):
        pass
    assert recorder.actions == []
    desired = load_desired_state([manifests], env=env)
    with EarlyRead(options, url, ["cn-hangzhou"]) as early:
        snapshots = live_state(desired, None, options, quiet=True, warn=print, early=early)
    assert len(snapshots["cn-hangzhou"].signatures) == SIZE.signatures + UNMANAGED
    assert len(recorder.actions) == minimum_requests(SIZE)


# Run in a process of its own (a pytest-xdist worker has a second thread, and the parsing ahead forks only
# without one): `plan` with the parsing ahead on for any size, recording whether it forked, the threads
# running when it did, and the regions of the early read started after it.
FORK_THEN_READ = r"""
import json, sys, threading
from contextlib import contextmanager

import reconciler.live, reconciler.planning, reconciler.readahead
from reconciler.cli import run

seen = {"forked": [], "threads_at_fork": [], "early": []}
reconciler.readahead.FORK_FROM_BYTES = 0
read_ahead = reconciler.planning.read_ahead

@contextmanager
def recorded(*args, **kwargs):
    seen["threads_at_fork"].append(threading.active_count())
    with read_ahead(*args, **kwargs) as ahead:
        seen["forked"].append(ahead.forked)
        yield ahead

class Recorded(reconciler.live.EarlyRead):
    def start(self):
        if self.regions and self.regions not in seen["early"]:
            seen["early"].append(self.regions)
        super().start()

reconciler.planning.read_ahead = recorded
reconciler.live.EarlyRead = Recorded
if sys.argv[1] == "without":
    reconciler.planning.hinted_regions = lambda paths: []
seen["code"] = run(sys.argv[2:])
print(json.dumps(seen), file=sys.stderr)
"""


def test_the_manifests_are_parsed_ahead_in_a_child_forked_before_the_early_read_starts(
        tenant: tuple[Path, Path, dict[str, str]], server: tuple[Server, str]) -> None:
    import json
    import subprocess
    import sys

    _, manifests, env = tenant
    recorder, url = server
    runs = {}
    for case in ("with", "without"):
        done = subprocess.run([sys.executable, "-c", FORK_THEN_READ, case, "plan", str(manifests), "--endpoint",
                               url, "--no-color", "--quiet"], capture_output=True, text=True, timeout=120,
                              env=os.environ | env | CREDENTIALS)
        *errors, seen = done.stderr.splitlines()
        runs[case] = (done.stdout, errors, json.loads(seen))
    assert runs["with"][2] == {"forked": [True], "threads_at_fork": [1], "early": [["cn-hangzhou"]], "code": 0}
    assert runs["without"][2] == {"forked": [True], "threads_at_fork": [1], "early": [], "code": 0}
    assert runs["with"][:2] == runs["without"][:2]
    assert "Plan:" in runs["with"][0]
    assert len(recorder.actions) == 2 * minimum_requests(SIZE)
