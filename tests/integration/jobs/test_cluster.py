"""Cluster nodes on one database (issue 19), in one process on the real PostgreSQL: recovery of
dead nodes only, the lease and expulsion, caps under racing claims, keyed locks across nodes and
their release when the holder is declared dead, the shared instance lock, the schema check."""

from __future__ import annotations

import asyncio
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from addicted_jobs.app_cluster import SchemaNewerThanCode, check_schema_known
from addicted_jobs.db import AnotherInstanceRunning, Database, _init_connection
from addicted_jobs.jobs import store
from addicted_jobs.jobs.cluster import Cluster, ClusterConfig, process_space
from addicted_jobs.jobs.engine import Engine, EngineConfig
from addicted_jobs.jobs.recurring import RecurringScheduler, build_plan
from addicted_jobs.jobs.spec import default_registry
from addicted_jobs.jobs.store import NewJob, Outcome
from addicted_jobs.settings import RecurringSettings
from tests.support import wait_until


def _connector(dsn: str) -> Any:
    async def connect(application_name: str | None = None) -> asyncpg.Connection:
        settings = {"application_name": application_name} if application_name else {}
        conn = await asyncpg.connect(dsn, server_settings=settings)
        await _init_connection(conn)
        return conn

    return connect


async def _node(pool: asyncpg.Pool, dsn: str, timeout: float = 3.0) -> Cluster:
    cluster = Cluster(pool, _connector(dsn), ClusterConfig(timeout, timeout / 3), "test")
    await cluster.join()
    return cluster


async def _silence(pool: asyncpg.Pool, node_id: int, seconds: float = 3600) -> None:
    """As if the node had not heartbeaten for `seconds` (paused, partitioned, killed)."""
    await pool.execute(
        "UPDATE jobs.nodes SET heartbeat = now() - make_interval(secs => $2) WHERE id = $1",
        node_id,
        seconds,
    )


async def _running_on(pool: asyncpg.Pool, cluster: Cluster, count: int) -> list[store.Claimed]:
    await store.enqueue(pool, [NewJob("noop", "default", {}, 3) for _ in range(count)])
    async with pool.acquire() as conn:
        return await cluster.claim(conn, "default", count, [], {}, {})


async def test_only_the_jobs_of_dead_nodes_are_recovered(
    db_pool: asyncpg.Pool, db_dsn: str
) -> None:
    live, dead = await _node(db_pool, db_dsn), await _node(db_pool, db_dsn)
    mine = await _running_on(db_pool, live, 3)
    theirs = await _running_on(db_pool, dead, 2)
    await _silence(db_pool, dead.node_id or 0)

    reaped = await live.reap()  # what a start-up with clustering on runs

    assert [d["id"] for d in reaped.dead] == [dead.node_id]
    assert sorted(reaped.requeued) == sorted(j.id for j in theirs)
    rows = {r["id"]: r for r in await db_pool.fetch("SELECT * FROM jobs.jobs")}
    for job in theirs:  # back to ready, the attempt refunded, the interruption counted
        assert rows[job.id]["state"] == "ready"
        assert (rows[job.id]["attempt"], rows[job.id]["interruptions"]) == (0, 1)
    for job in mine:
        assert rows[job.id]["state"] == "running" and rows[job.id]["node_id"] == live.node_id
    # The dead node's late finish is refused by the fencing token; the job runs again elsewhere.
    late = theirs[0]
    await store.finish(db_pool, [Outcome(late.id, late.claims, "succeeded")])
    assert await db_pool.fetchval("SELECT state FROM jobs.jobs WHERE id = $1", late.id) == "ready"
    await live.locks.close()
    await dead.locks.close()


async def test_a_lost_claim_is_settled_on_the_claiming_node_only(
    db_pool: asyncpg.Pool, db_dsn: str
) -> None:
    """A node whose claim got no answer puts back the running jobs it does not know: its own
    only. Before the fix it put back every running job of the queue, so another node's jobs ran
    twice, their attempt refunded and no interruption counted (the double run after a database
    restart under three nodes)."""
    here, there = await _node(db_pool, db_dsn), await _node(db_pool, db_dsn)
    known = await _running_on(db_pool, here, 2)
    lost = await _running_on(db_pool, here, 1)  # committed, its answer lost
    theirs = await _running_on(db_pool, there, 3)

    requeued = await store.requeue_unknown(db_pool, "default", [j.id for j in known], here.node_id)

    assert requeued == [lost[0].id]
    states = dict(await db_pool.fetch("SELECT id, state FROM jobs.jobs"))
    assert [states[j.id] for j in theirs] == ["running"] * 3
    assert [states[j.id] for j in known] == ["running"] * 2
    # With clustering off (node NULL) the rows of cluster nodes are not touched either.
    assert await store.requeue_unknown(db_pool, "default", []) == []
    await here.locks.close()
    await there.locks.close()


