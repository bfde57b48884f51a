"""2023-9-16 SetCreatedDateAndUpdatedDate{Episodes,Subtitles}Migration: created_at takes the
discovery date, updated_at now, for rows whose created_at says something else.
"""

from __future__ import annotations

from typing import ClassVar

from addicted_jobs.jobs import MigrationContext, OneTimeMigration

WINDOW = 10_000  # ids per statement: short locks, and progress to report


class _CreatedFromDiscovered(OneTimeMigration):
    """Walks the id range in windows, each its own statement, so a crash keeps what was done and
    a re-run finds only what is left; rows already right are not touched again."""

    date = (2023, 9, 16)
    table: ClassVar[str]

    async def execute(self, ctx: MigrationContext) -> None:
        bounds = await ctx.pool.fetchrow(
            f"SELECT min(id) AS low, max(id) AS high FROM {self.table}"
        )
        if bounds is None or bounds["low"] is None:
            return
        low, high = int(bounds["low"]), int(bounds["high"])
        fixed = 0
        for start in range(low, high + 1, WINDOW):
            status = await ctx.pool.execute(
                f"""UPDATE {self.table} SET created_at = discovered, updated_at = now()
                    WHERE id >= $1 AND id < $2 AND created_at IS DISTINCT FROM discovered""",
                start,
                start + WINDOW,
            )
            fixed += int(status.split()[-1])
            ctx.progress(
                f"{self.table} created_at",
                done=min(start + WINDOW, high + 1) - low,
                total=high + 1 - low,
                fixed=fixed,
            )
        ctx.log.info("created_at set from the discovery date", table=self.table, rows=fixed)


class SetCreatedDateAndUpdatedDateEpisodesMigration(_CreatedFromDiscovered):
    table = "episodes"


class SetCreatedDateAndUpdatedDateSubtitlesMigration(_CreatedFromDiscovered):
    table = "subtitles"
