"""2024-8-14 CleanUpInboxUsersMigration: empty every credential's Addic7ed inbox and reset its
counters and exceeded mark, as the original did once for all accounts.
"""

from __future__ import annotations

from typing import Protocol

from addicted_jobs.jobs import MigrationContext, OneTimeMigration

BATCH = 50


class InboxCleaner(Protocol):
    async def clear_inbox(self, cookie: str) -> bool: ...


class CleanUpInboxUsersMigration(OneTimeMigration):
    """Per batch of 50: empty the inboxes, then reset the batch in one statement. A refused inbox
    is logged and the account still reset (as originally); an unreachable Addic7ed fails the
    migration, to be retried at the next start. Rows already reset are not written again."""

    date = (2024, 8, 14)

    def __init__(self, addic7ed: InboxCleaner) -> None:
        self.addic7ed = addic7ed

    async def execute(self, ctx: MigrationContext) -> None:
        total = await ctx.pool.fetchval("SELECT count(*) FROM addicted_user_credentials")
        after, seen, refused, reset = 0, 0, 0, 0
        while True:
            rows = await ctx.pool.fetch(
                """SELECT id, cookie FROM addicted_user_credentials WHERE id > $1
                   ORDER BY id LIMIT $2""",
                after,
                BATCH,
            )
            if not rows:
                break
            for row in rows:
                if not await self.addic7ed.clear_inbox(row["cookie"]):
                    refused += 1
                    ctx.log.warning("could not empty the inbox", credential_id=row["id"])
            status = await ctx.pool.execute(
                """UPDATE addicted_user_credentials
                   SET usage = 0, download_usage = 0, download_exceeded_date = NULL
                   WHERE id = ANY ($1::int[])
                     AND (usage <> 0 OR download_usage <> 0 OR download_exceeded_date IS NOT NULL)""",
                [r["id"] for r in rows],
            )
            reset += int(status.split()[-1])
            after = rows[-1]["id"]
            seen += len(rows)
            ctx.progress("inboxes", done=seen, total=total, refused=refused)
        ctx.log.info("credentials cleaned up", credentials=seen, reset=reset, refused=refused)
