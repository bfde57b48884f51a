"""One-time migrations for the framework's tests: one that records its runs and can fail, and one
that waits half-way; plus a migration's recorded attempts."""

from __future__ import annotations

import asyncio
from typing import ClassVar

import asyncpg

from addicted_jobs.jobs.onetime import MigrationContext, OneTimeMigration


class Recorder(OneTimeMigration):
    """Appends its key to a shared list; fails while `failures` is above zero."""

    date = (2024, 1, 1)
    failures: ClassVar[int] = 0

    def __init__(self, ran: list[str]) -> None:
        self.ran = ran

    async def execute(self, ctx: MigrationContext) -> None:
        self.ran.append(self.key)
        if type(self).failures > 0:
            type(self).failures -= 1
            raise RuntimeError("upstream said no")


class Later(Recorder):
    """A Recorder dated after the others: it runs last."""

    date = (2025, 1, 29)


class Patient(OneTimeMigration):
    """Reports half its progress, then waits for `release`: a migration caught mid-run."""

    date = (2024, 5, 5)

    def __init__(self, release: asyncio.Event) -> None:
        self.release = release

    async def execute(self, ctx: MigrationContext) -> None:
        ctx.progress("first half", done=1, total=2)
        await self.release.wait()


async def history(pool: asyncpg.Pool, key: str) -> list[asyncpg.Record]:
    """The onetime_migrations rows of migration `key`, oldest attempt first."""
    return await pool.fetch(
        "SELECT * FROM onetime_migrations WHERE migration_type = $1 ORDER BY id", key
    )
