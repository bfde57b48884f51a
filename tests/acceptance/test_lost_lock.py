"""Fencing between two daemons (issue 14, part 3): daemon A's instance-lock connection goes
silent behind a black-hole proxy while the server drops its session; A stops claiming, daemon B
takes the database over and re-runs A's running job after recovery, and A's late finish of that
job does not overwrite B's run."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from addicted_jobs.db import INSTANCE_LOCK, LOCK_NAMESPACE
from addicted_jobs.jobs import store
from addicted_jobs.jobs.store import NewJob
from tests.plugins.daemon import DaemonProcess
from tests.plugins.halfopen_proxy import HalfOpenProxy
from tests.support import wait_until

pytestmark = pytest.mark.acceptance
ROOT = Path(__file__).resolve().parents[2]
SIDE_JOBS = {"engine": {"job_modules": ["tests.support.side_jobs"]}}
NAP_S = 12.0


async def _row(pool: asyncpg.Pool, job_id: int) -> dict[str, Any]:
    row = await pool.fetchrow(
        "SELECT state, claims, last_error FROM jobs.jobs WHERE id = $1", job_id
    )
    assert row is not None
    return dict(row)


async def test_a_daemon_that_lost_its_lock_stops_and_its_late_finish_loses(
    daemon_factory: Any, db_dsn: str, db_pool: asyncpg.Pool, proxy: HalfOpenProxy
) -> None:
    target = urlsplit(db_dsn)
    through_proxy = db_dsn.replace(f"{target.hostname}:{target.port}", f"127.0.0.1:{proxy.port}", 1)
    env = {"PYTHONPATH": str(ROOT)}
    a: DaemonProcess = daemon_factory(
        "a", {"database": {"dsn": through_proxy}, **SIDE_JOBS}, {**env, "AJ_TEST_NAP_FAILS": "1"}
    )
    b: DaemonProcess = daemon_factory("b", {"database": {"dsn": db_dsn}, **SIDE_JOBS}, env)
    # The daemons' blocking helpers run in threads: the proxy lives on this event loop.
    await asyncio.to_thread(lambda: a.start().wait_ready())
    [nap] = await store.enqueue(db_pool, [NewJob("nap", "default", {"s": NAP_S}, 1)])
    await wait_until(
        lambda: _is(_row(db_pool, nap.id), state="running", claims=1), message="A runs the nap"
    )
    # A's instance-lock session: silent on A's side, ended on the server's; A cannot reconnect.
    lock = await db_pool.fetchrow(
        """SELECT a.pid, a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
           WHERE l.locktype = 'advisory' AND l.classid = $1 AND l.objid = $2 AND l.granted
             AND a.datname = current_database()""",
        LOCK_NAMESPACE,
        INSTANCE_LOCK,
    )
    assert lock is not None
    assert proxy.blackhole_port(lock["client_port"]), "the lock's session is A's, via the proxy"
    proxy.refuse_new()
    await db_pool.execute("SELECT pg_terminate_backend($1, 5000)", lock["pid"])
    await asyncio.to_thread(
        a.wait_for_log,
        "instance lock connection did not answer; claiming paused while it is replaced",
    )
    # A stops claiming: a job enqueued now waits for B.
    [later] = await store.enqueue(db_pool, [NewJob("noop", "default", {}, 1)])
    await asyncio.to_thread(lambda: b.start().wait_ready())
    recovered = await asyncio.to_thread(
        b.wait_for_log, "recovered jobs left running by a previous daemon"
    )
    assert recovered["requeued"] == 1
    await wait_until(
        lambda: _is(_row(db_pool, nap.id), state="running", claims=2), message="B runs the nap"
    )
    # A's run ends first (it started earlier) and fails; its outcome must not land on B's run.
    finished = await asyncio.to_thread(a.wait_for_log, "job finished", NAP_S + 30, id=nap.id)
    assert finished["outcome"] == "failed"
    await wait_until(
        lambda: _is(_row(db_pool, nap.id), state="succeeded"),
        timeout=NAP_S + 30,
        message="B's run written",
    )
    assert (await _row(db_pool, nap.id))["last_error"] is None  # not A's failure
    assert (await _row(db_pool, later.id))["state"] == "succeeded"
    assert not [e for e in a.log_events() if e.get("id") == later.id]  # run by B, not A
    assert await asyncio.to_thread(b.stop) == 0
    a.kill()


async def _is(row: Any, **expected: Any) -> bool:
    got = await row
    return all(got[k] == v for k, v in expected.items())
