"""A process for test_onetime_crash's kill -9 test: runs one-time migrations on a DSN with a slow, batched
migration that can stop half-way and hang there, waiting for SIGKILL.

    python -m tests.support.onetime_runner DSN [--hang-after BATCHES]
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import asyncpg

from addicted_jobs.db import _init_connection
from addicted_jobs.jobs import MigrationContext, OneTimeMigration
from addicted_jobs.jobs.onetime import run_pending

BATCHES = 10
BATCH_SIZE = 100
HANG_LIMIT_S = 120.0  # never outlive a test that forgot to kill us


class SlowBackfill(OneTimeMigration):
    """Fills slow_items with 1..1000 a batch at a time; idempotent, so a re-run just completes it."""

    date = (2024, 1, 2)

    def __init__(self, hang_after: int | None = None) -> None:
        self.hang_after = hang_after

    async def execute(self, ctx: MigrationContext) -> None:
        await ctx.pool.execute("CREATE TABLE IF NOT EXISTS slow_items (n int PRIMARY KEY)")
        for batch in range(BATCHES):
            low = batch * BATCH_SIZE + 1
            await ctx.pool.execute(
                """INSERT INTO slow_items SELECT g FROM generate_series($1::int, $2::int) AS g
                   ON CONFLICT DO NOTHING""",
                low,
                low + BATCH_SIZE - 1,
            )
            ctx.progress("slow backfill", done=batch + 1, total=BATCHES)
            if self.hang_after is not None and batch + 1 == self.hang_after:
                await asyncio.sleep(HANG_LIMIT_S)
                raise SystemExit("nobody killed the slow migration runner")


async def main(dsn: str, hang_after: int | None) -> int:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4, init=_init_connection)
    try:
        report = await run_pending(pool, [SlowBackfill(hang_after)])
    finally:
        await pool.close()
    return 1 if report.failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("dsn")
    parser.add_argument("--hang-after", type=int, default=None)
    options = parser.parse_args()
    sys.exit(asyncio.run(main(options.dsn, options.hang_after)))
