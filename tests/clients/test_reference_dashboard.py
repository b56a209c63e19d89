"""The reference dashboard example, run as a developer would: a subprocess against a live engine.

The first run registers the agency; the second finds its key in the state file and moves the
registration to its new receiver and secret; the third has lost the state file, so it rotates
the key with the PSK. Each run must verify the webhook of its simulated inbound message.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.constants import PSK
from tests.support.live import LiveEngine
from workflow_engine_client import RegistrationClient

EXAMPLE = Path(__file__).resolve().parents[2] / "clients" / "python" / "examples" / "reference_dashboard.py"


def run_example(
    live: LiveEngine, workdir: Path, *extra: str, psk: str | None = PSK
) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "WORKFLOW_ENGINE_INTERNAL_PSK"}
    env["ENGINE_GRPC_TARGET"] = live.target
    if psk is not None:
        env["WORKFLOW_ENGINE_INTERNAL_PSK"] = psk
    return subprocess.run(
        [
            sys.executable,
            str(EXAMPLE),
            "--once",
            "--port",
            "0",
            "--agency-id",
            "ref-agency",
            "--timeout",
            "20",
            *extra,
        ],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def verified_count(result: subprocess.CompletedProcess[str]) -> int:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    last = result.stdout.strip().splitlines()[-1]
    match = re.fullmatch(r"verified (\d+) webhooks \(0 rejected\)", last)
    assert match, result.stdout
    return int(match.group(1))


def test_reference_dashboard_once(start_engine: Callable[..., LiveEngine], tmp_path: Path) -> None:
    live = start_engine("sqlite")
    state_file = tmp_path / "state.json"

    first = run_example(live, tmp_path, "--state-file", str(state_file))
    assert verified_count(first) >= 1
    out = first.stdout
    assert "registered agency ref-agency" in out
    assert re.search(
        r"webhook verified\s+message\.received\s+evt_\S+.*text='Hi! Is this open today\?'", out
    ), out
    assert re.search(r"webhook verified\s+session\.status .*-> WORKING", out), out
    assert "REJECTED" not in out
    stored = json.loads(state_file.read_text())["agencies"]["ref-agency"]["apiKey"]
    assert stored.startswith("wfe_")
    assert state_file.stat().st_mode & 0o077 == 0  # the API key is readable by its owner only

    second = run_example(live, tmp_path, "--state-file", str(state_file))
    assert verified_count(second) >= 1
    assert "already registered: kept its API key" in second.stdout
    assert json.loads(state_file.read_text())["agencies"]["ref-agency"]["apiKey"] == stored

    state_file.unlink()
    third = run_example(live, tmp_path, "--state-file", str(state_file))
    assert verified_count(third) >= 1
    assert "rotated its API key" in third.stdout
    assert json.loads(state_file.read_text())["agencies"]["ref-agency"]["apiKey"] != stored

    # Each run pointed the registration at its own receiver, and deleted its session.
    with RegistrationClient(live.target, PSK) as registry:
        config = registry.get_config("ref-agency")
    assert config.dashboard_url.startswith("http://127.0.0.1:") and config.dashboard_url.endswith("/webhooks")
    assert "webhook verified  message.received" in third.stdout


def test_reference_dashboard_reads_the_psk_from_the_env_file(
    start_engine: Callable[..., LiveEngine], tmp_path: Path
) -> None:
    live = start_engine("sqlite")
    missing = run_example(live, tmp_path, psk=None)
    assert missing.returncode == 2 and "WORKFLOW_ENGINE_INTERNAL_PSK is not set" in missing.stdout
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "dev.env").write_text(f"# dev credentials\nWORKFLOW_ENGINE_INTERNAL_PSK={PSK}\n")
    result = run_example(live, tmp_path, psk=None)
    assert verified_count(result) >= 1
    assert (tmp_path / "var" / "reference_dashboard.json").is_file()  # the default state file


@pytest.mark.parametrize("flag", ["--help"])
def test_reference_dashboard_help(flag: str) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), flag], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0 and "--once" in result.stdout and "--agency-id" in result.stdout
