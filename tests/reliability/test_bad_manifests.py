"""The bad-input corpus (tests/data/bad-manifests): every broken manifest gives its one expected line,
names file and line, and never a traceback - in-process for all of them, through `python -m reconciler`
for a good share, for `validate` and for `plan`."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from reconciler.yamlsource import MAX_FILE_BYTES
from tests.support.paths import ROOT
from tests.support.prewarmed import Prewarmed

from .runs import Cli, has_traceback

CORPUS = ROOT / "tests" / "data" / "bad-manifests"
EXPECTED: dict[str, str] = yaml.safe_load((CORPUS / "expected.yaml").read_text(encoding="utf-8"))
# Refusals of a whole file, where no line is to blame: they name the file only.
WHOLE_FILE = re.compile(r"file is empty \(expected a manifest with 'region'\)|"
                        r"file is \d+ bytes; manifests larger than \d+ bytes are refused")
ENV = {"RECONCILER_CORPUS_BAD_SECRET": "1bad"}
HUGE_BYTES = 50 * 1024 * 1024

# Entries generated at test time (too big or too binary to commit): name -> (bytes, expected line).
GENERATED: dict[str, tuple[bytes, str]] = {
    "binary-png.yaml": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "{path}:1: file is not UTF-8 text"),
    "latin-1.yaml": ("region: cn-hangzhou\nsignatures:\n  - name: caf\xe9_backend\n".encode("latin-1"),
                     "{path}:3: file is not UTF-8 text"),
    "utf-16.yaml": ("region: cn-hangzhou\n".encode("utf-16"), "{path}:1: file is not UTF-8 text"),
    "nul-bytes.yaml": (b"region: cn-hangzhou\nignore: [a\x00b]\n",
                       "{path}:2: file contains NUL bytes (binary, not YAML)"),
    "control-character.yaml": (b"region: cn-hangzhou\nignore: [a\x1fb]\n",
                               "{path}:2: character U+001F is not allowed in YAML"),
    "deep-flow-nesting.yaml": (b"region: cn-hangzhou\nignore: " + b"[" * 100_000 + b"]" * 100_000 + b"\n",
                               "{path}:2: nesting deeper than 32 levels"),
}


def expected_line(template: str, path: Path) -> str:
    return f"Error: {template.replace('{path}', str(path))}\n"


def assert_names_file_and_line(message: str, path: Path) -> None:
    head = f"Error: {path}"
    assert message.startswith(head), message
    rest = message[len(head):]
    assert re.match(r"(/[^:]+)?:\d+: ", rest) or WHOLE_FILE.fullmatch(rest.strip(": \n")), message


@pytest.fixture
def corpus_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.delenv("RECONCILER_CORPUS_UNSET_SECRET", raising=False)
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    return {**{k: v for k, v in os.environ.items() if k != "RECONCILER_CORPUS_UNSET_SECRET"}, **ENV}


def test_the_corpus_is_large_and_every_entry_has_its_expected_line() -> None:
    entries = {p.name for p in CORPUS.iterdir() if p.name != "expected.yaml"}
    assert entries == set(EXPECTED)
    assert len(entries) + len(GENERATED) + 1 >= 50  # +1: the 50 MB file


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_validate_and_plan_print_the_expected_line(name: str, cli: Cli, corpus_env: dict[str, str],
                                                   tmp_path: Path) -> None:
    path = CORPUS / name
    for args in (["validate", str(path)], ["plan", str(path), "--snapshot", str(tmp_path / "unused.json")]):
        result = cli(*args)
        assert not has_traceback(result.out, result.err)
        assert (result.code, result.out, result.err) == (1, "", expected_line(EXPECTED[name], path))
        assert_names_file_and_line(result.err, path)


RunModule = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run_module(prewarmed: Prewarmed) -> RunModule:
    """`python -m reconciler ARGS` in a process of its own (forked from a prewarmed one)."""

    def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return prewarmed.run(args, env=env, cwd=ROOT)

    return run


@pytest.mark.parametrize("name", sorted(EXPECTED)[::5])
def test_the_real_command_prints_the_expected_line(name: str, corpus_env: dict[str, str], tmp_path: Path,
                                                  run_module: RunModule) -> None:
    path = CORPUS / name
    if sorted(EXPECTED).index(name) % 10 == 0:
        done = run_module("validate", str(path), env=corpus_env)
    else:
        done = run_module("plan", str(path), "--snapshot", str(tmp_path / "unused.json"), env=corpus_env)
    assert not has_traceback(done.stdout, done.stderr), done.stderr
    assert (done.returncode, done.stdout, done.stderr) == (1, "", expected_line(EXPECTED[name], path))


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_binary_and_non_utf8_files(name: str, tmp_path: Path, corpus_env: dict[str, str],
                                   run_module: RunModule) -> None:
    data, template = GENERATED[name]
    path = tmp_path / name
    path.write_bytes(data)
    done = run_module("validate", str(path), env=corpus_env)
    assert not has_traceback(done.stdout, done.stderr), done.stderr
    assert (done.returncode, done.stdout, done.stderr) == (1, "", expected_line(template, path))
    assert_names_file_and_line(done.stderr, path)


def test_a_50_mb_manifest_is_refused_before_it_is_read(tmp_path: Path, corpus_env: dict[str, str],
                                                      run_module: RunModule) -> None:
    path = tmp_path / "huge.yaml"
    line = b"# padding " + b"x" * 1013 + b"\n"
    with path.open("wb") as file:
        file.write(b"region: cn-hangzhou\n")
        for _ in range(HUGE_BYTES // len(line)):
            file.write(line)
    size = path.stat().st_size
    assert size >= 50_000_000
    done = run_module("plan", str(path), "--snapshot", str(tmp_path / "unused.json"), env=corpus_env)
    assert (done.returncode, done.stdout, done.stderr) == (
        1, "", f"Error: {path}: file is {size} bytes; manifests larger than {MAX_FILE_BYTES} bytes are refused\n")
    assert_names_file_and_line(done.stderr, path)
