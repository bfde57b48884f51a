"""Starting and stopping never hurt a running daemon, and only the daemon's user reaches its
embedded database: a second `run` beside a live one, a broken log pipe then SIGTERM, a read-only
state directory, another local user against the embedded server, and ancestors left unchanged.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import stat
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from addicted_jobs.embedded_pg import _bin_dir
from tests.plugins.daemon import DaemonProcess, postgres_processes

pytestmark = pytest.mark.acceptance


def _errors(daemon: DaemonProcess) -> list[dict[str, Any]]:
    return [e for e in daemon.log_events() if e.get("level") in ("error", "critical")]


def test_a_second_run_on_the_same_state_dir_leaves_the_first_database_running(
    daemon_factory: Any,
) -> None:
    first: DaemonProcess = daemon_factory("first").start().wait_ready()
    second: DaemonProcess = daemon_factory("second")
    second.config["state"]["dir"] = str(first.state_dir)  # same state, its own socket
    code = second.start().wait_exit(90)
    assert code == 1, second.log_text()[-2000:]
    assert any("another addicted-jobs daemon" in e.get("error", "") for e in _errors(second))
    assert postgres_processes(first.state_dir / "postgres" / "data"), "A's database still runs"
    enqueued = first.cli("enqueue", "noop", "--json")
    assert enqueued.returncode == 0, enqueued.stderr
    ping = json.loads(first.cli("ping", "--json").stdout)
    assert ping["database"] == "ok"
    assert first.stop() == 0
    assert postgres_processes(first.state_dir / "postgres" / "data") == []


def test_a_broken_log_pipe_blocks_neither_requests_nor_sigterm(
    daemon_factory: Any, db_dsn: str
) -> None:
    daemon: DaemonProcess = daemon_factory("pipe", {"database": {"dsn": db_dsn}})
    daemon.start(output=subprocess.PIPE).wait_ready()
    assert daemon.proc is not None and daemon.proc.stdout is not None
    daemon.proc.stdout.close()  # the reader of our log (`make run | tee`) is gone
    for _ in range(3):  # each request logs an audit line into the broken pipe
        done = daemon.cli("enqueue", "noop", "--json")
        assert done.returncode == 0, done.stderr
    assert json.loads(daemon.cli("ping", "--json").stdout)["state"] == "running"
    daemon.send(signal.SIGTERM)
    assert daemon.wait_exit(30) == 0


def _read_only_mount(directory: Path) -> list[str]:
    # Root ignores permission bits: only a read-only mount refuses it (a private mount namespace).
    return [
        "unshare",
        "--mount",
        "sh",
        "-c",
        f'mount --bind "{directory}" "{directory}" && '
        f'mount -o remount,ro,bind "{directory}" "{directory}" && exec "$0" "$@"',
    ]


def test_a_read_only_state_directory_is_one_line_and_exit_78(
    daemon_factory: Any, db_dsn: str
) -> None:
    daemon: DaemonProcess = daemon_factory("readonly", {"database": {"dsn": db_dsn}})
    daemon.state_dir.mkdir()
    if os.geteuid() == 0:
        if shutil.which("unshare") is None:
            pytest.skip("root needs unshare(1) to make a read-only directory")
        daemon.prefix = _read_only_mount(daemon.state_dir)
    else:
        daemon.state_dir.chmod(0o555)
    code = daemon.start().wait_exit(60)
    log = daemon.log_text()
    if os.geteuid() == 0 and "mount" in log and "permission denied" in log.lower():
        pytest.skip(f"this container forbids private mounts: {log[-300:]}")
    assert code == 78, log[-2000:]
    assert "Traceback" not in log
    [error] = _errors(daemon)
    assert str(daemon.state_dir) in error["error"] and "state directory" in error["error"]


# ---- the embedded database's access ----------------------------------------------------------


@pytest.fixture
def other_user() -> Iterator[str]:
    """A throwaway local user (created with useradd, so root only)."""
    if os.geteuid() != 0:
        pytest.skip("creating another local user needs root (useradd)")
    name = f"ajt{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "--no-create-home", name], check=True, capture_output=True)
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True)


def test_another_local_user_cannot_reach_the_embedded_database(
    daemon_factory: Any, other_user: str
) -> None:
    daemon: DaemonProcess = daemon_factory("private").start().wait_ready()
    data = daemon.state_dir / "postgres" / "data"
    socket_dir = Path((data / "postmaster.pid").read_text().splitlines()[4])
    assert stat.S_IMODE(socket_dir.stat().st_mode) == 0o700
    user = pwd.getpwnam(other_user)
    attempt = subprocess.run(
        [str(_bin_dir() / "psql"), "-h", str(socket_dir), "-U", "postgres", "-c", "SELECT 1"],
        capture_output=True,
        text=True,
        user=user.pw_uid,
        group=user.pw_gid,
        extra_groups=[],
        cwd="/",
        timeout=30,
    )
    assert attempt.returncode != 0, attempt.stdout
    assert "Permission denied" in attempt.stderr or "No such file" in attempt.stderr
    assert daemon.stop() == 0


def test_the_daemon_never_changes_a_directory_it_did_not_create(
    daemon_factory: Any, reachable_tmp: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root runs the embedded server as another user (the chmod path)")
    private = reachable_tmp / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    daemon: DaemonProcess = daemon_factory("ancestors")
    daemon.config["state"]["dir"] = str(private / "state")
    code = daemon.start().wait_exit(60)
    assert code == 78, daemon.log_text()[-2000:]
    assert stat.S_IMODE(private.stat().st_mode) == 0o700, "an ancestor was chmod'ed"
    [error] = _errors(daemon)
    assert str(private) in error["error"] and "search permission" in error["error"]
