"""Promises about the distribution: one version everywhere, complete metadata, and a lock file of the
runtime dependencies that covers what pyproject.toml asks for, refreshed by the command the README gives.
(`.ci/check-dist` builds the wheel, checks it with twine and runs it installed from the lock.)"""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import metadata, version

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from reconciler import __version__
from tests.support.paths import ROOT

DISTRIBUTION = "reconciler-aliyun-apigateway"
LOCK = ROOT / "examples" / "requirements" / "reconciler.txt"
REFRESH = ("uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes --no-annotate "
           "-o examples/requirements/reconciler.txt")


def project() -> dict[str, object]:
    table: dict[str, object] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return table


def locked() -> dict[str, tuple[str, list[str]]]:
    """name -> (pinned version, hashes) of every requirement in the lock."""
    pins: dict[str, tuple[str, list[str]]] = {}
    for entry in re.split(r"\n(?=\S)", LOCK.read_text()):
        if entry.startswith("#"):
            continue
        match = re.match(r"([A-Za-z0-9._-]+)==(\S+)", entry)
        assert match is not None, entry
        pins[canonicalize_name(match[1])] = (match[2], re.findall(r"--hash=sha256:([0-9a-f]{64})", entry))
    return pins


def test_the_installed_metadata_has_the_one_version_of_the_code() -> None:
    assert version(DISTRIBUTION) == __version__
    assert project()["dynamic"] == ["version"] and "version" not in project()


def test_metadata_is_complete() -> None:
    meta = metadata(DISTRIBUTION)
    assert meta["License-Expression"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n")
    assert meta["Requires-Python"] == ">=3.11"
    pythons = [c.rsplit(" :: ", 1)[1] for c in meta.get_all("Classifier") or []
               if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)]
    assert pythons == ["3.11", "3.12", "3.13"]
    urls = dict(url.split(", ", 1) for url in meta.get_all("Project-URL") or [])
    assert urls["Source"] == "https://github.com/reconciler/reconciler"
    assert set(urls) >= {"Homepage", "Source", "Issues", "Changelog"}
    assert meta["Description-Content-Type"] == "text/markdown"


def test_the_lock_pins_every_runtime_dependency_within_its_range_by_hash() -> None:
    pins = locked()
    for spec in project()["dependencies"]:  # type: ignore[attr-defined]
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in the lock: refresh it with `{REFRESH}`"
        assert requirement.specifier.contains(pins[name][0]), f"{spec}: the lock pins {pins[name][0]}; refresh it"
    assert all(hashes for _, hashes in pins.values())


def test_the_lock_was_made_by_the_refresh_command_the_readme_gives() -> None:
    assert f"#    {REFRESH}\n" in LOCK.read_text()
    assert REFRESH in (ROOT / "README.md").read_text()


def test_the_readme_installs_this_distribution_and_the_changelog_has_this_version() -> None:
    readme = (ROOT / "README.md").read_text()
    for command in (f"pipx install {DISTRIBUTION}", f"uv tool install {DISTRIBUTION}",
                    f"pip install {DISTRIBUTION}=={__version__}"):
        assert command in readme
    assert re.search(rf"^## \[{re.escape(__version__)}\] - ", (ROOT / "CHANGELOG.md").read_text(), re.M)
