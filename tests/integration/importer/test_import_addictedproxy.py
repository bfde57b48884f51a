"""`import-addictedproxy` against an original-schema database (tests/integration/
addictedproxy_source.py) on the same PostgreSQL: every mapped row and column arrives, a second run
changes nothing, a run killed with -9 resumes to exactly the source's rows, and what cannot be
imported is refused in one line with nothing written.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from addicted_jobs.catalog.refresh import season_needs_episode_refresh, show_needs_season_refresh
from addicted_jobs.catalog.seasons import list_seasons
from addicted_jobs.catalog.shows import get_show
from addicted_jobs.db import INSTANCE_LOCK, LOCK_NAMESPACE
from addicted_jobs.importer.run import (
    ImportRefused,
)
from addicted_jobs.importer.source import TABLES, UnrecognisedSource
from addicted_jobs.settings import RefreshSettings
from tests.support import wait_until
from tests.support.addictedproxy import BASE, original_database
from tests.support.importer import run_import
from tests.support.paths import ROOT


@pytest.fixture
async def source_dsn(pg_admin_dsn: str) -> AsyncIterator[str]:
    async with original_database(pg_admin_dsn) as dsn:
        yield dsn


async def table_rows(
    dsn: str, table: str, columns: list[str], order: str
) -> list[tuple[object, ...]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order}")
    finally:
        await conn.close()
    return [tuple(r) for r in rows]


def quoted(columns: list[str]) -> list[str]:
    return [f'"{c}"' for c in columns]


async def assert_same_as_source(source_dsn: str, target_dsn: str) -> None:
    for table in TABLES:
        want = await table_rows(
            source_dsn, f'"{table.source}"', quoted(table.source_columns), '"Id"'
        )
        got = await table_rows(target_dsn, table.target, table.target_columns, "id")
        assert got == want, f"{table.source} differs from {table.target}"


async def source_fingerprint(dsn: str) -> str:
    """A digest of every row of every table: proves the import wrote nothing to the source."""
    conn = await asyncpg.connect(dsn)
    try:
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        )
        digest = hashlib.sha256()
        for t in tables:
            rows = await conn.fetch(f'SELECT t::text AS r FROM "{t["tablename"]}" t ORDER BY 1')
            digest.update("\n".join(r["r"] for r in rows).encode())
    finally:
        await conn.close()
    return digest.hexdigest()


async def test_every_row_and_column_arrives(source_dsn: str, db_dsn: str) -> None:
    before = await source_fingerprint(source_dsn)
    report = await run_import(source_dsn, db_dsn, batch_size=7)
    await assert_same_as_source(source_dsn, db_dsn)
    assert await source_fingerprint(source_dsn) == before
    counts = {t.table: (t.source_rows, t.copied, t.skipped) for t in report.tables}
    assert counts["Subtitles"] == (121, 121, 0)  # 4 × 2 × 3 × 5 + the never-stored one
    assert counts["TvShows"] == (7, 7, 0)  # the 4, the show without seasons, the look-alikes
    assert counts["AddictedUserCredentials"] == (2, 2, 0)
    assert report.skipped_tables == ["SuperSubtitlesState"]
    conn = await asyncpg.connect(db_dsn)
    try:
        stripes = await conn.fetchval(
            "SELECT count(*) FROM addictedproxy_import WHERE source_table = 'Subtitles'"
        )
        assert stripes == 2  # copied by two lanes side by side
        # Rows the daemon adds later never take one of the original's ids.
        new_id = await conn.fetchval("INSERT INTO tv_shows (name) VALUES ('new') RETURNING id")
        assert new_id == 8
        cookie, exceeded = await conn.fetchrow(
            "SELECT cookie, download_exceeded_date FROM addicted_user_credentials WHERE id = 1"
        )
        assert cookie.endswith("secret-canary") and exceeded == BASE.replace(day=4)
        states = await conn.fetch(
            "SELECT migration_type, state, error FROM onetime_migrations ORDER BY migration_type"
        )
    finally:
        await conn.close()
    assert [(s["migration_type"], s["state"]) for s in states] == [
        ("2023-2-29_PopulateTvDbIdsMigration", 2),
        ("2024-8-14_CleanUpInboxUsersMigration", 0),  # succeeded there: never run again here
        ("2026-3-7_CleanupEmptySeasonsMigration", 2),  # running there: nobody saw it end
    ]
    assert "never seen to finish" in states[2]["error"]


async def test_refresh_gating_sees_the_imported_dates(source_dsn: str, db_dsn: str) -> None:
    await run_import(source_dsn, db_dsn)
    pool = await asyncpg.create_pool(db_dsn, min_size=1, max_size=2)
    try:
        settings, now = RefreshSettings(), BASE + timedelta(minutes=30)
        show = await get_show(pool, 1)  # seasons refreshed a minute before BASE
        assert show is not None and not show_needs_season_refresh(show, settings, now)
        seasons = await list_seasons(pool, 1)
        latest = max(s.number for s in seasons)

        def due(at: datetime) -> dict[int, bool]:
            return {
                s.number: season_needs_episode_refresh(show, s, latest, settings, at)
                for s in seasons
            }

        # Season 1 was refreshed an hour before BASE, season 2 (the latest: 3 h) two hours before.
        assert due(now) == {1: False, 2: False}
        assert due(now + timedelta(minutes=30)) == {1: False, 2: True}
        later = datetime(2024, 3, 2, 12, 0, tzinfo=UTC)
        assert show_needs_season_refresh(show, settings, later)
        empty = await get_show(pool, 5)
        assert empty is not None and show_needs_season_refresh(empty, settings, now)
    finally:
        await pool.close()


async def test_a_second_run_changes_nothing(source_dsn: str, db_dsn: str) -> None:
    await run_import(source_dsn, db_dsn, batch_size=10)

    async def snapshot() -> list[list[tuple[object, ...]]]:
        tables = [t.target for t in TABLES] + ["onetime_migrations"]
        return [await table_rows(db_dsn, t, ["xmin::text", "*"], "id") for t in tables]

    before = await snapshot()
    report = await run_import(source_dsn, db_dsn, batch_size=10)
    assert await snapshot() == before  # same rows, same row versions: nothing rewritten
    assert all(t.copied == 0 for t in report.tables) and report.migrations_copied == 0
    assert {t.table: t.earlier for t in report.tables}["Subtitles"] == 121


def cli(config: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("ADDICTED_JOBS_CONTROL__SOCKET", None)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "addicted_jobs",
            "import-addictedproxy",
            "--config",
            str(config),
            *args,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def config_for(tmp_path: Path, target_dsn: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[database]\ndsn = "{target_dsn}"\n[state]\ndir = "{tmp_path / "state"}"\n',
        encoding="utf-8",
    )
    return path


async def test_killed_with_sigkill_then_resumed(
    source_dsn: str, db_dsn: str, tmp_path: Path
) -> None:
    conn = await asyncpg.connect(source_dsn)
    try:
        await fill_bulk_more(conn)
    finally:
        await conn.close()
    config = config_for(tmp_path, db_dsn)
    proc = cli(config, "--from", source_dsn, "--batch-size", "5")
    target = await asyncpg.connect(db_dsn)
    try:

        async def halfway() -> bool:
            copied = await target.fetchval(
                "SELECT copied FROM addictedproxy_import WHERE source_table = 'Subtitles'"
            )
            return bool(copied)

        await wait_until(halfway, timeout=60, interval=0.01, message="the import to be halfway")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        copied = await target.fetchval("SELECT count(*) FROM subtitles")
        total = 121 + 2000
        assert 0 < copied < total, "killed too late to test a resume"
    finally:
        await target.close()
    again = cli(config, "--from", source_dsn, "--batch-size", "500")
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert "Subtitles" in out and "done in" in out
    assert "import: Subtitles" in err  # plain progress lines off a terminal
    assert "secret-canary" not in out + err
    await assert_same_as_source(source_dsn, db_dsn)


async def fill_bulk_more(conn: asyncpg.Connection) -> None:
    """2000 more subtitles on new episodes of show 1, so a kill lands halfway."""
    await conn.execute(
        """INSERT INTO "Episodes" ("TvShowId", "Season", "Number", "Title", "Discovered",
               "CreatedAt", "UpdatedAt")
           SELECT 1, 9, n, 'More ' || n, now(), now(), now() FROM generate_series(1, 200) n"""
    )
    await conn.execute(
        """INSERT INTO "Subtitles" ("EpisodeId", "Scene", "Version", "Completed", "CompletionPct",
               "HearingImpaired", "Corrected", "HD", "Qualities", "DownloadUri", "Language",
               "Discovered", "DownloadCount", "ExternalId", "CreatedAt", "UpdatedAt")
           SELECT e."Id", 'X', n, true, 100, false, false, false, 0, '/more/' || e."Id" || '/' || n,
                  'French', now(), 0, '/more/' || e."Id" || '/' || n, now(), now()
           FROM "Episodes" e, generate_series(1, 10) n WHERE e."Season" = 9"""
    )


async def test_dry_run_and_an_unknown_schema(source_dsn: str, db_dsn: str, tmp_path: Path) -> None:
    config = config_for(tmp_path, db_dsn)
    dry = cli(config, "--from", source_dsn, "--dry-run")
    out, err = dry.communicate(timeout=60)
    assert dry.returncode == 0, err
    assert "would copy" in out and "not imported (no equivalent here): SuperSubtitlesState" in out
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:8]}
    assert lines["Subtitles"][:2] == ["121", "121"]
    conn = await asyncpg.connect(db_dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM tv_shows") == 0
    finally:
        await conn.close()
    source = await asyncpg.connect(source_dsn)
    try:
        await source.execute('ALTER TABLE "Subtitles" DROP COLUMN "UniqueId"')
        await source.execute('DROP TABLE "EpisodeExternalIds"')
    finally:
        await source.close()
    bad = cli(config, "--from", source_dsn)
    out, err = bad.communicate(timeout=60)
    assert bad.returncode == 1 and out == ""
    assert err.count("\n") == 1
    assert 'table "EpisodeExternalIds" is missing' in err
    assert 'table "Subtitles" lacks column "UniqueId"' in err
    with pytest.raises(UnrecognisedSource):
        await run_import(source_dsn, db_dsn)


async def test_refuses_a_running_daemon_and_a_target_of_its_own(
    source_dsn: str, db_dsn: str
) -> None:
    daemon = await asyncpg.connect(db_dsn)
    try:
        await daemon.execute("SELECT pg_advisory_lock($1, $2)", LOCK_NAMESPACE, INSTANCE_LOCK)
        with pytest.raises(ImportRefused, match="daemon runs on the target database"):
            await run_import(source_dsn, db_dsn)
        await daemon.execute("SELECT pg_advisory_unlock($1, $2)", LOCK_NAMESPACE, INSTANCE_LOCK)
        await daemon.execute("INSERT INTO tv_shows (name) VALUES ('scraped by the daemon')")
        with pytest.raises(ImportRefused, match="already holds 1 shows of its own"):
            await run_import(source_dsn, db_dsn)
        assert await daemon.fetchval("SELECT count(*) FROM subtitles") == 0
    finally:
        await daemon.close()


def test_source_ddl_matches_the_mapping() -> None:
    # Guards the fixture itself: every mapped source column is in the DDL.
    from tests.support.addictedproxy import ORIGINAL_DDL

    for table in TABLES:
        assert f'CREATE TABLE "{table.source}"' in ORIGINAL_DDL
        for column in table.source_columns:
            assert f'"{column}"' in ORIGINAL_DDL


async def test_rows_the_target_refuses_are_counted_and_their_children_skipped(
    source_dsn: str, db_dsn: str
) -> None:
    await run_import(source_dsn, db_dsn)
    clash = uuid.uuid4()
    target = await asyncpg.connect(db_dsn)
    try:
        await target.execute("UPDATE tv_shows SET unique_id = $1 WHERE id = 1", clash)
    finally:
        await target.close()
    source = await asyncpg.connect(source_dsn)
    try:
        # A show added since, whose public id the target already gives to show 1.
        await source.execute(
            """INSERT INTO "TvShows" ("Id", "UniqueId", "ExternalId", "Name", "LastUpdated",
                   "Discovered", "IsCompleted", "Type", "CreatedAt", "UpdatedAt")
               VALUES (50, $1, 50, 'Clash', now(), now(), false, 0, now(), now())""",
            clash,
        )
        await source.execute(
            """INSERT INTO "TvShows" ("Id", "ExternalId", "Name", "LastUpdated", "Discovered",
                   "IsCompleted", "Type", "CreatedAt", "UpdatedAt")
               VALUES (51, 51, 'Fine', now(), now(), false, 0, now(), now());
               INSERT INTO "Episodes" ("TvShowId", "Season", "Number", "Title", "Discovered",
                   "CreatedAt", "UpdatedAt")
               VALUES (50, 1, 1, 'Orphan', now(), now(), now()),
                      (51, 1, 1, 'Kept', now(), now(), now())"""
        )
    finally:
        await source.close()
    report = await run_import(source_dsn, db_dsn)
    got = {t.table: (t.copied, t.skipped) for t in report.tables}
    assert got["TvShows"] == (1, 1) and got["Episodes"] == (1, 1)
    target = await asyncpg.connect(db_dsn)
    try:
        titles = await target.fetch("SELECT title FROM episodes WHERE title IN ('Orphan', 'Kept')")
        assert [t["title"] for t in titles] == ["Kept"]
        skipped = await target.fetch(
            """SELECT source_table, sum(skipped) FROM addictedproxy_import
               GROUP BY 1 HAVING sum(skipped) > 0 ORDER BY 1"""
        )
        assert [tuple(r) for r in skipped] == [("Episodes", 1), ("TvShows", 1)]
    finally:
        await target.close()


async def test_a_cookie_that_cannot_be_a_header_is_refused_and_counted(
    source_dsn: str, db_dsn: str
) -> None:
    # `credentials add` refuses control characters (a CRLF would split the HTTP request); the
    # import copies with COPY, so the table's own constraint must refuse what that check would.
    source = await asyncpg.connect(source_dsn)
    try:
        await source.execute(
            """INSERT INTO "AddictedUserCredentials" ("Cookie", "Usage", "CreatedAt", "UpdatedAt")
               VALUES (E'x=1\\r\\nX-Injected: 1', 0, now(), now())"""
        )
    finally:
        await source.close()
    report = await run_import(source_dsn, db_dsn)
    got = {t.table: (t.copied, t.skipped) for t in report.tables}
    assert got["AddictedUserCredentials"] == (2, 1)
    target = await asyncpg.connect(db_dsn)
    try:
        cookies = [
            r["cookie"] for r in await target.fetch("SELECT cookie FROM addicted_user_credentials")
        ]
        assert len(cookies) == 2 and not any("\n" in c or "\r" in c for c in cookies)
    finally:
        await target.close()


async def test_an_unusable_source_dsn_is_one_line_without_its_password(
    db_dsn: str, tmp_path: Path
) -> None:
    config = config_for(tmp_path, db_dsn)
    for dsn in (
        "postgresql://reader:pw-canary-1@127.0.0.1:99999/ap",  # port out of range
        "postgresql://reader:pw-canary-1@127.0.0.1:5432/ap?sslmode=pw-canary-1",
    ):
        bad = cli(config, "--from", dsn)
        out, err = bad.communicate(timeout=60)
        assert bad.returncode == 1 and out == "", err
        assert err.count("\n") == 1 and "cannot connect to the source" in err
        assert "pw-canary-1" not in err and "Traceback" not in err
