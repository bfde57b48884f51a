"""PostgreSQL failover under two cluster nodes (issue 19): their DSN names two hosts with
target_session_attrs=read-write; mid-drain the first host (the primary) turns read-only and drops
every session, and both nodes carry on through the second (the new primary), keeping their
membership, with no job lost or finished twice.

Simulated: the two hosts are two FailoverProxy instances in front of this machine's one
PostgreSQL server (one data set, so no replication lag and no lost commits), and the demotion is
the proxy cutting its sessions and making new ones read-only, which the client sees as a standby.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from addicted_jobs.jobs import store
from addicted_jobs.jobs.store import NewJob
from tests.support import wait_until
from tests.support.failover_proxy import FailoverProxy

pytestmark = pytest.mark.acceptance
ROOT = Path(__file__).resolve().parents[2]
JOBS = 3000


async def test_nodes_follow_the_primary_to_another_host(
    daemon_factory: Any, db_dsn: str, db_pool: asyncpg.Pool
) -> None:
    parts = urlsplit(db_dsn)
    old, new = FailoverProxy(parts.hostname or "", parts.port or 5432), None
    new = FailoverProxy(parts.hostname or "", parts.port or 5432)
    await old.start()
    await new.start()
    user = parts.netloc.rpartition("@")[0]
    dsn = (
        f"postgresql://{user}@127.0.0.1:{old.port},127.0.0.1:{new.port}{parts.path}"
        "?target_session_attrs=read-write&sslmode=disable"
    )
    await db_pool.execute("CREATE TABLE side_effects (job_id bigint NOT NULL, n int NOT NULL)")
    await store.enqueue(
        db_pool, [NewJob("record", "default", {"n": i}, max_attempts=11) for i in range(JOBS)]
    )
    config = {
        "database": {"dsn": dsn},
        "engine": {"job_modules": ["tests.support.side_jobs"], "retry_delay_scale": 0.01},
        "cluster": {"enabled": True, "node_timeout_s": 6.0, "heartbeat_s": 1.0},
    }
    env = {"PYTHONPATH": str(ROOT)}
    nodes = [daemon_factory(name, config, env=env) for name in ("a", "b")]
    try:
        for node in nodes:
            node.start()
        for node in nodes:
            await asyncio.to_thread(node.wait_for_log, "ready", 90)
        assert new.accepted == 0  # the first host is the primary: everything went there

        async def done() -> int:
            return int(
                await db_pool.fetchval("SELECT count(*) FROM jobs.jobs WHERE state = 'succeeded'")
            )

        await wait_until(lambda: _at_least(done, JOBS // 4), timeout=60, message="a quarter")
        before = await done()
        demoted = time.monotonic()
        old.demote()
        ids = {r["id"] for r in await db_pool.fetch("SELECT id FROM jobs.nodes")}
        await wait_until(lambda: _at_least(done, before + 100), timeout=60, message="resumed")
        # Shown with -s: the failover time the README quotes.
        print(f"failover: 100 more jobs done {time.monotonic() - demoted:.1f} s after demotion")

        await wait_until(
            lambda: _at_least(done, JOBS),
            timeout=120,
            interval=0.2,
            message="every job succeeded after the failover",
        )
        assert new.accepted > 0  # the nodes reconnected to the new primary
        # Exactly once, except attempts that failed with the old primary's connections (retried).
        twice = await db_pool.fetchval(
            """SELECT count(*) FROM (SELECT s.job_id FROM side_effects s
                   JOIN jobs.jobs j ON j.id = s.job_id
                   WHERE j.attempt = 1 GROUP BY s.job_id HAVING count(*) > 1) d"""
        )
        assert twice == 0
        missing = await db_pool.fetchval(
            "SELECT count(*) FROM jobs.jobs j WHERE NOT EXISTS "
            "(SELECT 1 FROM side_effects s WHERE s.job_id = j.id)"
        )
        assert missing == 0
        # Both nodes kept (or took back) their membership: two live nodes heartbeat through it.
        listing = json.loads((await asyncio.to_thread(nodes[0].cli, "nodes", "--json")).stdout)
        live = [n for n in listing["nodes"] if n["dead_at"] is None]
        assert len(live) == 2 and all(n["heartbeat_age_s"] < 3 for n in live)
        assert {n["id"] for n in live} <= ids | {n["id"] for n in live}
        for node in nodes:  # in a thread: the proxies run on this event loop
            assert await asyncio.to_thread(node.stop) == 0
    finally:
        await old.close()
        await new.close()


async def _at_least(probe: Any, n: int) -> bool:
    return bool(await probe() >= n)
