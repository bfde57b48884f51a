"""systemd polish (issue 17), with the daemon as a subprocess and a recording NOTIFY_SOCKET: the
live STATUS= line, job failures at error and retries at warning, and `reload` saying what it
applied, what needs a restart, and why it refused a configuration."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.plugins.daemon import DaemonProcess

pytestmark = pytest.mark.acceptance


def test_status_line_log_levels_and_reload_report(daemon_factory: Any, db_dsn: str) -> None:
    daemon: DaemonProcess = daemon_factory("sd", {"database": {"dsn": db_dsn}})
    daemon.start().wait_ready()
    daemon.wait_for_notify("STATUS=running 0, ready 0; no failures since start", timeout=20)

    assert daemon.cli("enqueue", "noop", "fail=true").returncode == 0
    failed = daemon.wait_for_log("job finished", outcome="failed")
    assert failed["level"] == "error"
    daemon.wait_for_notify("STATUS=running 0, ready 0; last failure", timeout=20)
    assert any(n.endswith("noop (failed)") for n in daemon.notifications if n.startswith("STATUS="))

    # A live change and one that needs a restart, reported by name; then a refused file.
    daemon.config["log"]["level"] = "debug"
    daemon.config.setdefault("database", {})["pool_max"] = 12
    daemon.write_config()
    done = daemon.cli("reload", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["applied"] == ["log.level"] and report["needs_restart"] == ["database.pool_max"]
    daemon.config["log"]["level"] = "info"
    daemon.write_config()
    again = json.loads(daemon.cli("reload", "--json").stdout)
    assert again["needs_restart"] == ["database.pool_max"]  # still pending until a restart
    daemon.config["recurring"] = {"nightly": {"cron": "0 3 * * *", "job": "no_such_job"}}
    daemon.write_config()
    refused = daemon.cli("reload")
    assert refused.returncode == 1
    assert "the new configuration is invalid; keeping the old one" in refused.stderr
    assert "no job named 'no_such_job'" in refused.stderr
    assert daemon.stop() == 0
