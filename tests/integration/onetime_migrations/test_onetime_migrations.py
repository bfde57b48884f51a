"""The seed's five one-time migrations on databases seeded with data that needs them, against the
sandbox upstream; each is then run again (as after a crash before its success was recorded) and
must change nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from addicted_jobs.jobs import OneTimeMigration
from addicted_jobs.jobs.onetime import run_pending
from addicted_jobs.onetime_migrations import (
    CleanUpInboxUsersMigration,
    PopulateTvDbIdsMigration,
    RemoveOldCheckCompletedJobMigration,
    SetCreatedDateAndUpdatedDateEpisodesMigration,
    SetCreatedDateAndUpdatedDateSubtitlesMigration,
    all_migrations,
)
from addicted_jobs.sandbox import Sandbox
from addicted_jobs.sandbox import tmdb as sandbox_tmdb
from addicted_jobs.upstream.addic7ed import Addic7edClient
from addicted_jobs.upstream.tmdb import TmdbClient
from tests.support.catalogue import ADDIC7ED_FAST, TMDB_FAST


@dataclass
class Upstreams:
    sandbox: Sandbox
    tmdb: TmdbClient
    addic7ed: Addic7edClient


@pytest.fixture
async def upstreams() -> AsyncIterator[Upstreams]:
    async with Sandbox(shows=20) as sandbox:
        async with (
            TmdbClient(sandbox.tmdb_url, sandbox.tmdb_api_key, **TMDB_FAST) as tmdb,
            Addic7edClient(sandbox.addic7ed_url, **ADDIC7ED_FAST) as addic7ed,
        ):
            yield Upstreams(sandbox, tmdb, addic7ed)


async def snapshot(pool: asyncpg.Pool, table: str) -> list[dict[str, Any]]:
    return [dict(r) for r in await pool.fetch(f"SELECT * FROM {table} ORDER BY id")]


async def run_twice(
    pool: asyncpg.Pool, migration: OneTimeMigration, *tables: str
) -> dict[str, list[dict[str, Any]]]:
    """Run it; then forget its success and run it again, which must leave every table as it was."""
    first = await run_pending(pool, [migration])
    assert [o.key for o in first.ran] == [migration.key] and not first.failed, first
    after = {t: await snapshot(pool, t) for t in tables}
    await pool.execute("DELETE FROM onetime_migrations WHERE migration_type = $1", migration.key)
    second = await run_pending(pool, [migration])
    assert not second.failed, second
    assert {t: await snapshot(pool, t) for t in tables} == after, "the second run changed data"
    return after


async def test_populate_tvdb_ids_fills_what_tmdb_knows(
    db_pool: asyncpg.Pool, upstreams: Upstreams
) -> None:
    seed = upstreams.sandbox.seed
    tmdb_ids = list(range(5000, 5120))  # 120 shows: three batches of 50
    await db_pool.executemany(
        "INSERT INTO tv_shows (name, tmdb_id) VALUES ($1, $2)",
        [(f"show {i}", i) for i in tmdb_ids],
    )
    await db_pool.execute(
        """INSERT INTO tv_shows (name, tmdb_id, tvdb_id, type) VALUES
           ('already known', 9999, 42, 0), ('a movie', 5002, NULL, 1), ('not mapped', NULL, NULL, 0)"""
    )
    expected = {}
    for i in tmdb_ids:
        ids = sandbox_tmdb.external_ids(seed, "tv", i)
        expected[f"show {i}"] = ids["tvdb_id"] if ids else None
    # The sandbox's data covers the three cases: an id, no id, and no such show on TMDB.
    assert any(v is None for v in expected.values()) and any(expected.values())
    assert any(sandbox_tmdb.external_ids(seed, "tv", i) is None for i in tmdb_ids)
    expected |= {"already known": 42, "a movie": None, "not mapped": None}

    rows = await run_twice(db_pool, PopulateTvDbIdsMigration(upstreams.tmdb), "tv_shows")
    assert {r["name"]: r["tvdb_id"] for r in rows["tv_shows"]} == expected
    assert upstreams.sandbox.requests["/tmdb/3/movie/5002/external_ids"] == 2
    assert upstreams.sandbox.requests["/tmdb/3/tv/9999/external_ids"] == 0


@pytest.mark.parametrize(
    ("migration", "table"),
    [
        (SetCreatedDateAndUpdatedDateEpisodesMigration(), "episodes"),
        (SetCreatedDateAndUpdatedDateSubtitlesMigration(), "subtitles"),
    ],
)
async def test_created_at_takes_the_discovery_date(
    db_pool: asyncpg.Pool, migration: OneTimeMigration, table: str
) -> None:
    show = await db_pool.fetchval("INSERT INTO tv_shows (name) VALUES ('s') RETURNING id")
    # Sparse ids over several 10,000-id windows; every third row is already right.
    await db_pool.execute(
        """INSERT INTO episodes (id, tv_show_id, season, number, title, discovered, created_at,
                                 updated_at)
           SELECT g * 7, $1, 1, g, 'e', timestamptz '2020-01-01' + g * interval '1 hour',
                  CASE WHEN g % 3 = 0 THEN timestamptz '2020-01-01' + g * interval '1 hour'
                       ELSE now() END,
                  timestamptz '2021-06-01'
           FROM generate_series(1, 4000) AS g""",
        show,
    )
    await db_pool.execute(
        """INSERT INTO subtitles (id, episode_id, scene, version, completed, completion_pct,
                                  hearing_impaired, corrected, download_uri, language, discovered,
                                  created_at, updated_at)
           SELECT e.id * 3, e.id, 'x', 1, true, 100, false, false, '/updated/1/' || e.id || '/1',
                  'English', e.discovered,
                  CASE WHEN e.number % 3 = 0 THEN e.discovered ELSE timestamptz '-infinity' END,
                  timestamptz '2021-06-01'
           FROM episodes e""",
    )
    before = {r["id"]: r for r in await snapshot(db_pool, table)}
    rows = await run_twice(db_pool, migration, "episodes", "subtitles")
    after = {r["id"]: r for r in rows[table]}
    assert all(r["created_at"] == r["discovered"] for r in after.values())
    touched = {i for i, r in before.items() if r["created_at"] != r["discovered"]}
    assert len(touched) == 2667
    for i, row in after.items():
        if i in touched:
            assert row["updated_at"] > before[i]["updated_at"]
        else:
            assert row == before[i], "a row that was already right is left alone"


async def test_clean_up_inbox_users_empties_inboxes_and_resets_counters(
    db_pool: asyncpg.Pool, upstreams: Upstreams
) -> None:
    cookies = [f"session=user{i}" for i in range(60)]
    await db_pool.executemany(
        """INSERT INTO addicted_user_credentials (cookie, usage, download_usage,
                                                  download_exceeded_date, last_usage)
           VALUES ($1, $2, $3, CASE WHEN $4 THEN now() END, now())""",
        [(c, i * 3 % 7, i % 5, i % 4 == 0) for i, c in enumerate(cookies)],
    )
    rows = await run_twice(
        db_pool, CleanUpInboxUsersMigration(upstreams.addic7ed), "addicted_user_credentials"
    )
    assert len(rows["addicted_user_credentials"]) == 60
    for row in rows["addicted_user_credentials"]:
        assert (row["usage"], row["download_usage"], row["download_exceeded_date"]) == (0, 0, None)
        assert row["last_usage"] is not None, "only the counters and the mark are reset"
    assert upstreams.sandbox.inbox_cleared == {c: 2 for c in cookies}


class RefusingInbox:
    async def clear_inbox(self, cookie: str) -> bool:
        return cookie != "session=stubborn"


async def test_a_refused_inbox_is_logged_and_the_account_still_reset(
    db_pool: asyncpg.Pool,
) -> None:
    await db_pool.execute(
        """INSERT INTO addicted_user_credentials (cookie, usage, download_exceeded_date)
           VALUES ('session=stubborn', 9, now()), ('session=fine', 4, NULL)"""
    )
    report = await run_pending(db_pool, [CleanUpInboxUsersMigration(RefusingInbox())])
    assert not report.failed
    assert await db_pool.fetchval(
        "SELECT bool_and(usage = 0 AND download_exceeded_date IS NULL) FROM addicted_user_credentials"
    )


async def test_remove_old_check_completed_job(db_pool: asyncpg.Pool) -> None:
    await db_pool.execute(
        """INSERT INTO jobs.recurring (name, last_fire) VALUES
           ('CheckCompletedTmdbJob', now()), ('check_completed_tmdb_completed', now())"""
    )
    await db_pool.execute(
        """INSERT INTO jobs.jobs (name, queue, state, max_attempts, finished_at) VALUES
           ('CheckCompletedTmdbJob', 'default', 'ready', 11, NULL),
           ('CheckCompletedTmdbJob', 'default', 'scheduled', 11, NULL),
           ('CheckCompletedTmdbJob', 'default', 'succeeded', 11, now()),
           ('check_completed_tmdb', 'default', 'ready', 11, NULL)"""
    )
    rows = await run_twice(db_pool, RemoveOldCheckCompletedJobMigration(), "jobs.jobs")
    assert [r["state"] for r in rows["jobs.jobs"]] == ["deleted", "deleted", "succeeded", "ready"]
    names = [r["name"] for r in await db_pool.fetch("SELECT name FROM jobs.recurring")]
    assert names == ["check_completed_tmdb_completed"]


async def test_all_five_run_in_date_order_on_an_empty_catalogue(
    db_pool: asyncpg.Pool, upstreams: Upstreams
) -> None:
    migrations = all_migrations(upstreams)
    report = await run_pending(db_pool, migrations)
    assert not report.failed, report
    assert [o.key for o in report.ran] == [
        "2023-2-29_PopulateTvDbIdsMigration",
        "2023-9-16_SetCreatedDateAndUpdatedDateEpisodesMigration",
        "2023-9-16_SetCreatedDateAndUpdatedDateSubtitlesMigration",
        "2024-8-14_CleanUpInboxUsersMigration",
        "2025-1-29_RemoveOldCheckCompletedJobMigration",
    ]
    assert (await run_pending(db_pool, all_migrations(upstreams))).ran == []


async def test_populate_tvdb_ids_without_tmdb_fails_and_waits_for_the_next_start(
    db_pool: asyncpg.Pool,
) -> None:
    # Nothing to fill: no TMDB needed, and the migration is done for good.
    empty = await run_pending(db_pool, [PopulateTvDbIdsMigration(None)])
    assert not empty.failed and [o.key for o in empty.ran] == ["2023-2-29_PopulateTvDbIdsMigration"]
    await db_pool.execute("DELETE FROM onetime_migrations")
    await db_pool.execute("INSERT INTO tv_shows (name, tmdb_id) VALUES ('s', 5000)")
    report = await run_pending(db_pool, [PopulateTvDbIdsMigration(None)])
    [failed] = report.failed
    assert (
        failed.error is not None
        and "1 shows need a TvDB id but no TMDB client is configured" in failed.error
    )
