"""Safety rails: YAML is only ever read with a safe loader, plain http goes only to loopback, and a file
the tool writes is whole or absent, even when the run is interrupted mid-write."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

from reconciler.output import write_atomically
from tests.support.paths import ROOT

from .runs import Cli

PACKAGE = ROOT / "reconciler"
UNSAFE_NAMES = {"unsafe_load", "unsafe_load_all", "full_load", "full_load_all", "UnsafeLoader", "FullLoader",
                "Loader", "CLoader", "CFullLoader", "CUnsafeLoader"}
YAML_LOADS = {"load", "load_all", "parse", "compose", "compose_all"}


def yaml_problems(source: str, name: str) -> list[str]:
    """Every use of PyYAML that could build arbitrary Python objects."""
    problems = []
    for node in ast.walk(ast.parse(source, name)):
        if isinstance(node, ast.Attribute) and node.attr in UNSAFE_NAMES and ast.unparse(node.value) == "yaml":
            problems.append(f"{name}:{node.lineno}: yaml.{node.attr}")
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("yaml"):
            problems += [f"{name}:{node.lineno}: from yaml import {a.name}" for a in node.names
                         if a.name in UNSAFE_NAMES | YAML_LOADS]
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in YAML_LOADS
                and ast.unparse(node.func.value) == "yaml"):
            loader = next((k.value for k in node.keywords if k.arg == "Loader"),
                          node.args[1] if len(node.args) > 1 else None)
            if loader is None or "SafeLoader" not in ast.unparse(loader) or any(
                    n in ast.unparse(loader) for n in ("Unsafe", "Full")):
                problems.append(f"{name}:{node.lineno}: {ast.unparse(node)}")
    return problems


def test_yaml_is_only_loaded_safely_in_the_package() -> None:
    sources = sorted(PACKAGE.rglob("*.py"))
    assert len(sources) > 20
    assert [p for f in sources for p in yaml_problems(f.read_text(encoding="utf-8"), str(f))] == []


@pytest.mark.parametrize("source", [
    "import yaml\nyaml.load(text)\n",
    "import yaml\nyaml.load(text, Loader=yaml.Loader)\n",
    "import yaml\nyaml.load(text, yaml.FullLoader)\n",
    "import yaml\nyaml.unsafe_load(text)\n",
    "from yaml import load\n",
])
def test_the_yaml_check_catches_unsafe_uses(source: str) -> None:
    assert yaml_problems(source, "example.py")


@pytest.mark.parametrize("endpoint", ["http://apigateway.cn-hangzhou.aliyuncs.com", "http://10.0.0.1:8080",
                                      "http://127.0.0.1.nip.io", "http://localhost.example.com", "http://2130706433"])
def test_plain_http_is_refused_unless_to_loopback(endpoint: str, cli: Cli, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text("region: cn-hangzhou\n", encoding="utf-8")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "id")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "secret")
    result = cli("plan", str(manifest), "--endpoint", endpoint)
    assert (result.code, result.out) == (1, "")
    assert result.err == (f"Error: endpoint {endpoint!r} uses plain http to a host that is not loopback; use https "
                          "(http is allowed only for 127.0.0.0/8, ::1 and localhost)\n")


def test_an_interrupted_write_leaves_the_old_file_whole_and_no_temp_file(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "cn-hangzhou.yaml"
    target.write_text("region: cn-hangzhou\n# the previous export\n", encoding="utf-8")

    def interrupted(fd: int) -> None:
        os.ftruncate(fd, os.fstat(fd).st_size // 2)  # half written, then Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr("reconciler.output.os.fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomically(target, "region: cn-hangzhou\nsignatures: []\n" * 1000)
    monkeypatch.undo()
    assert target.read_text(encoding="utf-8") == "region: cn-hangzhou\n# the previous export\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cn-hangzhou.yaml"]


def test_an_interrupted_write_of_a_new_file_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(src: object, dst: object) -> None:
        raise KeyboardInterrupt  # after the temp file is complete, before the rename

    monkeypatch.setattr("reconciler.output.os.replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomically(tmp_path / "plan.json", "{}\n")
    assert list(tmp_path.iterdir()) == []
