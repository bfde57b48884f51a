"""2025-1-29 RemoveOldCheckCompletedJobMigration: forget the recurring entry `CheckCompletedTmdbJob`,
which the original replaced by two entries with arguments, and cancel any job still queued under it.
"""

from __future__ import annotations

from addicted_jobs.jobs import MigrationContext, OneTimeMigration, store

OLD_NAME = "CheckCompletedTmdbJob"


class RemoveOldCheckCompletedJobMigration(OneTimeMigration):
    date = (2025, 1, 29)

    async def execute(self, ctx: MigrationContext) -> None:
        # jobs.recurring keys entries by `name` since migrations/005; schema migrations always
        # run before one-time ones, so the table is there.
        removed = await store.forget_recurring(ctx.pool, OLD_NAME)
        cancelled = await store.cancel_waiting(ctx.pool, OLD_NAME)
        ctx.log.info(
            "old recurring entry removed", recurring_rows=removed, cancelled_jobs=cancelled
        )
