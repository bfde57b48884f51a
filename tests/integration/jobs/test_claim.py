"""Claiming against a real PostgreSQL: oldest first across types, caps, locked rows, and a
backlog of one type that does not make every claim read it."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest

from addicted_jobs.db import Database
from addicted_jobs.jobs import store
from addicted_jobs.jobs.store import NewJob, Outcome


def jobs(name: str, n: int, *, queue: str = "default", delay: float | None = None) -> list[NewJob]:
    return [NewJob(name, queue, {"i": i}, 1, delay=delay) for i in range(n)]


async def ids(pool: asyncpg.Pool, batch: list[NewJob]) -> list[int]:
    return [r.id for r in await store.enqueue(pool, batch)]


async def rows_read_by_claim(pool: asyncpg.Pool, capped: list[str], rooms: list[int]) -> int:
    """Rows the scans of one claim read (returned or filtered out), from EXPLAIN ANALYZE; the
    claim itself is rolled back."""
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            raw = await conn.fetchval(
                "EXPLAIN (ANALYZE, FORMAT JSON) " + store._CLAIM, "default", capped, 10, rooms, None
            )
        finally:
            await tx.rollback()
    # The pool's json codec has decoded it already.
    plan: dict[str, Any] = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]

    def read(node: dict[str, Any]) -> int:
        own = 0
        if node["Node Type"].endswith("Scan") and "Relation Name" in node:
            loops = node.get("Actual Loops", 1)
            own = (node["Actual Rows"] + node.get("Rows Removed by Filter", 0)) * loops
        return own + sum(read(child) for child in node.get("Plans", []))

    return read(plan)


async def test_claim_takes_the_oldest_jobs_first_across_types(db_pool: asyncpg.Pool) -> None:
    b_old = await ids(db_pool, jobs("b", 2))
    a_new = await ids(db_pool, jobs("a", 2))
    b_new = await ids(db_pool, jobs("b", 2))
    claimed = await store.claim(db_pool, "default", 5)
    assert [c.id for c in claimed] == b_old + a_new + b_new[:1]


async def test_a_capped_type_takes_only_its_room_and_others_fill_the_rest(
    db_pool: asyncpg.Pool,
) -> None:
    slow = await ids(db_pool, jobs("slow", 20))
    quick = await ids(db_pool, jobs("quick", 3))
    claimed = await store.claim(db_pool, "default", 10, ["slow"], {"slow": 2})
    assert [c.id for c in claimed] == slow[:2] + quick
    none_left = await store.claim(db_pool, "default", 10, ["slow"], {"slow": 0})
    assert none_left == []


async def test_a_job_another_session_holds_is_skipped_not_waited_for(
    db_pool: asyncpg.Pool, db_dsn: str
) -> None:
    first, second, third = await ids(db_pool, jobs("noop", 3))
    other = await asyncpg.connect(db_dsn)
    try:
        async with other.transaction():
            await other.execute("SELECT 1 FROM jobs.jobs WHERE id = $1 FOR UPDATE", first)
            claimed = await store.claim(db_pool, "default", 10)
            assert [c.id for c in claimed] == [second, third]
    finally:
        await other.close()
    assert [c.id for c in await store.claim(db_pool, "default", 10)] == [first]


async def test_scheduled_jobs_are_not_claimed_before_they_fall_due(db_pool: asyncpg.Pool) -> None:
    await ids(db_pool, jobs("later", 3, delay=3600))
    [now] = await ids(db_pool, jobs("now", 1))
    assert [c.id for c in await store.claim(db_pool, "default", 10)] == [now]
    due = await store.next_due(db_pool, "default")
    assert due is not None and await db_pool.fetchval(
        "SELECT $1 > now() + interval '59 minutes'", due
    )


async def test_next_due_ignores_types_at_their_cap(db_pool: asyncpg.Pool) -> None:
    await ids(db_pool, jobs("capped", 2))
    await ids(db_pool, jobs("free", 1, delay=600))
    due_any = await store.next_due(db_pool, "default")
    due_free = await store.next_due(db_pool, "default", ["capped"])
    assert due_any is not None and due_free is not None and due_free > due_any
    assert await store.next_due(db_pool, "default", ["capped", "free"]) is None


async def test_a_backlog_of_a_type_at_its_cap_is_not_read_on_every_claim(
    db_pool: asyncpg.Pool,
) -> None:
    # 5,000 queued jobs of a type at its cap, then 5 of another type: each claim used to read the
    # whole backlog to find the 5. Now it reads the head of each type.
    await store.enqueue(db_pool, jobs("fetch", 5000))
    quick = await ids(db_pool, jobs("quick", 5))
    await db_pool.execute("ANALYZE jobs.jobs")
    assert await rows_read_by_claim(db_pool, ["fetch"], [0]) < 100
    assert await rows_read_by_claim(db_pool, ["fetch"], [3]) < 100
    claimed = await store.claim(db_pool, "default", 10, ["fetch"], {"fetch": 0})
    assert [c.id for c in claimed] == quick


async def test_the_daemons_connections_never_jit_compile(daemon_db: Database) -> None:
    # JIT compiled the claim on every run once its estimate crossed jit_above_cost: 15 ms each.
    assert daemon_db.pool is not None
    assert await daemon_db.pool.fetchval("SHOW jit") == "off"
    conn = await daemon_db.connect()
    try:
        assert await conn.fetchval("SHOW jit") == "off"
    finally:
        await conn.close()


def _scans(node: dict[str, Any]) -> list[dict[str, Any]]:
    own = [node] if node["Node Type"].endswith("Scan") and "Relation Name" in node else []
    return own + [s for child in node.get("Plans", []) for s in _scans(child)]


async def explain_claim(pool: asyncpg.Pool, limit: int, plan_mode: str) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, BUFFERS) of one claim under `plan_cache_mode`, rolled back."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(f"SET LOCAL plan_cache_mode = {plan_mode}")
        raw = await conn.fetchval(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + store._CLAIM,
            "default",
            [],
            limit,
            [],
            None,
        )
        plan: dict[str, Any] = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
        raise _RollBack(plan)


class _RollBack(Exception):
    def __init__(self, plan: dict[str, Any]) -> None:
        self.plan = plan


async def claim_reads(pool: asyncpg.Pool, limit: int, plan_mode: str) -> tuple[int, list[int]]:
    """(rows the claim returned, rows each scan of jobs.jobs read: returned plus filtered out)."""
    try:
        await explain_claim(pool, limit, plan_mode)
    except _RollBack as done:
        plan = done.plan
    reads = [
        round((s["Actual Rows"] + s.get("Rows Removed by Filter", 0)) * s.get("Actual Loops", 1))
        for s in _scans(plan)
    ]
    return plan["Actual Rows"], reads


@pytest.mark.parametrize("plan_mode", ["force_custom_plan", "force_generic_plan"])
async def test_statistics_never_make_a_claim_read_the_backlog(
    db_pool: asyncpg.Pool, plan_mode: str
) -> None:
    # Issue 14: statistics taken on a drained queue made the planner lock candidates by walking
    # jobs_claim_by_name on run_at and filtering on id, reading the backlog on every claim.
    await store.enqueue(db_pool, jobs("noop", 3000))
    while claimed := await store.claim(db_pool, "default", 500):
        await store.finish(db_pool, [Outcome(c.id, c.claims, "succeeded") for c in claimed])
    await db_pool.execute("ANALYZE jobs.jobs")  # statistics of an empty queue
    await store.enqueue(db_pool, jobs("noop", 30_000))
    for statistics in ("empty", "full"):
        returned, reads = await claim_reads(db_pool, 100, plan_mode)
        assert returned == 100
        assert max(reads) < 2 * returned, (statistics, reads)
        await db_pool.execute("ANALYZE jobs.jobs")  # statistics of a full queue
