"""A long transaction elsewhere (issue 14, part 2): while another session holds a REPEATABLE READ
snapshot, vacuum may not remove the dead index entries every drained job leaves at the head of
jobs_claim_by_name. The engine's claims start at a lower bound per type, so what a claim reads
stays the same drain after drain instead of growing with the dead rows."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from addicted_jobs.jobs import JobContext, JobRequest, JobSpec, NoArgs, Registry, store
from addicted_jobs.jobs.engine import Engine
from tests.support import wait_until
from tests.support.engine import EngineFactory

DRAIN = 3000


async def buffers(pool: asyncpg.Pool, sql: str, *args: Any) -> int:
    """Shared buffers (hit + read) one run of `sql` touches, from EXPLAIN (ANALYZE, BUFFERS);
    rolled back, so a claim claims nothing for real."""
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            raw = await conn.fetchval("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, *args)
        finally:
            await tx.rollback()
    plan: dict[str, Any] = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
    return int(plan["Shared Hit Blocks"]) + int(plan["Shared Read Blocks"])


async def claim_buffers(pool: asyncpg.Pool, engine: Engine) -> tuple[int, int]:
    """(buffers of the engine's bounded claim on the drained queue, of an unbounded one)."""
    lows = engine.dispatchers["default"]._lows()
    names = list(lows)
    bounded = await buffers(
        pool,
        store._CLAIM_BOUNDED,
        "default",
        [],
        10,
        [],
        names,
        [lows[n][0] if lows[n] else None for n in names],  # type: ignore[index]
        [lows[n][1] if lows[n] else None for n in names],  # type: ignore[index]
        None,  # no cluster node
    )
    unbounded = await buffers(pool, store._CLAIM, "default", [], 10, [], None)
    return bounded, unbounded


async def succeeded(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM jobs.jobs WHERE state = 'succeeded'"))


async def test_claims_under_a_held_snapshot_read_the_same_drain_after_drain(
    make_engine: EngineFactory, db_pool: asyncpg.Pool, db_dsn: str
) -> None:
    async def noop(ctx: JobContext, args: NoArgs) -> None:
        return None

    registry = Registry()
    registry.register(JobSpec("noop", "default", NoArgs, noop))
    engine = await make_engine(registry)
    reporting = await asyncpg.connect(db_dsn)
    tx = reporting.transaction(isolation="repeatable_read")
    await tx.start()
    try:
        await reporting.fetchval("SELECT count(*) FROM jobs.jobs")  # takes the snapshot
        seen: list[tuple[int, int]] = []
        for drain in range(1, 5):
            await engine.enqueue_many([JobRequest("noop", {}) for _ in range(DRAIN)])
            await wait_until(
                lambda n=drain: _at_least(succeeded(db_pool), n * DRAIN),
                timeout=60,
                message=f"drain {drain}",
            )
            # The dispatcher has seen the queue empty since (it claims once more, finds none).
            await wait_until(
                lambda: engine.dispatchers["default"].lows.get("noop"), message="a bound"
            )
            seen.append(await claim_buffers(db_pool, engine))
        (bounded_1, unbounded_1), (bounded_4, unbounded_4) = seen[0], seen[-1]
        # The dead entries pile up: an unbounded claim reads more with each drain...
        assert unbounded_4 > 2 * unbounded_1, seen
        # ...the engine's bounded claim reads the same few pages whatever lies dead below it.
        assert bounded_4 <= bounded_1 + 5, seen
        assert bounded_4 * 10 < unbounded_4, seen
        # Still held: the dead rows are really there, not vacuumed.
        assert await reporting.fetchval("SELECT count(*) FROM jobs.jobs") == 0
    finally:
        await tx.rollback()
        await reporting.close()


async def _at_least(value: Any, expected: int) -> bool:
    return bool(await value >= expected)


async def test_a_job_that_appears_below_the_bound_is_claimed_at_once(
    make_engine: EngineFactory, db_pool: asyncpg.Pool
) -> None:
    async def noop(ctx: JobContext, args: NoArgs) -> None:
        return None

    registry = Registry()
    registry.register(JobSpec("noop", "default", NoArgs, noop))
    # No periodic unbounded claim within the test: only the notification can rewind the bound.
    engine = await make_engine(registry, fallback_poll_s=600.0)
    await engine.enqueue_many([JobRequest("noop", {}) for _ in range(50)])
    await wait_until(lambda: _at_least(succeeded(db_pool), 50), message="first drain")
    low = await wait_until(lambda: engine.dispatchers["default"].lows.get("noop"), message="bound")
    # Another session inserts a job due an hour ago: below the bound, as a transaction that
    # began before the bound was taken would. Its notification makes the engine scan again.
    await db_pool.execute(
        "INSERT INTO jobs.jobs (name, queue, state, max_attempts, run_at)"
        " VALUES ('noop', 'default', 'ready', 1, now() - interval '1 hour')"
    )
    assert await db_pool.fetchval(
        "SELECT (run_at, id) < ($1, $2) FROM jobs.jobs ORDER BY id DESC LIMIT 1", *low
    )
    await wait_until(lambda: _at_least(succeeded(db_pool), 51), message="the job below ran")


def _reads(node: dict[str, Any]) -> list[int]:
    """Rows each scan of a table read (returned plus filtered out), over the plan tree."""
    own = []
    if node["Node Type"].endswith("Scan") and "Relation Name" in node:
        loops = node.get("Actual Loops", 1)
        own = [round((node["Actual Rows"] + node.get("Rows Removed by Filter", 0)) * loops)]
    return own + [r for child in node.get("Plans", []) for r in _reads(child)]


async def test_statistics_never_make_the_bounded_claim_read_the_backlog(
    db_pool: asyncpg.Pool,
) -> None:
    # As the unbounded claim (test_claim.py): after ANALYZE on an empty queue, then on a full one,
    # under custom and generic plans, each scan reads no more than twice the rows claimed.
    await store.enqueue(db_pool, [store.NewJob("noop", "default", {}, 1)] * 3000)
    while claimed := await store.claim(db_pool, "default", 500):
        await store.finish(db_pool, [store.Outcome(c.id, c.claims, "succeeded") for c in claimed])
    await db_pool.execute("ANALYZE jobs.jobs")
    await store.enqueue(db_pool, [store.NewJob("noop", "default", {}, 1)] * 30_000)
    _, lows = await store.claim_from(db_pool, "default", 1)
    for statistics in ("empty", "full"):
        for mode in ("force_custom_plan", "force_generic_plan"):
            async with db_pool.acquire() as conn:
                tx = conn.transaction()
                await tx.start()
                try:
                    await conn.execute(f"SET LOCAL plan_cache_mode = {mode}")
                    raw = await conn.fetchval(
                        "EXPLAIN (ANALYZE, FORMAT JSON) " + store._CLAIM_BOUNDED,
                        "default",
                        [],
                        100,
                        [],
                        ["noop"],
                        [lows["noop"][0]],
                        [lows["noop"][1]],
                        None,  # no cluster node
                    )
                finally:
                    await tx.rollback()
            plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
            returned, reads = plan["Actual Rows"], _reads(plan)
            assert returned == 100 and max(reads) < 2 * returned, (statistics, mode, reads)
        await db_pool.execute("ANALYZE jobs.jobs")
