"""The issue 14 starvation scenario end to end, with the daemon as a subprocess at the issue's
`pool_max = 10`: 15 real socket clients enqueue `after=` a job whose row another session holds
locked, while 20 due jobs run and an unrelated enqueue must still be answered."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from addicted_jobs.control.client import ControlClient, DaemonError
from addicted_jobs.jobs import store
from addicted_jobs.jobs.store import NewJob
from tests.plugins.daemon import DaemonProcess
from tests.support import wait_until

pytestmark = pytest.mark.acceptance
ROOT = Path(__file__).resolve().parents[2]


async def _count(pool: asyncpg.Pool, sql: str) -> int:
    return int(await pool.fetchval(sql))


async def test_clients_waiting_on_a_locked_parent_starve_neither_jobs_nor_other_clients(
    daemon_factory: Any, db_dsn: str, db_pool: asyncpg.Pool
) -> None:
    await db_pool.execute("CREATE TABLE side_effects (job_id bigint NOT NULL, n int NOT NULL)")
    config = {
        "database": {"dsn": db_dsn, "pool_max": 10},
        "engine": {"job_modules": ["tests.support.side_jobs"]},
    }
    daemon: DaemonProcess = daemon_factory("starve", config, env={"PYTHONPATH": str(ROOT)})
    daemon.start().wait_ready()
    [parent] = await store.enqueue(db_pool, [NewJob("noop", "default", {}, 1, delay=3600)])
    # Due a moment after the clients start waiting: they run while the pool is contended.
    await store.enqueue(
        db_pool, [NewJob("record", "default", {"n": i}, 1, delay=1.0) for i in range(20)]
    )
    operator = await asyncpg.connect(db_dsn)
    clients = [ControlClient(daemon.socket_path, timeout=60) for _ in range(16)]
    try:
        tx = operator.transaction()
        await tx.start()
        await operator.execute("SELECT 1 FROM jobs.jobs WHERE id = $1 FOR UPDATE", parent.id)
        waiters = [
            asyncio.create_task(c.call("enqueue", {"name": "noop", "after": parent.id}))
            for c in clients[:15]
        ]
        await wait_until(
            lambda: _count(
                db_pool,
                "SELECT count(*) >= 10 FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND datname = current_database()",
            ),
            message="10 client enqueues waiting on the row lock (the whole pool)",
        )
        # An unrelated client is answered, and the 20 due jobs all run, while the lock is held.
        unrelated = await clients[15].call("enqueue", {"name": "noop"})
        assert unrelated["created"] and unrelated["state"] == "ready"
        await wait_until(
            lambda: _count(
                db_pool,
                "SELECT count(*) = 20 FROM jobs.jobs WHERE name = 'record' AND state = 'succeeded'",
            ),
            timeout=30,
            message="the 20 due jobs ran",
        )
        # Each waiting client was told why, and nothing was enqueued for it.
        outcomes = await asyncio.gather(*waiters, return_exceptions=True)
        assert all(isinstance(o, DaemonError) and o.code == "unavailable" for o in outcomes), (
            outcomes
        )
        assert all(f"job {parent.id} is locked by another session" in str(o) for o in outcomes)
        assert (
            await operator.fetchval(
                "SELECT count(*) FROM jobs.jobs WHERE parent_id = $1", parent.id
            )
            == 0
        )
        # An operator action on the locked row is told the same, not left hanging.
        with pytest.raises(DaemonError, match="locked by another session") as refused:
            await clients[15].call("retry", {"id": parent.id})
        assert refused.value.code == "unavailable"
        assert operator.is_in_transaction()  # the lock was held throughout
        await tx.rollback()
    finally:
        for client in clients:
            await client.close()
        await operator.close()
    assert daemon.stop() == 0
