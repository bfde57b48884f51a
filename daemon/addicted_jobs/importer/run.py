"""The import: check the source is the original's schema, read it in one read-only snapshot,
copy each table in id-ordered batches (one target transaction each, progress recorded in it),
move the id sequences past the copied ids, then copy the one-time migration states.

Ids are kept: the daemon's show and subtitle ids, the original's object keys
(`{TvShowId}/{Season}/{Number}/{UniqueId}.srt`) and whatever the API enqueues all stay valid.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import asyncpg

from addicted_jobs.db import INSTANCE_LOCK, LOCK_NAMESPACE, redact, scrub
from addicted_jobs.importer.copy import quote
from addicted_jobs.importer.progress import Progress
from addicted_jobs.importer.source import MIGRATIONS_TABLE, TABLES, check_source
from addicted_jobs.importer.table import (
    Lane,
    LaneFactory,
    TableReport,
    copy_table,
    load_stripes,
    remaining,
)

DEFAULT_BATCH = 50_000
_RUNNING, _FAIL = 1, 2  # MigrationState (spec 9.2)
__all__ = ["DEFAULT_BATCH", "ImportRefused", "ImportReport", "TableReport", "import_addictedproxy"]


class ImportRefused(Exception):
    """The import cannot start (unreachable source, unknown schema, daemon running, a target
    that already holds its own catalogue); nothing was written. The message is one line."""


@dataclass
class ImportReport:
    tables: list[TableReport] = field(default_factory=list)
    migrations_copied: int = 0
    migrations_source: int = 0
    skipped_tables: list[str] = field(default_factory=list)
    seconds: float = 0.0
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def open_source(dsn: str) -> asyncpg.Connection:
    """A connection to the original's database that cannot write: every transaction read-only."""
    try:
        conn: asyncpg.Connection = await asyncpg.connect(
            dsn,
            timeout=15,
            server_settings={
                "application_name": "addicted-jobs import",
                "default_transaction_read_only": "on",
            },
        )
    except (OSError, TimeoutError, asyncpg.PostgresError, ValueError, OverflowError) as exc:
        # asyncpg's messages may quote the DSN (db.scrub hides its secrets, as for the daemon's
        # own); an out-of-range port raises OverflowError, which was a traceback.
        reason = scrub(str(exc), dsn)
        raise ImportRefused(f"cannot connect to the source ({redact(dsn)}): {reason}") from None
    return conn


async def open_lane_source(dsn: str, snapshot: str) -> asyncpg.Connection:
    """Another read-only source connection, in a transaction that sees `snapshot` (exported by
    the import's own transaction), so every lane copies from one consistent state."""
    conn = await open_source(dsn)
    try:
        await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        await conn.execute(f"SET TRANSACTION SNAPSHOT {quote_literal(snapshot)}")
    except BaseException:
        await conn.close()
        raise
    return conn


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


async def _lock_out_the_daemon(target: asyncpg.Connection) -> None:
    # The daemon's own instance lock: while we hold it a daemon refuses to start, and we refuse
    # to start while one runs, so nothing else writes the catalogue during the copy.
    if not await target.fetchval(
        "SELECT pg_try_advisory_lock($1, $2)", LOCK_NAMESPACE, INSTANCE_LOCK
    ):
        raise ImportRefused(
            "an addicted-jobs daemon runs on the target database: stop it "
            "(systemctl stop addicted-jobs), import, then start it again (--dry-run works meanwhile)"
        )


async def _check_target(target: asyncpg.Connection) -> None:
    shows = await target.fetchval("SELECT count(*) FROM tv_shows")
    started = await target.fetchval("SELECT count(*) FROM addictedproxy_import")
    if shows and not started:
        raise ImportRefused(
            f"the target database already holds {shows} shows of its own: the import fills a fresh "
            "daemon database (before its first catalogue sync), keeping the original's ids"
        )


async def import_addictedproxy(
    source: asyncpg.Connection,
    target: asyncpg.Connection,
    *,
    batch_size: int = DEFAULT_BATCH,
    dry_run: bool = False,
    progress: Progress | None = None,
    more_lanes: LaneFactory | None = None,
    lanes: int = 1,
) -> ImportReport:
    """Copy the original's catalogue from `source` into the migrated daemon database `target`;
    with `more_lanes`, big tables are copied by `lanes` connection pairs side by side.

    Idempotent and resumable: each batch commits with its progress row, so a second run copies
    only what the source gained, and a killed run continues after its last batches. Raises
    ImportRefused before writing anything when it cannot go ahead (see there).
    """
    started = time.monotonic()
    progress = progress or Progress()
    report = ImportReport(dry_run=dry_run)
    async with source.transaction(isolation="repeatable_read", readonly=True):
        report.skipped_tables = await check_source(source)
        for table in TABLES:
            total = await source.fetchval(f"SELECT count(*) FROM {quote(table.source)}")
            left = await remaining(source, table, await load_stripes(target, table))
            report.tables.append(TableReport(table.source, total, earlier=total - left))
        report.migrations_source = await source.fetchval(
            f"SELECT count(*) FROM {quote(MIGRATIONS_TABLE)}"
        )
        if dry_run:
            report.seconds = time.monotonic() - started
            return report
        await _lock_out_the_daemon(target)
        extra: list[Lane] = []
        try:
            await _check_target(target)
            if more_lanes is not None and lanes > 1:
                # Every lane reads the same snapshot as this transaction.
                snapshot = await source.fetchval("SELECT pg_export_snapshot()")
                extra = [await more_lanes(snapshot) for _ in range(lanes - 1)]
            for table, entry in zip(TABLES, report.tables, strict=True):
                await copy_table([Lane(source, target), *extra], table, entry, batch_size, progress)
            report.migrations_copied = await _copy_migration_states(source, target)
        finally:
            for lane in extra:
                await lane.source.close()
                await lane.target.close()
            await target.execute("SELECT pg_advisory_unlock($1, $2)", LOCK_NAMESPACE, INSTANCE_LOCK)
    report.seconds = time.monotonic() - started
    return report


async def _copy_migration_states(source: asyncpg.Connection, target: asyncpg.Connection) -> int:
    """The original's OneTimeMigrationRelease rows as attempts of ours: a success stays a success
    (never run again here); a failure, or a run nobody saw end, is a failed attempt (run again).
    Engine table, written here because only the import knows the original's rows."""
    rows = await source.fetch(
        f"""SELECT "MigrationType", "State", "CreatedAt", "UpdatedAt"
            FROM {quote(MIGRATIONS_TABLE)} ORDER BY "CreatedAt", "Id" """
    )
    copied = 0
    async with target.transaction():
        for row in rows:
            state = 0 if row["State"] == 0 else _FAIL
            error = None
            if row["State"] == _RUNNING:
                error = "running in AddictedProxy when it was imported; never seen to finish"
            elif state == _FAIL:
                error = "failed in AddictedProxy (imported)"
            status = await target.execute(
                """INSERT INTO onetime_migrations
                       (migration_type, state, error, started_at, finished_at, created_at, updated_at)
                   SELECT $1, $2, $3, $4, $5, $4, $5 WHERE NOT EXISTS (
                       SELECT 1 FROM onetime_migrations
                       WHERE migration_type = $1 AND state = $2 AND started_at = $4)
                   ON CONFLICT DO NOTHING""",
                row["MigrationType"],
                state,
                error,
                row["CreatedAt"],
                row["UpdatedAt"],
            )
            copied += int(status.rsplit(" ", 1)[-1])
    return copied
