"""The upsert rules of spec 9.4 against PostgreSQL: re-scrapes through the sandbox over HTTP
never overwrite protected columns, refresh the others, keep vanished rows, keep seasons
insert-only, and move external ids without stealing another episode's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from addicted_jobs.catalog.episodes import upsert_episodes
from addicted_jobs.catalog.shows import get_show
from addicted_jobs.upstream.models import ParsedEpisode, ParsedSubtitle
from tests.support.catalogue import CatalogueEnv, catalogue_env

SHOW = 5  # sandbox show with seasons 1-5
PROTECTED = (
    "storage_path",
    "stored_at",
    "download_count",
    "scene",
    "qualities",
    "release",
    "unique_id",
    "discovered",
    "source",
    "external_id",
    "created_at",
)
REFRESHED = (
    "episode_id",
    "version",
    "completed",
    "completion_pct",
    "hearing_impaired",
    "corrected",
    "language",
    "language_iso_code",
)


@pytest.fixture
async def env(db_pool: asyncpg.Pool) -> AsyncIterator[CatalogueEnv]:
    async with catalogue_env(db_pool, with_tmdb=False) as env:
        yield env


async def _scraped(env: CatalogueEnv) -> int:
    show_id = await env.add_show(SHOW)
    await env.resources.refresher.refresh_show(show_id)
    return show_id


async def _rescrape(env: CatalogueEnv, show_id: int) -> None:
    await env.pool.execute(
        "UPDATE seasons SET last_refreshed = NULL WHERE tv_show_id = $1", show_id
    )
    result = await env.resources.refresher.refresh_show(show_id)
    assert result is not None and sorted(result.refreshed) == [1, 2, 3, 4, 5]


async def _rows(env: CatalogueEnv, table: str) -> dict[Any, dict[str, Any]]:
    rows = await env.pool.fetch(f"SELECT * FROM {table} ORDER BY id")
    return {r["id"]: dict(r) for r in rows}


async def test_a_rescrape_never_overwrites_protected_columns(env: CatalogueEnv) -> None:
    show_id = await _scraped(env)
    await env.pool.execute(
        """UPDATE subtitles SET storage_path = 'stored/' || id || '.srt', stored_at = now(),
               download_count = id * 3, scene = 'LOCAL-' || id, qualities = 16,
               release = 'release-' || id, external_id = 'ext-' || id"""
    )
    before = await _rows(env, "subtitles")
    await _rescrape(env, show_id)
    after = await _rows(env, "subtitles")
    assert after.keys() == before.keys()
    for row_id, row in before.items():
        assert {c: after[row_id][c] for c in PROTECTED} == {c: row[c] for c in PROTECTED}


async def test_a_rescrape_refreshes_what_upstream_owns(env: CatalogueEnv) -> None:
    show_id = await _scraped(env)
    upstream = await _rows(env, "subtitles")
    titles = {r["id"]: r["title"] for r in await env.pool.fetch("SELECT id, title FROM episodes")}
    other = min(titles)
    await env.pool.execute(
        """UPDATE subtitles SET episode_id = $1, version = version + 50, completed = NOT completed,
               completion_pct = 1.5, hearing_impaired = NOT hearing_impaired,
               corrected = NOT corrected, language = 'Tampered', language_iso_code = 'xx'""",
        other,
    )
    await env.pool.execute("UPDATE episodes SET title = 'Local title', discovered = '2001-01-01'")
    await _rescrape(env, show_id)
    after = await _rows(env, "subtitles")
    for row_id, row in upstream.items():
        assert {c: after[row_id][c] for c in REFRESHED} == {c: row[c] for c in REFRESHED}
    episodes = await env.pool.fetch("SELECT id, title, discovered FROM episodes")
    assert {r["id"]: r["title"] for r in episodes} == titles
    assert all(r["discovered"].year == 2001 for r in episodes)  # Discovered is never rewritten


async def test_rows_missing_from_a_scrape_are_kept_and_nothing_is_duplicated(
    env: CatalogueEnv,
) -> None:
    show_id = await _scraped(env)
    episode_id = await env.pool.fetchval("SELECT min(id) FROM episodes")
    await env.pool.execute(
        """INSERT INTO subtitles (episode_id, scene, version, completed, completion_pct,
               hearing_impaired, corrected, download_uri, language, external_id)
           VALUES ($1, 'GONE', 1, true, 100, false, false, '/updated/1/1/1', 'English', 'gone')""",
        episode_id,
    )
    counts = [await env.count(t) for t in ("episodes", "subtitles", "episode_external_ids")]
    await _rescrape(env, show_id)
    assert [await env.count(t) for t in ("episodes", "subtitles", "episode_external_ids")] == counts
    assert await env.count("subtitles", "download_uri = '/updated/1/1/1'") == 1


async def test_unchanged_rows_are_not_rewritten(env: CatalogueEnv) -> None:
    show_id = await _scraped(env)
    stamps = await env.pool.fetch(
        "SELECT updated_at FROM subtitles UNION ALL SELECT updated_at FROM episodes"
    )
    await _rescrape(env, show_id)
    again = await env.pool.fetch(
        "SELECT updated_at FROM subtitles UNION ALL SELECT updated_at FROM episodes"
    )
    assert stamps == again


async def test_seasons_are_insert_only(env: CatalogueEnv) -> None:
    show_id = await env.add_show(SHOW)
    await env.pool.execute(
        "INSERT INTO seasons (tv_show_id, number, last_refreshed) VALUES ($1, 42, now()), ($1, 2, now())",
        show_id,
    )
    kept = await env.pool.fetchval(
        "SELECT id FROM seasons WHERE tv_show_id = $1 AND number = 2", show_id
    )
    show = await get_show(env.pool, show_id)
    assert show is not None
    assert await env.resources.refresher.refresh_seasons(show)
    assert await env.season_numbers(show_id) == [1, 2, 3, 4, 5, 42]
    # The existing row is the same row, its refresh stamp untouched.
    row = await env.pool.fetchrow("SELECT id, last_refreshed FROM seasons WHERE number = 2")
    assert row is not None and row["id"] == kept and row["last_refreshed"] is not None


def _episode(number: int, external_id: str, uri: str) -> ParsedEpisode:
    subtitle = ParsedSubtitle(
        scene="X", version=1, completed=True, completion_pct=100.0, hearing_impaired=False,
        corrected=False, qualities=0, download_uri=uri, language="English",
        language_code="en", episode_external_id=external_id,
    )  # fmt: skip
    return ParsedEpisode(1, number, f"E{number}", external_id, (subtitle,))


async def test_external_ids_move_but_are_never_stolen(env: CatalogueEnv) -> None:
    show_a = await env.add_show(1, "A")
    show_b = await env.add_show(3, "B")
    async with env.pool.acquire() as conn:
        await upsert_episodes(
            conn, show_a, [_episode(1, "100", "/a/1"), _episode(2, "200", "/a/2")]
        )
        await upsert_episodes(conn, show_b, [_episode(1, "300", "/b/1")])
        # Upstream gives A's first episode a new id: it moves.
        counts = await upsert_episodes(conn, show_a, [_episode(1, "101", "/a/1")])
        assert counts.id_conflicts == 0
        # Upstream claims B's id for A's second episode: A keeps its own, B keeps its id.
        counts = await upsert_episodes(conn, show_a, [_episode(2, "300", "/a/2")])
        assert counts.id_conflicts == 1
        # Blank ids are dropped; duplicates in one batch: the first occurrence wins.
        counts = await upsert_episodes(
            conn,
            show_a,
            [_episode(3, " ", "/a/3"), _episode(4, "400", "/a/4"), _episode(5, "400", "/a/5")],
        )
    rows = await env.pool.fetch(
        """SELECT e.tv_show_id, e.number, x.external_id FROM episodes e
           LEFT JOIN episode_external_ids x ON x.episode_id = e.id ORDER BY e.tv_show_id, e.number"""
    )
    assert [(r["tv_show_id"], r["number"], r["external_id"]) for r in rows] == [
        (show_a, 1, "101"),
        (show_a, 2, "200"),
        (show_a, 3, None),
        (show_a, 4, "400"),
        (show_a, 5, None),
        (show_b, 1, "300"),
    ]


async def test_a_season_is_written_in_one_statement(env: CatalogueEnv) -> None:
    show_id = await env.add_show(SHOW)
    season_id = await env.pool.fetchval(
        "INSERT INTO seasons (tv_show_id, number) VALUES ($1, 1) RETURNING id", show_id
    )
    episodes = await env.resources.addic7ed.get_season_episodes("cookie", SHOW, 1)
    statements: list[str] = []
    async with env.pool.acquire() as conn:
        conn.add_query_logger(lambda record: statements.append(record.query))
        counts = await upsert_episodes(conn, show_id, episodes, season_id)
    assert counts.episodes == len(episodes)
    assert counts.subtitles == sum(len(e.subtitles) for e in episodes)
    # asyncpg's type introspection and pool reset aside, one statement writes everything.
    ours = [q for q in statements if "pg_catalog" not in q and "jit" not in q and "RESET" not in q]
    assert len(ours) == 1 and "INSERT INTO subtitles" in ours[0]
    assert await env.count("episode_external_ids") == len(episodes)
    assert await env.count("seasons", "last_refreshed IS NOT NULL") == 1
