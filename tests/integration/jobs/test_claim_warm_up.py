"""The claim pool's warm-up (store.warm_claims, run by Engine.warm_up while the daemon starts):
both claim statements run once with a limit of 0, before the one-time migrations, so it must
take, lock and change no job, and leave the session holding their generic plans for the first
real claim (which took 13-22 ms on a new connection without it, 0.3-0.5 ms with)."""

from __future__ import annotations

import asyncpg

from addicted_jobs.db import CLAIM_POOL_OPTIONS, _init_connection
from addicted_jobs.jobs import store
from addicted_jobs.jobs.store import NewJob

_ROWS = "SELECT id, state, attempt, claims, started_at, claimed_by FROM jobs.jobs ORDER BY id"
_COUNTS = "SELECT queue, state, sum(n) AS n FROM jobs.state_counts GROUP BY 1, 2 ORDER BY 1, 2"
# This session's claim statements (the UPDATE that marks jobs running) with a generic plan made.
_PLANNED = """SELECT count(*) FROM pg_prepared_statements
              WHERE statement LIKE '%SET state = ''running''%' AND generic_plans > 0"""


async def test_the_warm_up_claims_nothing_and_leaves_the_claims_planned(
    db_dsn: str, db_pool: asyncpg.Pool
) -> None:
    await store.enqueue(db_pool, [NewJob("noop", "default", {}, 1)] * 5)
    await store.enqueue(db_pool, [NewJob("noop", "other", {}, 1)] * 2)
    rows, counts = await db_pool.fetch(_ROWS), await db_pool.fetch(_COUNTS)
    conn = await asyncpg.connect(db_dsn, server_settings=CLAIM_POOL_OPTIONS["server_settings"])
    await _init_connection(conn)
    try:
        await store.warm_claims(conn, "default")

        assert await db_pool.fetch(_ROWS) == rows  # nothing claimed, started or counted
        assert await db_pool.fetch(_COUNTS) == counts
        assert await db_pool.fetchval("SELECT count(*) FROM jobs.attempts") == 0
        assert await conn.fetchval(_PLANNED) == 2  # the claim and the bounded claim
        # The first real claims use them: the same jobs as without the warm-up.
        claimed, _ = await store.claim_from(conn, "default", 10)
        assert sorted(j.id for j in claimed) == sorted(r["id"] for r in rows[:5])
        assert await conn.fetchval(_PLANNED) == 2
    finally:
        await conn.close()
