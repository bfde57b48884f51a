"""The daemon as a subprocess: embedded start-up, sd_notify, signals, a second instance, reload."""

from __future__ import annotations

import signal
from typing import Any

import asyncpg

from tests.plugins.daemon import DaemonProcess, postgres_processes

pytestmark = __import__("pytest").mark.acceptance


def test_embedded_defaults_reach_ready_and_sigterm_stops_everything(daemon_factory: Any) -> None:
    daemon: DaemonProcess = daemon_factory("embedded")
    daemon.start().wait_ready(timeout=90)
    ready = daemon.wait_for_log("ready")
    assert ready["state_dir"] == str(daemon.state_dir)
    assert ready["socket"] == str(daemon.socket_path)
    data_dir = daemon.state_dir / "postgres" / "data"
    assert postgres_processes(data_dir), "the embedded server should be running"

    assert daemon.stop() == 0
    assert "STOPPING=1" in daemon.notifications
    assert postgres_processes(data_dir) == [], "no stray postgres process after SIGTERM"
    daemon.wait_for_log("embedded database stopped")


def test_watchdog_pings_come_from_the_event_loop(daemon_factory: Any, db_dsn: str) -> None:
    daemon: DaemonProcess = daemon_factory("watchdog", {"database": {"dsn": db_dsn}})
    daemon.start(watchdog_usec=200_000).wait_ready()
    daemon.wait_for_notify("WATCHDOG=1", timeout=5)
    daemon.wait_for_notify("WATCHDOG=1", timeout=5)  # and again: it is periodic
    assert daemon.stop() == 0


def test_a_second_daemon_on_the_same_database_refuses_to_start(
    daemon_factory: Any, db_dsn: str
) -> None:
    first: DaemonProcess = daemon_factory("first", {"database": {"dsn": db_dsn}})
    first.start().wait_ready()
    second: DaemonProcess = daemon_factory("second", {"database": {"dsn": db_dsn}})
    second.start()
    assert second.wait_exit(60) == 1
    refusal = second.wait_for_log("start-up failed")
    assert "another addicted-jobs daemon already runs on this database" in refusal["error"]
    assert "READY=1" not in second.notifications
    assert first.proc is not None and first.proc.poll() is None, "the first daemon keeps running"
    assert first.stop() == 0


def test_sighup_reloads_the_log_level_and_keeps_the_old_config_when_the_new_is_bad(
    daemon_factory: Any, db_dsn: str
) -> None:
    daemon: DaemonProcess = daemon_factory("reload", {"database": {"dsn": db_dsn}})
    daemon.start().wait_ready()
    daemon.config["log"]["level"] = "debug"
    daemon.write_config()
    daemon.send(signal.SIGHUP)
    daemon.wait_for_log("configuration reloaded", level="info")

    daemon.config_path.write_text("[log]\nlevel = 'shouting'\n")
    daemon.send(signal.SIGHUP)
    refused = daemon.wait_for_log(
        "reload refused: the new configuration is invalid; keeping the old one"
    )
    assert "log.level" in refused["error"] and "shouting" in refused["error"]
    assert daemon.proc is not None and daemon.proc.poll() is None
    assert daemon.stop() == 0


async def test_a_second_signal_skips_the_grace_period_and_the_job_is_put_back(
    daemon_factory: Any, db_dsn: str
) -> None:
    daemon: DaemonProcess = daemon_factory(
        "hurry", {"database": {"dsn": db_dsn}, "shutdown": {"grace_seconds": 120}}
    )
    daemon.start().wait_ready()
    conn = await asyncpg.connect(db_dsn)
    try:
        job_id = await conn.fetchval(
            """INSERT INTO jobs.jobs (name, queue, args, state, max_attempts)
               VALUES ('noop', 'default', '{"sleep_ms": 600000}', 'ready', 1) RETURNING id"""
        )
        # 'running' in the table only means claimed; a quick job queued behind it finishing means
        # the long one has started (a queue starts what it claimed in order).
        quick_id = await conn.fetchval(
            """INSERT INTO jobs.jobs (name, queue, args, state, max_attempts)
               VALUES ('noop', 'default', '{}', 'ready', 1) RETURNING id"""
        )
        daemon.wait_for_log("job finished", id=quick_id)
        daemon.send(signal.SIGTERM)
        daemon.wait_for_log("waiting for running jobs")
        daemon.send(signal.SIGINT)
        assert daemon.wait_exit(30) == 0
        row = await conn.fetchrow("SELECT state, attempt FROM jobs.jobs WHERE id = $1", job_id)
        assert (row["state"], row["attempt"]) == ("ready", 0)
        finish = daemon.wait_for_log("job finished", id=job_id)
        assert finish["outcome"] == "interrupted"
    finally:
        await conn.close()
