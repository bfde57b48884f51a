"""Defects an operator met with a running daemon (issue 17): a pipe closed early, `top` connected
at shutdown, a database outage seen by `ping`, a mistyped queue name, the demo's summary."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.plugins.daemon import DaemonProcess
from tests.support import wait_until

pytestmark = pytest.mark.acceptance
ROOT = Path(__file__).resolve().parents[2]
DEMO = [sys.executable, "-m", "addicted_jobs", "demo"]


def cli_into_closed_pipe(daemon: DaemonProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a command whose reader has already gone, as `addicted-jobs job 1 | head` ends up."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-m", "addicted_jobs", *args, "--socket", str(daemon.socket_path)],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=30,
            cwd=ROOT,
        )
    finally:
        os.close(write_end)


async def test_a_running_daemon_serves_operators_without_tracebacks(
    daemon_factory: Any, db_dsn: str, pg_admin_dsn: str
) -> None:
    daemon: DaemonProcess = daemon_factory("ops", {"database": {"dsn": db_dsn}})
    daemon.start().wait_ready()
    assert daemon.cli("enqueue", "noop").returncode == 0
    types = json.loads(daemon.cli("job-types", "--json").stdout)["job_types"]
    fetch = next(t for t in types if t["name"] == "fetch_subtitles")
    assert fetch["queue"] == "fetch-subtitles" and fetch["cap"] == 10
    assert fetch["unique_key"] == "{show_id}-{season}" and fetch["lock_key"] == "{show_id}-{season}"
    assert fetch["retries"] == 20 and fetch["on_exhausted"] == "delete"

    # top's panes with the real daemon's providers: throughput, upstream line, running jobs.
    await wait_until(lambda: _top_shows(daemon, "|  1/h"), message="top counts the noop")
    frame = daemon.cli("top", "--once").stdout
    assert "upstream  addic7ed closed, 0 req/min" in frame
    assert "credentials 0/0 with quota" in frame and "running (longest first)\n  none" in frame

    for args in (("job", "1"), ("queues",), ("recurring",), ("jobs",)):
        done = cli_into_closed_pipe(daemon, *args)
        assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, args
        assert done.returncode == 0, (args, done.stderr)

    # The database goes away: ping answers, says so, and exits non-zero.
    name = db_dsn.rsplit("/", 1)[1].split("?")[0]
    admin = await asyncpg.connect(pg_admin_dsn)
    await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        down = daemon.cli("ping")
        assert down.returncode == 1, down.stdout + down.stderr
        assert "database is unavailable" in down.stderr and "PostgreSQL" in down.stderr
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        await admin.close()
    await wait_until(
        lambda: _ping_ok(daemon), timeout=30, message="ping is ok once the database is back"
    )

    # `top` is connected while the daemon stops: no error in the journal.
    before = len(daemon.log_events())
    top = start_top(daemon)
    try:
        assert top.stdout is not None
        deadline = time.monotonic() + 30
        while "QUEUE" not in (top.stdout.readline() or ""):
            assert time.monotonic() < deadline, "top printed no frame"
        assert daemon.stop() == 0
    finally:
        top.kill()
        top.wait(10)
    stopping = daemon.log_events()[before:]
    errors = [e for e in stopping if e.get("level") in ("error", "critical")]
    assert errors == [], errors


def start_top(daemon: DaemonProcess) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "addicted_jobs", "top", "--socket", str(daemon.socket_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


async def _top_shows(daemon: DaemonProcess, text: str) -> bool:
    return text in daemon.cli("top", "--once").stdout


async def _ping_ok(daemon: DaemonProcess) -> bool:
    return daemon.cli("ping").returncode == 0


def test_a_mistyped_queue_stops_the_daemon_with_78_naming_the_key(
    daemon_factory: Any, db_dsn: str
) -> None:
    daemon: DaemonProcess = daemon_factory(
        "typo", {"database": {"dsn": db_dsn}, "queues": {"fetch-subtitle": {"concurrency": 4}}}
    )
    daemon.start()
    assert daemon.wait_exit(60) == 78
    assert "key 'queues.fetch-subtitle': no such queue" in daemon.log_text()


def test_the_demo_says_what_it_deletes_and_prints_no_none() -> None:
    # A short TMPDIR: the embedded server's Unix socket path must stay under 107 bytes.
    tmp_path = Path(tempfile.mkdtemp(prefix="ajd", dir="/tmp"))
    # Under root the embedded server runs as its own user, which must reach the demo's state; the
    # daemon never widens a directory it did not create (a 0700 one is refused with exit 78).
    tmp_path.chmod(0o711)
    try:
        _demo_in(tmp_path)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def _demo_in(tmp_path: Path) -> None:
    done = subprocess.run(
        [*DEMO, "--shows", "10", "--sample-shows", "0", "--sample-subtitles", "0"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "compression ratio  - (nothing stored)" in done.stdout
    assert "None" not in done.stdout
    assert "(--keep keeps them)" in done.stdout
    assert list(tmp_path.glob("addicted-jobs-demo-*")) == []
