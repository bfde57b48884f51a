"""The daemon's Prometheus metrics as deployed (issue 17): the opt-in loopback listener and the
node-exporter textfile, scraped over real HTTP while jobs run; a public address is refused (78)."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest

from tests.plugins.daemon import DaemonProcess
from tests.support import wait_until

pytestmark = pytest.mark.acceptance


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_metrics_are_served_on_loopback_and_written_to_the_textfile(
    daemon_factory: Any, db_dsn: str
) -> None:
    port = free_port()
    daemon: DaemonProcess = daemon_factory(
        "metrics",
        {
            "database": {"dsn": db_dsn},
            "metrics": {"listen": f"127.0.0.1:{port}", "textfile": "", "refresh_s": 1},
        },
    )
    textfile = daemon.workdir / "daemon.prom"
    daemon.config["metrics"]["textfile"] = str(textfile)
    daemon.start().wait_ready()
    assert daemon.cli("enqueue", "noop", "--count", "5").returncode == 0
    url = f"http://127.0.0.1:{port}/metrics"

    async def scraped() -> str:
        async with httpx.AsyncClient() as client:
            text = (await client.get(url)).text
        done = 'addicted_jobs_finished_total{name="noop",outcome="succeeded"} 5.0' in text
        counted = 'addicted_jobs_jobs{queue="default",state="succeeded"} 5.0' in text
        return text if done and counted else ""

    text = await wait_until(scraped, timeout=30, message="five noops in a scrape")
    assert 'addicted_jobs_upstream_circuit_state{state="closed",upstream="addic7ed"} 1.0' in text
    assert "addicted_jobs_database_up 1.0" in text
    assert 'addicted_jobs_job_duration_seconds_count{name="noop"} 5.0' in text
    assert "addicted_jobs_queue_oldest_ready_seconds" in text
    await wait_until(
        lambda: textfile.exists() and "addicted_jobs_finished_total" in textfile.read_text(),
        message="the textfile is written",
    )
    assert daemon.stop() == 0
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(url, timeout=2)


def test_a_public_metrics_address_is_refused_with_78(daemon_factory: Any, db_dsn: str) -> None:
    daemon: DaemonProcess = daemon_factory(
        "public", {"database": {"dsn": db_dsn}, "metrics": {"listen": "0.0.0.0:9464"}}
    )
    daemon.start()
    assert daemon.wait_exit(60) == 78
    assert (
        "loopback address only" in daemon.log_text() + (daemon.workdir / "daemon.log").read_text()
    )


def thread_count(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("Threads:"))


async def test_idle_metrics_connections_cost_the_daemon_no_thread(
    daemon_factory: Any, db_dsn: str
) -> None:
    """Any local user reaches the loopback port: with prometheus_client's server, 1,500 idle
    connections were 1,500 threads in the daemon (+40 MiB), held for as long as they stayed."""
    port = free_port()
    daemon: DaemonProcess = daemon_factory(
        "idle-metrics",
        {"database": {"dsn": db_dsn}, "metrics": {"listen": f"127.0.0.1:{port}"}},
    )
    daemon.start().wait_ready()
    assert daemon.proc is not None
    before = thread_count(daemon.proc.pid)
    idle = []
    for _ in range(500):
        conn = socket.create_connection(("127.0.0.1", port))
        conn.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # never finished
        idle.append(conn)
    try:
        async with httpx.AsyncClient() as client:
            answer = await client.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert answer.status_code == 200 and "addicted_jobs_database_up" in answer.text
        assert answer.headers["content-type"].startswith("text/plain")
        assert thread_count(daemon.proc.pid) <= before + 2
        assert daemon.cli("ping").returncode == 0
        async with httpx.AsyncClient() as client:
            assert (await client.post(f"http://127.0.0.1:{port}/metrics")).status_code == 405
        # The silent ones are closed by the daemon after its read timeout.
        idle[0].settimeout(15)
        assert idle[0].recv(1) == b""
    finally:
        for conn in idle:
            conn.close()
    assert daemon.stop() == 0
