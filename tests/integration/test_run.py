"""`adstream run`: Kafka up, traffic with visible progress, clean stop."""

import signal
import subprocess
import time
from pathlib import Path

import pytest

from adstream.services.kafka_client import broker_reachable
from tests.cli import ADSTREAM
from tests.conftest import instance_env, instance_settings

pytestmark = pytest.mark.integration


def test_run_shows_progress_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    settings = instance_settings(tmp_path / "run")
    process = subprocess.Popen(
        [ADSTREAM, "run", "--rate", "5000"],
        env=instance_env(settings),
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:  # the command ended before showing progress
            break
        lines.append(line)
        if " clicks, " in line:  # a live progress line
            break
    if not lines or " clicks, " not in lines[-1]:
        process.kill()
        pytest.fail(f"no progress line: {lines[-5:]}")

    process.send_signal(signal.SIGINT)
    _, rest = process.communicate(timeout=180)
    output = "".join(lines) + rest

    assert process.returncode == 0, output
    assert "Kafka ready" in output
    assert "done (interrupt)" in output
    assert "Kafka stopped" in output
    assert not broker_reachable(settings, timeout=1.0)
    assert not (settings.data_dir / "kafka" / "kafka.pid").exists()
