"""A daemon started on an empty jobs table keeps claiming by primary key once the table has grown
(found by bench/soak.py, issue 20): a prepared claim planned generically while the table was
tiny chose a sequential scan for its `id = ANY(...)` lock step and kept it, since nothing
invalidates a cached plan while autovacuum has not analysed the table yet. The soak then claimed
~200 jobs/s, each claim comparing every row with every id. The engine's connections plan each
statement for the table as it is (db.ENGINE_POOL_OPTIONS)."""

from __future__ import annotations

import asyncpg

from addicted_jobs.db import ENGINE_POOL_OPTIONS, _init_connection
from addicted_jobs.jobs import store
from addicted_jobs.jobs.store import NewJob

_SEQ_SCANS = "SELECT seq_scan FROM pg_stat_user_tables WHERE relid = 'jobs.jobs'::regclass"


async def _seq_scans_after(conn: asyncpg.Connection, other: asyncpg.Pool) -> int:
    await conn.execute("SELECT pg_stat_force_next_flush()")
    await conn.execute("SELECT 1")  # the flush happens when this backend next goes idle
    await other.execute("SELECT pg_stat_clear_snapshot()")
    scans: int = await other.fetchval(_SEQ_SCANS)
    return scans


async def test_claims_stay_on_the_primary_key_after_the_table_grows(
    db_dsn: str, db_pool: asyncpg.Pool
) -> None:
    conn = await asyncpg.connect(db_dsn, server_settings=ENGINE_POOL_OPTIONS["server_settings"])
    await _init_connection(conn)
    try:
        # Many claims on a nearly empty table: what the engine does in its first seconds.
        for _ in range(12):
            await store.enqueue(db_pool, [NewJob("noop", "default", {}, 1)])
            assert len(await store.claim(conn, "default", 5)) == 1
        # The table grows past what a sequential scan could serve: finished rows and a backlog.
        await db_pool.execute(
            """INSERT INTO jobs.jobs (name, queue, args, state, max_attempts, finished_at)
               SELECT 'noop', 'default', '{}', 'succeeded', 1, now()
               FROM generate_series(1, 30000)"""
        )
        await store.enqueue(db_pool, [NewJob("noop", "default", {}, 1)] * 500)
        before = await _seq_scans_after(conn, db_pool)

        claimed = await store.claim(conn, "default", 200)

        assert len(claimed) == 200
        assert await _seq_scans_after(conn, db_pool) == before, "the claim scanned jobs.jobs"
    finally:
        await conn.close()
