"""The `import-addictedproxy` command: copy an AddictedProxy deployment's catalogue into the
daemon's database. It runs in this process with its own connections (to the source given by
--from, to the target of the config's [database] dsn or the embedded server), so the daemon need
not run; while one does, the import refuses and says so (--dry-run still works).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from addicted_jobs.cli.command import EXIT_DAEMON_ERROR, Context, UsageError, arg, command

if TYPE_CHECKING:
    import argparse  # annotations only: argparse loads when a parser is built

    from addicted_jobs.importer.run import ImportReport

EXIT_REFUSED = EXIT_DAEMON_ERROR
# addicted_jobs.importer.run.DEFAULT_BATCH, repeated so every other command starts without asyncpg.
DEFAULT_BATCH = 50_000


@command(
    "import-addictedproxy",
    "copy an AddictedProxy database (shows, seasons, episodes, subtitles, external ids, "
    "credentials, one-time migration states) into the daemon's; resumable, idempotent",
    arg(
        "--from",
        dest="source",
        required=True,
        metavar="DSN",
        help="the AddictedProxy database, e.g. postgresql://user@host/addicted "
        "(put the password in PGPASSWORD or ~/.pgpass, not on the command line)",
    ),
    arg("--dry-run", action="store_true", help="print the counts it would copy; write nothing"),
    arg(
        "--lanes",
        type=int,
        default=2,
        metavar="N",
        help="connection pairs copying a big table side by side (default 2)",
    ),
    arg(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH,
        metavar="N",
        help=f"rows per transaction (default {DEFAULT_BATCH})",
    ),
)
async def import_addictedproxy(ctx: Context, ns: argparse.Namespace) -> int:
    import asyncpg

    from addicted_jobs.db import Database, DatabaseError, apply_migrations
    from addicted_jobs.importer.progress import Progress
    from addicted_jobs.importer.run import ImportRefused, open_lane_source, open_source
    from addicted_jobs.importer.run import import_addictedproxy as run_import
    from addicted_jobs.importer.source import UnrecognisedSource
    from addicted_jobs.importer.table import Lane
    from addicted_jobs.logs import configure
    from addicted_jobs.settings import load_settings

    if not 1 <= ns.batch_size <= 1_000_000:
        raise UsageError(f"--batch-size takes 1 to 1000000, got {ns.batch_size}")
    if not 1 <= ns.lanes <= 8:
        raise UsageError(f"--lanes takes 1 to 8, got {ns.lanes}")
    settings = load_settings(ns.config)  # ConfigError: exit 78 in main()
    # Logs to stderr, like the progress: stdout carries the summary (or the --json document) only.
    configure(settings.log.level, settings.log.format, sys.stderr)
    database = Database(settings.database.dsn, settings.state.dir, pool_min=1, pool_max=2)
    try:
        source = await open_source(ns.source)
        try:
            await database.start()
            target = await database.connect()
            try:
                if not ns.dry_run:
                    await apply_migrations(target)

                async def more_lanes(snapshot: str) -> Lane:
                    lane_source = await open_lane_source(ns.source, snapshot)
                    return Lane(lane_source, await database.connect())

                report = await run_import(
                    source,
                    target,
                    batch_size=ns.batch_size,
                    dry_run=ns.dry_run,
                    progress=Progress(),
                    more_lanes=more_lanes,
                    lanes=ns.lanes,
                )
            finally:
                await target.close()
        finally:
            await source.close()
    except (ImportRefused, UnrecognisedSource, DatabaseError) as exc:
        print(f"addicted-jobs import-addictedproxy: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        # Every committed batch stays committed: the next run continues after the last one.
        print(
            f"addicted-jobs import-addictedproxy: stopped ({type(exc).__name__}: {exc}); "
            "run it again to continue where it stopped",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    finally:
        await database.close()
    ctx.emit(report.as_dict(), lambda _: summary(report))
    return 0


def summary(report: ImportReport) -> str:
    """The table of what was (or, with --dry-run, would be) copied."""
    head = "would copy" if report.dry_run else "copied"
    lines = [f"{'table':<26}{'source rows':>12}{head:>12}{'earlier':>10}{'refused':>10}"]
    for t in report.tables:
        todo = t.source_rows - t.earlier if report.dry_run else t.copied
        lines.append(f"{t.table:<26}{t.source_rows:>12}{todo:>12}{t.earlier:>10}{t.skipped:>10}")
    lines.append(
        f"{'OneTimeMigrationRelease':<26}{report.migrations_source:>12}"
        f"{'-' if report.dry_run else report.migrations_copied:>12}"
    )
    if report.skipped_tables:
        lines.append("not imported (no equivalent here): " + ", ".join(report.skipped_tables))
    refused = sum(t.skipped for t in report.tables)
    if refused:
        lines.append(
            f"{refused} rows refused: their id or natural key was taken, or their parent is missing"
        )
    subtitles = next((t for t in report.tables if t.table == "Subtitles"), None)
    rate = ""
    if subtitles and subtitles.seconds > 0:
        rate = f", subtitles at {subtitles.copied / subtitles.seconds:,.0f}/s"
    lines.append(f"{'dry run' if report.dry_run else 'done'} in {report.seconds:.1f} s{rate}")
    return "\n".join(lines)
