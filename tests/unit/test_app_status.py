"""The STATUS= line and the reload report (issue 17), without a daemon."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from addicted_jobs.app_status import StatusLine, reload_changes
from addicted_jobs.settings import Settings
from addicted_jobs.systemd import Notifier


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_status_line_says_running_ready_and_the_last_failure() -> None:
    clock = Clock()
    line = StatusLine(clock)
    assert line.render(3, 120) == "running 3, ready 120; no failures since start"
    line.job_finished("noop", "default", "succeeded", 0.1)
    line.job_finished("fetch_subtitles", "fetch-subtitles", "retry", 0.1)
    clock.now += 150
    assert (
        line.render(0, None) == "running 0, ready ?; last failure 2m ago: fetch_subtitles (retry)"
    )


def test_reload_report_names_applied_and_pending_keys_never_values() -> None:
    started = Settings.model_validate({"database": {"dsn": "postgresql://u:secret@h/db"}})
    new = Settings.model_validate(
        {
            "database": {"dsn": "postgresql://u:other@h/db"},
            "log": {"level": "debug"},
            "queues": {"default": {"concurrency": 3}},
        }
    )
    report = reload_changes(started, new, started)
    assert report == {
        "applied": ["log.level", "queues.default.concurrency"],
        "needs_restart": ["database.dsn"],
    }
    assert "secret" not in repr(report) and "other" not in repr(report)
    # A later reload that changes nothing live still lists what waits for a restart.
    assert reload_changes(new, new, started) == {"applied": [], "needs_restart": ["database.dsn"]}


def test_a_notify_socket_nobody_drains_never_blocks_the_daemon(tmp_path: Path) -> None:
    # The periodic STATUS= line must not freeze the event loop once the reader's queue is full
    # (10 datagrams by default): a blocking sendto did, in the S3-outage acceptance test.
    path = tmp_path / "notify.sock"
    reader = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    reader.bind(str(path))
    try:
        notifier = Notifier(str(path))
        started = time.monotonic()
        sent = [notifier.status(f"running {i}") for i in range(200)]
        assert time.monotonic() - started < 2.0
        assert sent[0] is True and sent[-1] is False  # the overflow is dropped, not waited for
        assert reader.recv(100) == b"STATUS=running 0"
    finally:
        reader.close()
