"""2025-1-29 RemoveOldCheckCompletedJobMigration: forget the recurring entry `CheckCompletedTmdbJob`,
which the original replaced by two entries with arguments, and cancel any job still queued under it.
"""

from __future__ import annotations

from addicted_jobs.jobs import store
from addicted_jobs.jobs.onetime import MigrationContext, OneTimeMigration

OLD_NAME = "CheckCompletedTmdbJob"


class RemoveOldCheckCompletedJobMigration(OneTimeMigration):
    date = (2025, 1, 29)

    async def execute(self, ctx: MigrationContext) -> None:
        removed = 0
        # The recurring table comes with the scheduler; without it there is nothing to forget.
        column = await ctx.pool.fetchval(
            """SELECT column_name FROM information_schema.columns
               WHERE table_schema = 'jobs' AND table_name = 'recurring'
                 AND column_name IN ('name', 'id') AND data_type = 'text'
               ORDER BY column_name = 'name' DESC LIMIT 1"""
        )
        if column is not None:
            status = await ctx.pool.execute(
                f"DELETE FROM jobs.recurring WHERE {column} = $1", OLD_NAME
            )
            removed = int(status.split()[-1])
        queued = await ctx.pool.fetch(
            """SELECT id FROM jobs.jobs
               WHERE name = $1 AND state IN ('ready', 'scheduled', 'awaiting') ORDER BY id""",
            OLD_NAME,
        )
        for row in queued:
            await store.cancel(ctx.pool, row["id"])
        ctx.log.info(
            "old recurring entry removed",
            recurring_rows=removed,
            cancelled_jobs=len(queued),
            recurring_table=column is not None,
        )
