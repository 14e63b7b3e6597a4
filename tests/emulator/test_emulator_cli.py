"""`reconciler emulator` as a real process: the first stdout line announces the URL; SIGTERM stops it."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from alibabacloud_cloudapi20160714 import models
from alibabacloud_cloudapi20160714.client import Client
from alibabacloud_tea_openapi.models import Config

from tests.support.paths import EXAMPLES

EXAMPLE = EXAMPLES / "emulator-state.yaml"


def test_emulator_command_announces_its_port_serves_and_stops_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler.emulator.cli", "--state", str(EXAMPLE), "--port", "0",
         "--access-key-secret", "cliSecret123"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline().rstrip("\n")
        prefix = "Emulator listening on http://127.0.0.1:"
        assert first.startswith(prefix), first
        port = int(first.removeprefix(prefix))
        assert port > 0
        client = Client(Config(access_key_id="testid", access_key_secret="cliSecret123",
                               endpoint=f"127.0.0.1:{port}", protocol="http"))
        body = client.describe_signatures(models.DescribeSignaturesRequest()).body
        assert body.total_count == 4
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "cliSecret123" not in first + out + err


def test_emulator_command_reports_a_bad_state_file_in_one_line(tmp_path: Path) -> None:
    state = tmp_path / "state.yaml"
    state.write_text("region: cn-hangzhou\nsignatures: [{name: x}]\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "reconciler.emulator.cli", "--state", str(state)],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"Error: {state}:2: field 'signatures.0.name': must be 4-50 characters: letters, Chinese characters, "
        "digits or '_', starting with a letter or a Chinese character"
    ]
