"""The distribution's import name does not clash with python-daemon's (issue 16, item 8)."""

from __future__ import annotations

import subprocess
import sys


def test_python_daemon_and_addicted_jobs_share_one_environment() -> None:
    # A fresh interpreter, so nothing pytest put on sys.path can hide a clash.
    probe = (
        "import daemon, daemon.pidfile, addicted_jobs.cli;"
        "print(daemon.DaemonContext.__module__, addicted_jobs.cli.main.__module__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd="/", check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["daemon.daemon", "addicted_jobs.cli"]
