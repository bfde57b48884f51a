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

from addicted_jobs.db import CLAIM_POOL_OPTIONS, ENGINE_POOL_OPTIONS, _init_connection
from addicted_jobs.jobs import store
from addicted_jobs.jobs.store import NewJob

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
