"""The workflow tests' one server of prewarmed reconciler processes (per test process)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.workflow.harness import prewarmed_server


@pytest.fixture(scope="session")
def prewarmed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with prewarmed_server(tmp_path_factory.mktemp("prewarmed")) as socket_path:
        yield socket_path