async def test_a_restarted_node_buries_its_predecessor_at_once(
    db_pool: asyncpg.Pool, db_dsn: str
) -> None:
    """The daemon restarted on the same host (a crash, kill -9, systemd's restart) finds the
    row of its previous process, whose pid is gone, and its jobs go back to ready at its first
    reaper pass instead of after node_timeout_s. Rows it cannot check are left to the timeout."""
    proc = await asyncio.create_subprocess_exec("true")  # a pid that has just exited
    await proc.wait()
    dead_pid = proc.pid
    space = process_space()
    assert space is not None, "this test needs /proc"
    host = socket.gethostname()
    before = await store.register_node(db_pool, host, dead_pid, "test", space)
    alive = await store.register_node(db_pool, host, os.getppid(), "test", space)
    elsewhere = await store.register_node(db_pool, host, dead_pid, "test", "other-boot pid:[1]")
    jobs: dict[int, list[int]] = {}
    for node in (before, alive, elsewhere):
        await store.enqueue(db_pool, [NewJob("noop", "default", {}, 3)])
        claimed = await store.claim(db_pool, "default", 1, [], {}, node)
        jobs[node] = [j.id for j in claimed]

    restarted = await _node(db_pool, db_dsn, timeout=3600)  # the timeout never comes into play
    reaped = await restarted.reap()

    assert reaped.requeued == jobs[before]
    live = {r["id"] for r in await db_pool.fetch("SELECT id FROM jobs.nodes WHERE dead_at IS NULL")}
    assert live == {alive, elsewhere, restarted.node_id}
    running = await db_pool.fetch("SELECT id FROM jobs.jobs WHERE state = 'running' ORDER BY id")
    assert [r["id"] for r in running] == sorted(jobs[alive] + jobs[elsewhere])
    await restarted.locks.close()


async def test_a_node_past_its_lease_stops_claiming_and_an_expelled_one_rejoins(
    db_pool: asyncpg.Pool, db_dsn: str
) -> None:
    node = await _node(db_pool, db_dsn, timeout=0.6)
    other = await _node(db_pool, db_dsn, timeout=0.6)
    assert node.may_claim()
    await wait_until(lambda: not node.may_claim(), timeout=2, message="lease ran out")
    await node.beat()  # a heartbeat that goes through renews it
    assert node.may_claim()

    abandoned: list[bool] = []
    node.on_expelled = lambda: abandoned.append(True)
    old = node.node_id
    await _silence(db_pool, old or 0)
    await other.beat()  # declares it dead
    await node.beat()  # finds out: abandons its jobs, joins as a new node
    assert abandoned == [True]
    assert node.node_id != old and node.may_claim()
    assert await db_pool.fetchval("SELECT dead_at IS NOT NULL FROM jobs.nodes WHERE id = $1", old)
    await node.locks.close()
    await other.locks.close()


async def test_racing_claims_never_exceed_a_cap_across_nodes(
    db_pool: asyncpg.Pool, db_dsn: str
) -> None:
    cap = 3
    nodes = [await _node(db_pool, db_dsn) for _ in range(4)]
    await store.enqueue(db_pool, [NewJob("capped", "default", {}, 3) for _ in range(50)])

    async def claim(node: Cluster) -> int:
        # Each node believes it has the whole cap free (its own count is 0).
        async with db_pool.acquire() as conn:
            got = await node.claim(
                conn, "default", 10, ["capped"], {"capped": cap}, {"capped": cap}
            )
        return len(got)

    for _ in range(3):
        counts = await asyncio.gather(*(claim(n) for n in nodes))
        assert sum(counts) <= cap
    running = await db_pool.fetchval(
        "SELECT count(*) FROM jobs.jobs WHERE name = 'capped' AND state = 'running'"
    )
    assert running == cap
    for node in nodes:
        await node.locks.close()


async def test_keyed_locks_hold_across_nodes_and_end_with_a_dead_holder(
    db_pool: asyncpg.Pool, db_dsn: str
) -> None:
    holder, other = await _node(db_pool, db_dsn), await _node(db_pool, db_dsn)
    async with holder.locks.try_lock("show:1") as got:
        assert got
        async with other.locks.try_lock("show:1") as second:
            assert not second  # try mode: skipped at once
        async with other.locks.try_lock("show:2") as unrelated:
            assert unrelated
        waiter = asyncio.create_task(_hold(other, "show:1"))
        await asyncio.sleep(0.2)
        assert not waiter.done()  # wait mode: waits for the holder
    await asyncio.wait_for(waiter, 5)

    # A holder declared dead while its session is up (paused) loses its locks to the reaper.
    stuck = asyncio.Event()

    async def hold_forever() -> None:
        async with holder.locks.lock("show:3"):
            stuck.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(hold_forever())
    await stuck.wait()
    await _silence(db_pool, holder.node_id or 0)
    await other.beat()
    await asyncio.wait_for(_hold(other, "show:3"), 5)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await holder.locks.close()
    await other.locks.close()


