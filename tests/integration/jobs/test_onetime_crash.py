"""One-time migrations interrupted: an attempt left running by a dead process, a real kill -9 of a
process half-way through a batched migration, and a stop (cancellation) during start-up.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import asyncpg
import pytest

from addicted_jobs.jobs.onetime import run_pending
from tests.support import wait_until
from tests.support.onetime import Later, Patient, history
from tests.support.onetime_runner import BATCH_SIZE, BATCHES, SlowBackfill

ROOT = Path(__file__).resolve().parents[3]


async def test_an_attempt_left_running_is_marked_interrupted_and_run_again(
    db_pool: asyncpg.Pool,
) -> None:
    await db_pool.execute(
        "INSERT INTO onetime_migrations (migration_type, state) VALUES ('2025-1-29_Later', 1)"
    )
    ran: list[str] = []
    report = await run_pending(db_pool, [Later(ran)])
    assert report.interrupted == ["2025-1-29_Later"] and ran == ["2025-1-29_Later"]
    rows = await history(db_pool, "2025-1-29_Later")
    assert [r["state"] for r in rows] == [2, 0]
    assert rows[0]["error"].startswith("interrupted") and rows[0]["finished_at"] is None


async def test_kill_9_during_a_migration_reruns_it_to_success(
    db_pool: asyncpg.Pool, db_dsn: str
) -> None:
    runner = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.onetime_runner",
        db_dsn,
        "--hang-after",
        "3",
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    key = SlowBackfill().key

    async def half_way() -> bool:
        running = await db_pool.fetchval(
            "SELECT count(*) FROM onetime_migrations WHERE migration_type = $1 AND state = 1", key
        )
        table = await db_pool.fetchval("SELECT to_regclass('slow_items') IS NOT NULL")
        done = await db_pool.fetchval("SELECT count(*) FROM slow_items") if table else 0
        return running == 1 and done == 3 * BATCH_SIZE

    try:
        await wait_until(half_way, timeout=30, message="the slow migration to be half-way")
    finally:
        runner.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(runner.wait(), 10) == -signal.SIGKILL

    report = await run_pending(db_pool, [SlowBackfill()])
    assert report.interrupted == [key] and not report.failed
    assert [r["state"] for r in await history(db_pool, key)] == [2, 0]
    assert await db_pool.fetchval("SELECT count(*) FROM slow_items") == BATCHES * BATCH_SIZE


async def test_a_stop_during_start_up_records_the_attempt_as_cancelled(
    db_pool: asyncpg.Pool,
) -> None:
    run = asyncio.create_task(run_pending(db_pool, [Patient(asyncio.Event())]))
    key = "2024-5-5_Patient"

    async def running() -> bool:
        return bool(await history(db_pool, key))

    await wait_until(running, message="the attempt to start")
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    [row] = await history(db_pool, key)
    assert row["state"] == 2 and row["error"].startswith("cancelled")
    assert (await run_pending(db_pool, [])).interrupted == [], "nothing is left running"
