"""The show-list sync (spec 1.4) and the show merge (spec 9.5), against PostgreSQL and the sandbox."""

from __future__ import annotations

import asyncpg
import pytest

from addicted_jobs.catalog.credentials import NoCredentials
from addicted_jobs.catalog.shows import ADDIC7ED, ShowToMerge, merge_shows, sync_show_list
from tests.support.catalogue import catalogue_env

SHOWS = 40


async def _names(pool: asyncpg.Pool) -> dict[str, str]:
    rows = await pool.fetch(
        """SELECT x.external_id, t.name FROM tv_shows t
           JOIN show_external_ids x ON x.tv_show_id = t.id AND x.source = 0"""
    )
    return {r["external_id"]: r["name"] for r in rows}


async def test_sync_adds_new_shows_only_and_never_renames(db_pool: asyncpg.Pool) -> None:
    async with catalogue_env(db_pool, shows=SHOWS, with_tmdb=False) as env:
        r = env.resources
        first = await sync_show_list(db_pool, r.addic7ed, r.credentials, None)
        assert (first.upstream, first.new, first.merge.created) == (SHOWS, SHOWS, SHOWS)
        names = await _names(db_pool)
        assert names["1"] == "Shameless (US)" and len(names) == SHOWS
        await db_pool.execute("UPDATE tv_shows SET name = 'Local name' WHERE name = 'Scrubs'")
        await db_pool.execute(
            "DELETE FROM tv_shows WHERE id IN (SELECT tv_show_id FROM show_external_ids WHERE external_id = '3')"
        )
        again = await sync_show_list(db_pool, r.addic7ed, r.credentials, None)
        assert (again.new, again.merge.created) == (1, 1)
        names = await _names(db_pool)
        assert names["15"] == "Local name" and names["3"] == "Doctor Who (2005)"
        shows = await db_pool.fetch("SELECT external_id, source, type, is_completed FROM tv_shows")
        assert {tuple(s) for s in shows} == {(0, ADDIC7ED, 0, False)}
        # One querying use per sync, counted on the credential.
        assert [c.usage for c in await r.credentials.all_credentials()] == [2]


async def test_sync_with_tmdb_resolves_new_shows_before_merging(db_pool: asyncpg.Pool) -> None:
    async with catalogue_env(db_pool, shows=20) as env:
        r = env.resources
        result = await sync_show_list(db_pool, r.addic7ed, r.credentials, r.tmdb)
        assert result.new == 20 and result.resolved == 19  # "Zzyzx Road Chronicles" is no show
        rows = await db_pool.fetch("SELECT name, tmdb_id, tvdb_id, is_completed FROM tv_shows")
        by_name = {row["name"]: row for row in rows}
        assert by_name["Shameless (US)"]["tmdb_id"] == 34307
        assert by_name["Castle (2009)"]["tmdb_id"] == 1419  # found on page 2
        assert by_name["Doctor Who (2005)"]["is_completed"] is True  # "Ended"
        assert by_name["Top Gear"]["is_completed"] is False  # "Returning Series"
        # "BBC: Top Gear" and "Top Gear" share TMDB 1032 but both keep their own show.
        assert await env.count("tv_shows", "tmdb_id = 1032") == 2


async def test_sync_without_credentials_names_the_fix(db_pool: asyncpg.Pool) -> None:
    async with catalogue_env(db_pool, shows=5, credential=False) as env:
        r = env.resources
        with pytest.raises(NoCredentials, match="credentials add COOKIE"):
            await sync_show_list(db_pool, r.addic7ed, r.credentials, None)
        assert env.upstream_calls("/ajax_getShows.php") == 0


async def test_merge_links_by_tvdb_then_tmdb_and_back_fills(db_pool: asyncpg.Pool) -> None:
    by_tvdb = await db_pool.fetchval(
        "INSERT INTO tv_shows (name, tvdb_id) VALUES ('A', 11) RETURNING id"
    )
    by_tmdb = await db_pool.fetchval(
        "INSERT INTO tv_shows (name, tmdb_id) VALUES ('B', 22) RETURNING id"
    )
    result = await merge_shows(
        db_pool,
        ADDIC7ED,
        [
            ShowToMerge("100", "A upstream", tvdb_id=11, tmdb_id=111),
            ShowToMerge("200", "B upstream", tvdb_id=222, tmdb_id=22),
            ShowToMerge("300", "C", tvdb_id=0, tmdb_id=None),
            ShowToMerge("300", "C again"),
        ],
    )
    assert (result.linked, result.created, result.existing) == (2, 1, 0)
    rows = await db_pool.fetch(
        """SELECT t.id, t.name, t.tvdb_id, t.tmdb_id, x.external_id FROM tv_shows t
           JOIN show_external_ids x ON x.tv_show_id = t.id ORDER BY x.external_id"""
    )
    assert [tuple(r) for r in rows] == [
        (by_tvdb, "A", 11, 111, "100"),  # linked: the local name stays, TMDB id back-filled
        (by_tmdb, "B", 222, 22, "200"),
        (rows[2]["id"], "C", None, None, "300"),  # created; the duplicate id in the batch ignored
    ]
    # A known provider id only back-fills what is missing.
    await db_pool.execute("UPDATE tv_shows SET tvdb_id = NULL WHERE id = $1", by_tmdb)
    again = await merge_shows(db_pool, ADDIC7ED, [ShowToMerge("200", "B", tvdb_id=5, tmdb_id=6)])
    assert (again.existing, again.created) == (1, 0)
    row = await db_pool.fetchrow("SELECT tvdb_id, tmdb_id FROM tv_shows WHERE id = $1", by_tmdb)
    assert row is not None and tuple(row) == (5, 22)


async def test_merge_never_steals_a_shows_provider_id(db_pool: asyncpg.Pool) -> None:
    await merge_shows(db_pool, ADDIC7ED, [ShowToMerge("1", "Scrubs", tmdb_id=4556)])
    # Same TMDB id, another Addic7ed id: the first show keeps its link, a new show is made.
    result = await merge_shows(
        db_pool,
        ADDIC7ED,
        [
            ShowToMerge("2", "Scrubs (2001)", tmdb_id=4556),
            ShowToMerge("3", "Scrubs!", tmdb_id=4556),
        ],
    )
    assert (result.linked, result.created) == (0, 2)
    rows = await db_pool.fetch(
        "SELECT x.external_id, t.name FROM show_external_ids x JOIN tv_shows t ON t.id = x.tv_show_id"
    )
    assert {r["external_id"]: r["name"] for r in rows} == {
        "1": "Scrubs",
        "2": "Scrubs (2001)",
        "3": "Scrubs!",
    }
