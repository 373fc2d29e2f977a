"""The `sluice` command as a user runs it: the demo on a machine with nothing configured."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def test_the_demo_runs_on_embedded_infrastructure_scrapes_every_page_and_exits_0() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "REDIS_URL")}
    # Not pytest's tmp_path: the embedded PostgreSQL runs as its own user, which must be able to enter the folder.
    with tempfile.TemporaryDirectory(prefix="sluice-demo-test-") as data_dir:
        completed = subprocess.run(
            [sys.executable, "-m", "sluice.cli", "demo", "--pages", "300", "--data-dir", data_dir],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        service_log = (Path(data_dir) / "services.log").read_text(errors="replace")

    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:] + service_log[-3000:]
    summary = completed.stdout.split("summary", 1)[1]
    assert "status     completed" in summary
    assert "ok         300" in summary
    assert "failed     0" in summary