async def _hold(node: Cluster, key: str) -> None:
    async with node.locks.lock(key):
        pass


async def test_a_cluster_and_a_lone_daemon_never_share_a_database(
    db_dsn: str, tmp_path: Path
) -> None:
    first, second, lone = (Database(db_dsn, tmp_path) for _ in range(3))
    first.instance_lock_shared = second.instance_lock_shared = True
    try:
        for db in (first, second, lone):
            await db.start()
        await first.take_instance_lock()
        await second.take_instance_lock()  # nodes share the database
        with pytest.raises(AnotherInstanceRunning, match="another addicted-jobs daemon"):
            await lone.take_instance_lock()
        await first.close()
        await second.close()
        await lone.take_instance_lock()
        third = Database(db_dsn, tmp_path)
        third.instance_lock_shared = True
        await third.start()
        with pytest.raises(AnotherInstanceRunning, match="without \\[cluster\\] enabled"):
            await third.take_instance_lock()
        await third.close()
    finally:
        await lone.close()


async def test_code_older_than_the_schema_refuses_to_start(db_pool: asyncpg.Pool) -> None:
    async with db_pool.acquire() as conn:
        await check_schema_known(conn)  # this code's own schema passes
        await conn.execute(
            "INSERT INTO schema_migrations (version, name, checksum, duration_ms)"
            " VALUES (999, 'from_the_future', 'x', 1)"
        )
        with pytest.raises(SchemaNewerThanCode, match="999_from_the_future"):
            await check_schema_known(conn)


async def test_the_nodes_listing_shows_each_nodes_running_jobs(
    db_pool: asyncpg.Pool, db_dsn: str
) -> None:
    a, b = await _node(db_pool, db_dsn), await _node(db_pool, db_dsn)
    jobs = await _running_on(db_pool, a, 2)
    listed = {n["id"]: n for n in await store.list_nodes(db_pool)}
    assert listed[a.node_id or 0]["running_count"] == 2
    assert {j["id"] for j in listed[a.node_id or 0]["running"]} == {j.id for j in jobs}
    assert listed[b.node_id or 0]["running"] == []
    await a.locks.close()
    await b.locks.close()


async def test_each_recurring_slot_fires_once_across_nodes(db_dsn: str) -> None:
    slot = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
    plan = build_plan({"tick": RecurringSettings(cron="0 2 * * *", job="noop")}, default_registry())
    pools = [await asyncpg.create_pool(db_dsn, init=_init_connection) for _ in range(3)]
    try:
        schedulers = [
            RecurringScheduler(
                Engine(pool, default_registry(), EngineConfig(concurrency={})),
                plan,
                3600,
                clock=lambda: slot,
            )
            for pool in pools
        ]
        results = await asyncio.gather(*(s.fire("tick", slot) for s in schedulers * 3))
        assert len([r for r in results if r is not None]) == 1
        assert await pools[0].fetchval("SELECT count(*) FROM jobs.jobs WHERE name = 'noop'") == 1
    finally:
        for pool in pools:
            await pool.close()


async def test_a_job_whose_lock_session_ends_is_interrupted(
    db_pool: asyncpg.Pool, db_dsn: str
) -> None:
    """A database restart or failover ends the session holding the node's keyed locks: the jobs
    holding them are interrupted at once, so no key is held twice when another node takes it."""
    node, other = await _node(db_pool, db_dsn), await _node(db_pool, db_dsn)
    holding = asyncio.Event()

    async def job() -> None:
        async with node.locks.lock("show:9"):
            holding.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(job())
    await holding.wait()
    name = store.lock_application_name(node.node_id or 0)
    await db_pool.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", name
    )
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    await asyncio.wait_for(_hold(other, "show:9"), 5)
    async with node.locks.try_lock("show:10") as got:  # the node takes locks again
        assert got
    await node.locks.close()
    await other.locks.close()


async def test_a_queue_paused_through_one_node_pauses_on_the_others(
    make_engine: Any, db_pool: asyncpg.Pool, db_dsn: str
) -> None:
    first = await make_engine(default_registry())
    second = await make_engine(default_registry())
    node = await _node(db_pool, db_dsn)
    node.on_beat = second.sync_paused
    await first.set_paused("default", True)
    await node.beat()
    assert second.dispatchers["default"].paused
    await first.set_paused("default", False)
    await node.beat()
    assert not second.dispatchers["default"].paused
    await node.locks.close()
