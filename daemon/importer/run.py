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

from daemon.db import INSTANCE_LOCK, LOCK_NAMESPACE, redact
from daemon.importer.copy import bump_sequence, copy_batch, create_stage, quote, target_types
from daemon.importer.progress import Progress
from daemon.importer.source import MIGRATIONS_TABLE, TABLES, TableMap, check_source

DEFAULT_BATCH = 50_000
_RUNNING, _FAIL = 1, 2  # MigrationState (spec 9.2)


class ImportRefused(Exception):
    """The import cannot start (unreachable source, unknown schema, daemon running, a target
    that already holds its own catalogue); nothing was written. The message is one line."""


@dataclass
class TableReport:
    """One source table: its rows, those copied by this run, by earlier runs, and refused."""

    table: str
    source_rows: int
    copied: int = 0
    earlier: int = 0
    skipped: int = 0
    seconds: float = 0.0


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
    except (OSError, TimeoutError, asyncpg.PostgresError, ValueError) as exc:
        raise ImportRefused(f"cannot connect to the source ({redact(dsn)}): {exc}") from exc
    return conn


async def _progress_rows(target: asyncpg.Connection) -> dict[str, asyncpg.Record]:
    if await target.fetchval("SELECT to_regclass('addictedproxy_import')") is None:
        return {}  # a dry run against a target not migrated yet
    rows = await target.fetch(
        "SELECT source_table, last_id, copied, skipped FROM addictedproxy_import"
    )
    return {r["source_table"]: r for r in rows}


async def _count(source: asyncpg.Connection, table: TableMap, after: int) -> int:
    count: int = await source.fetchval(
        f"SELECT count(*) FROM {quote(table.source)} WHERE {quote('Id')} > $1", after
    )
    return count


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


async def _check_target(target: asyncpg.Connection, done: dict[str, asyncpg.Record]) -> None:
    shows = await target.fetchval("SELECT count(*) FROM tv_shows")
    if shows and not done:
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
) -> ImportReport:
    """Copy the original's catalogue from `source` into the migrated daemon database `target`.

    Idempotent and resumable: each batch commits with its progress row, so a second run copies
    only what the source gained, and a killed run continues after its last batch. Raises
    ImportRefused before writing anything when it cannot go ahead (see there).
    """
    started = time.monotonic()
    progress = progress or Progress()
    report = ImportReport(dry_run=dry_run)
    async with source.transaction(isolation="repeatable_read", readonly=True):
        report.skipped_tables = await check_source(source)
        done = await _progress_rows(target)
        for table in TABLES:
            total = await _count(source, table, 0)
            row = done.get(table.source)
            earlier = total - await _count(source, table, row["last_id"]) if row else 0
            report.tables.append(TableReport(table.source, total, earlier=earlier))
        report.migrations_source = await source.fetchval(
            f"SELECT count(*) FROM {quote(MIGRATIONS_TABLE)}"
        )
        if dry_run:
            report.seconds = time.monotonic() - started
            return report
        await _lock_out_the_daemon(target)
        try:
            await _check_target(target, done)
            for table, entry in zip(TABLES, report.tables, strict=True):
                await _copy_table(source, target, table, entry, batch_size, progress)
            report.migrations_copied = await _copy_migration_states(source, target)
        finally:
            await target.execute("SELECT pg_advisory_unlock($1, $2)", LOCK_NAMESPACE, INSTANCE_LOCK)
    report.seconds = time.monotonic() - started
    return report


async def _copy_table(
    source: asyncpg.Connection,
    target: asyncpg.Connection,
    table: TableMap,
    entry: TableReport,
    batch_size: int,
    progress: Progress,
) -> None:
    began = time.monotonic()
    await target.execute(
        "INSERT INTO addictedproxy_import (source_table) VALUES ($1) ON CONFLICT DO NOTHING",
        table.source,
    )
    last_id = await target.fetchval(
        "SELECT last_id FROM addictedproxy_import WHERE source_table = $1", table.source
    )
    types = await target_types(target, table)
    await create_stage(target, table)
    progress.start(table.source, entry.source_rows, entry.earlier)
    while True:
        async with target.transaction():
            batch = await copy_batch(source, target, table, types, last_id, batch_size)
            if not batch.read:
                break
            refused = batch.read - batch.inserted
            await target.execute(
                """UPDATE addictedproxy_import SET last_id = $2, copied = copied + $3,
                          skipped = skipped + $4, updated_at = now() WHERE source_table = $1""",
                table.source,
                batch.last_id,
                batch.inserted,
                refused,
            )
        last_id = batch.last_id
        entry.copied += batch.inserted
        entry.skipped += refused
        progress.advance(batch.read)
    await bump_sequence(target, table.target)
    progress.finish()
    entry.seconds = time.monotonic() - began


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
