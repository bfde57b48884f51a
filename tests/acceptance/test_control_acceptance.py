"""The real daemon as a subprocess on the per-test database, driven by the command line over its
socket, stopped with SIGTERM; plus the start-up config error (78) for a bad cron."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAEMON = (
    [str(ROOT / ".venv/bin/addicted-jobs")]
    if (ROOT / ".venv/bin/addicted-jobs").exists()
    else [sys.executable, "-m", "addicted_jobs"]
)
pytestmark = pytest.mark.acceptance


def write_config(directory: Path, dsn: str, extra: str = "") -> Path:
    config = directory / "config.toml"
    config.write_text(
        f"""
[database]
dsn = "{dsn}"
[state]
dir = "{directory / "state"}"
[control]
socket = "{directory / "c.sock"}"
[log]
format = "json"
[shutdown]
grace_seconds = 5
[recurring.tick]
job = "noop"
cron = "0 3 * * *"
{extra}
"""
    )
    return config


def cli(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "addicted_jobs", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )


@pytest.fixture
def daemon(sock_dir: Path, db_dsn: str) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    config = write_config(sock_dir, db_dsn)
    log = (sock_dir / "daemon.log").open("w")
    proc = subprocess.Popen(
        [*DAEMON, "run", "--config", str(config)], stderr=log, stdout=log, text=True, cwd=ROOT
    )
    deadline = time.monotonic() + 30
    while cli("ping", config=config).returncode != 0:
        assert proc.poll() is None, (sock_dir / "daemon.log").read_text()
        assert time.monotonic() < deadline, "the daemon did not open its socket in 30 s"
        time.sleep(0.1)
    yield proc, config
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)
    log.close()


def test_the_command_line_drives_the_daemon_and_sigterm_stops_it(
    daemon: tuple[subprocess.Popen[str], Path], sock_dir: Path
) -> None:
    proc, config = daemon
    one = cli("enqueue", "noop", "sleep_ms=1", "--json", config=config)
    assert one.returncode == 0, one.stderr
    job_id = json.loads(one.stdout)["id"]
    many = cli("enqueue", "noop", "--count", "25", "--delay", "600", config=config)
    assert many.returncode == 0 and "25 new" in many.stdout

    listed = cli("jobs", "--state", "scheduled", "--json", config=config)
    assert len(json.loads(listed.stdout)["jobs"]) == 25
    shown = cli("job", str(job_id), "--json", config=config)
    assert json.loads(shown.stdout)["args"]["sleep_ms"] == 1
    queues = cli("queues", config=config)
    assert queues.returncode == 0 and queues.stdout.startswith("QUEUE")
    recurring = json.loads(cli("recurring", "--json", config=config).stdout)["recurring"]
    assert "tick" in [r["name"] for r in recurring]  # beside the default schedule
    assert cli("trigger", "tick", config=config).returncode == 0
    schema = json.loads(cli("migrations", "--json", config=config).stdout)["schema"]
    assert all(m["state"] == "applied" for m in schema)
    assert cli("top", "--once", config=config).stdout.startswith("addicted-jobs")

    bad = cli("enqueue", "noop", "sleep_ms=later", config=config)
    assert bad.returncode == 1 and "invalid_args" in bad.stderr and "sleep_ms" in bad.stderr
    assert cli("enqueue", "noop", "oops", config=config).returncode == 2
    assert cli("job", "999999", config=config).returncode == 1

    # SIGHUP applies cron and concurrency changes; a broken file is refused and the old one kept.
    text = config.read_text().replace('cron = "0 3 * * *"', 'cron = "30 4 * * *"')
    config.write_text(text + "[queues.default]\nconcurrency = 3\n")
    proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while _cron_of(cli, config, "tick") != "30 4 * * *":
        assert time.monotonic() < deadline, "SIGHUP did not apply the new cron"
        time.sleep(0.05)
    queues = {
        q["name"]: q for q in json.loads(cli("queues", "--json", config=config).stdout)["queues"]
    }
    assert queues["default"]["concurrency"] == 3
    config.write_text(text.replace('cron = "30 4 * * *"', 'cron = "not a cron"'))
    refused = cli("reload", config=config)
    assert refused.returncode == 1 and "recurring.tick.cron" in refused.stderr
    assert _cron_of(cli, config, "tick") == "30 4 * * *"

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    assert not (sock_dir / "c.sock").exists()
    gone = cli("ping", config=config)
    assert gone.returncode == 3 and "unreachable" in gone.stderr
    log = (sock_dir / "daemon.log").read_text()
    audit = [json.loads(line) for line in log.splitlines() if '"control command"' in line]
    assert audit and all(e["peer_uid"] == os.getuid() for e in audit)


def test_a_bad_cron_stops_the_daemon_with_78_naming_the_job(sock_dir: Path, db_dsn: str) -> None:
    config = write_config(sock_dir, db_dsn, '[recurring.broken]\njob = "noop"\ncron = "99 * * * *"')
    run = subprocess.run(
        [*DAEMON, "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert run.returncode == 78
    assert "recurring.broken.cron" in run.stderr
    bad_toml = sock_dir / "bad.toml"
    bad_toml.write_text("[control\n")
    assert cli("ping", config=bad_toml).returncode == 78


def _cron_of(cli: Any, config: Path, name: str) -> str:
    entries = json.loads(cli("recurring", "--json", config=config).stdout)["recurring"]
    return str(next(e["cron"] for e in entries if e["name"] == name))
