"""The shipped unit file passes `systemd-analyze verify` and keeps the settings operators rely on."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "addicted-jobs.service"


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (.ci/run installs it)")
    # verify checks that ExecStart exists: point it at this checkout's entry point.
    entry = Path(sys.executable).with_name("addicted-jobs")
    unit = tmp_path / "addicted-jobs.service"
    unit.write_text(UNIT.read_text().replace("/usr/bin/addicted-jobs", str(entry)))
    done = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_the_unit_keeps_notify_watchdog_restart_policy_and_hardening() -> None:
    text = UNIT.read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "RestartPreventExitStatus=78",
        "RuntimeDirectory=addicted-jobs",
        "StateDirectory=addicted-jobs",
        "ConfigurationDirectory=addicted-jobs",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "SystemCallFilter=@system-service",
        "CapabilityBoundingSet=\n",
    ):
        assert line in text, line
    # The stop timeout must leave room for the grace period (30 s) and the clean-up after it.
    stop = int(text.split("TimeoutStopSec=")[1].split()[0])
    assert stop > 30
