"""What the daemon's modules load before any option asks for them."""

from __future__ import annotations

import subprocess
import sys


def test_the_daemon_loads_the_metrics_library_only_when_metrics_are_configured() -> None:
    # prometheus_client is ~20 ms of a start-up of ~0.6 s, and metrics are off by default.
    script = (
        "import sys\n"
        "import addicted_jobs.app, addicted_jobs.app_observe\n"
        "print('prometheus_client' in sys.modules)\n"
        "from addicted_jobs.metrics import Metrics\n"
        "print('prometheus_client' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["False", "True"]
