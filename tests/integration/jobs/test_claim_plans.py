"""A daemon started on an empty jobs table keeps claiming by primary key once the table has grown
(found by bench/soak.py, issue 20): a prepared claim planned generically while the table was
tiny chose a sequential scan for its `id = ANY(...)` lock step and kept it, since nothing
invalidates a cached plan while autovacuum has not analysed the table yet. The soak then claimed
~200 jobs/s, each claim comparing every row with every id. The engine's connections plan each
statement for the table as it is (db.ENGINE_POOL_OPTIONS). The dispatchers' own claim pool keeps
generic plans with sequential scans priced out (db.CLAIM_POOL_OPTIONS, issue 20): the same
growth must not turn its claims or due-time reads into scans either."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from addicted_jobs.db import CLAIM_POOL_OPTIONS, ENGINE_POOL_OPTIONS, POOL_OPTIONS, _init_connection
from addicted_jobs.jobs import store
from addicted_jobs.jobs.states import JobState
from addicted_jobs.jobs.store import NewJob, Outcome

_SEQ_SCANS = "SELECT seq_scan FROM pg_stat_user_tables WHERE relid = 'jobs.jobs'::regclass"


async def _seq_scans_after(conn: asyncpg.Connection, other: asyncpg.Pool) -> int:
    await conn.execute("SELECT pg_stat_force_next_flush()")
    await conn.execute("SELECT 1")  # the flush happens when this backend next goes idle
    await other.execute("SELECT pg_stat_clear_snapshot()")
    scans: int = await other.fetchval(_SEQ_SCANS)
    return scans


@pytest.mark.parametrize(
    ("options", "bounded"),
    [(ENGINE_POOL_OPTIONS, False), (CLAIM_POOL_OPTIONS, False), (CLAIM_POOL_OPTIONS, True)],
    ids=["engine-pool", "claim-pool", "claim-pool-bounded"],
)
async def test_claims_stay_on_the_primary_key_after_the_table_grows(
    db_dsn: str, db_pool: asyncpg.Pool, options: dict[str, Any], bounded: bool
) -> None:
    conn = await asyncpg.connect(db_dsn, server_settings=options["server_settings"])
    await _init_connection(conn)
    # The dispatcher's claim and due-time read between notifications: from each type's bound.
    lows: dict[str, store.Low | None] | None = {"noop": None} if bounded else None
    try:
        # Many claims on a nearly empty table: what the engine does in its first seconds.
        for _ in range(12):
            await store.enqueue(db_pool, [NewJob("noop", "default", {}, 1)])
            claimed, _ = await store.claim_from(conn, "default", 5, lows=lows)
            assert len(claimed) == 1
            assert await store.next_due(conn, "default", lows=lows) is None
        # The table grows past what a sequential scan could serve: finished rows and a backlog.
        await db_pool.execute(
            """INSERT INTO jobs.jobs (name, queue, args, state, max_attempts, finished_at)
               SELECT 'noop', 'default', '{}', 'succeeded', 1, now()
               FROM generate_series(1, 30000)"""
        )
        await store.enqueue(db_pool, [NewJob("noop", "default", {}, 1)] * 500)
        before = await _seq_scans_after(conn, db_pool)

        claimed, _ = await store.claim_from(conn, "default", 200, lows=lows)
        due = await store.next_due(conn, "default", lows=lows)

        assert len(claimed) == 200
        assert due is not None  # 300 of the backlog are left
        assert await _seq_scans_after(conn, db_pool) == before, "the claim scanned jobs.jobs"
    finally:
        await conn.close()


async def test_finish_stays_on_indexes_after_the_table_grows(
    db_dsn: str, db_pool: asyncpg.Pool
) -> None:
    """jobs.finish keeps generic plans whichever pool calls it (migrations/052): called on the
    engine pool's connections, as the flusher does, first on a nearly empty table, then on a big
    one, its statements (the outcomes, the continuations released or deleted with their parent,
    the busy ids) must still find rows by index."""
    conn = await asyncpg.connect(db_dsn, server_settings=ENGINE_POOL_OPTIONS["server_settings"])
    await _init_connection(conn)

    async def claimed(count: int) -> list[Outcome]:
        jobs = await store.claim(db_pool, "default", count)
        assert len(jobs) == count
        return [Outcome(j.id, j.claims, "succeeded") for j in jobs]

    async def parent_with_child() -> int:
        [parent] = await store.enqueue(db_pool, [NewJob("noop", "default", {}, 1)])
        await store.enqueue(db_pool, [NewJob("noop", "default", {}, 1, after=parent.id)])
        return parent.id

    def ending(outcomes: list[Outcome], state: JobState) -> list[Outcome]:
        return [o._replace(state=state) for o in outcomes]

    try:
        for state in ["succeeded", "deleted"] * 6:  # the session's plans, made on a tiny table
            await db_pool.execute("DELETE FROM jobs.jobs WHERE state IN ('ready', 'awaiting')")
            await parent_with_child()
            assert await store.finish(conn, ending(await claimed(1), state)) == []
        await db_pool.execute(
            """INSERT INTO jobs.jobs (name, queue, args, state, max_attempts, finished_at)
               SELECT 'noop', 'default', '{}', 'succeeded', 1, now()
               FROM generate_series(1, 30000)"""
        )
        await db_pool.execute("DELETE FROM jobs.jobs WHERE state IN ('ready', 'awaiting')")
        parents = []
        for _ in range(2):  # claimed in this order: a parent, then 100 others, twice
            parents.append(await parent_with_child())
            await store.enqueue(db_pool, [NewJob("noop", "default", {}, 1)] * 100)
        first, second = await claimed(101), await claimed(101)
        # This session's own scans only: the other connections report theirs with a delay.
        scans = "SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relid = 'jobs.jobs'::regclass"
        async with conn.transaction():
            before = await conn.fetchval(scans)
            assert await store.finish(conn, first) == []  # the first parent releases its child
            assert await store.finish(conn, ending(second, "deleted")) == []  # the second's goes
            assert await store.finish(conn, [Outcome(10**12, 1, "succeeded")]) == []  # gone
            assert await conn.fetchval(scans) == before, "the finish scanned jobs.jobs"
        children = await db_pool.fetch(
            "SELECT parent_id, state FROM jobs.jobs WHERE parent_id = ANY($1::bigint[])", parents
        )
        assert {r["parent_id"]: r["state"] for r in children} == {
            parents[0]: "ready",
            parents[1]: "deleted",
        }
    finally:
        await conn.close()


async def test_deleting_continuations_stays_on_indexes_after_the_table_grows(
    db_dsn: str, db_pool: asyncpg.Pool
) -> None:
    """The operators' delete and bulk actions call jobs.delete_continuations on the client pool,
    whose plans PostgreSQL may make generic after five runs: made on a tiny table, they must
    still find a chain of continuations by index once the table is big (migrations/052)."""
    conn = await asyncpg.connect(db_dsn, server_settings=POOL_OPTIONS["server_settings"])
    await _init_connection(conn)
    deleted = "SELECT jobs.delete_continuations($1::bigint[])"

    async def chain() -> int:
        [parent] = await store.enqueue(db_pool, [NewJob("noop", "default", {}, 1)])
        [child] = await store.enqueue(db_pool, [NewJob("noop", "default", {}, 1, after=parent.id)])
        await store.enqueue(db_pool, [NewJob("noop", "default", {}, 1, after=child.id)])
        return parent.id

    try:
        for _ in range(8):
            assert await conn.fetchval(deleted, [await chain()]) == 2
        await db_pool.execute(
            """INSERT INTO jobs.jobs (name, queue, args, state, max_attempts, finished_at)
               SELECT 'noop', 'default', '{}', 'succeeded', 1, now()
               FROM generate_series(1, 30000)"""
        )
        parent = await chain()
        scans = "SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relid = 'jobs.jobs'::regclass"
        async with conn.transaction():
            before = await conn.fetchval(scans)
            assert await conn.fetchval(deleted, [parent]) == 2
            assert await conn.fetchval(scans) == before, "deleting continuations scanned jobs.jobs"
    finally:
        await conn.close()
