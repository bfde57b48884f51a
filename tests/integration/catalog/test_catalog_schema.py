"""The catalogue schema (migration 002): generated ids, the updated_at trigger, unique indexes and
cascades of spec 9.1."""

from __future__ import annotations

import asyncpg
import pytest


async def _show(pool: asyncpg.Pool, name: str = "Show") -> int:
    return int(await pool.fetchval("INSERT INTO tv_shows (name) VALUES ($1) RETURNING id", name))


async def _tree(pool: asyncpg.Pool) -> int:
    """A show with one season, episode, subtitle and both external ids."""
    show_id = await _show(pool)
    await pool.execute("INSERT INTO seasons (tv_show_id, number) VALUES ($1, 1)", show_id)
    episode_id = await pool.fetchval(
        "INSERT INTO episodes (tv_show_id, season, number, title) VALUES ($1, 1, 1, 'Pilot') RETURNING id",
        show_id,
    )
    await pool.execute(
        """INSERT INTO subtitles (episode_id, scene, version, completed, completion_pct,
               hearing_impaired, corrected, download_uri, language, external_id)
           VALUES ($1, 'NTb', 1, true, 100, false, false, '/updated/1/2/1', 'English', '/updated/1/2/1')""",
        episode_id,
    )
    await pool.execute(
        "INSERT INTO show_external_ids (tv_show_id, source, external_id) VALUES ($1, 0, '77')",
        show_id,
    )
    await pool.execute(
        "INSERT INTO episode_external_ids (episode_id, source, external_id) VALUES ($1, 0, '2')",
        episode_id,
    )
    return show_id


async def test_defaults_match_the_original(db_pool: asyncpg.Pool) -> None:
    await _tree(db_pool)
    show = await db_pool.fetchrow("SELECT * FROM tv_shows")
    assert show is not None
    assert show["unique_id"] is not None and show["external_id"] == 0
    assert (show["type"], show["source"], show["priority"], show["is_completed"]) == (
        0,
        0,
        0,
        False,
    )
    subtitle = await db_pool.fetchrow("SELECT * FROM subtitles")
    assert subtitle is not None
    assert subtitle["unique_id"] is not None and subtitle["download_count"] == 0
    assert (subtitle["qualities"], subtitle["hd"], subtitle["source"]) == (0, False, 0)
    credential = await db_pool.fetchrow(
        "INSERT INTO addicted_user_credentials (cookie) VALUES ('c') RETURNING *"
    )
    assert credential is not None and (credential["usage"], credential["download_usage"]) == (0, 0)


async def test_updated_at_follows_every_update(db_pool: asyncpg.Pool) -> None:
    show_id = await _tree(db_pool)
    tables = (
        "tv_shows",
        "seasons",
        "episodes",
        "subtitles",
        "show_external_ids",
        "episode_external_ids",
    )
    before = {t: await db_pool.fetchval(f"SELECT updated_at FROM {t}") for t in tables}
    async with db_pool.acquire() as conn, conn.transaction():
        # now() is the transaction start: a new transaction gives a later stamp.
        await conn.execute("UPDATE tv_shows SET name = 'Renamed' WHERE id = $1", show_id)
        for table in tables[1:]:
            await conn.execute(f"UPDATE {table} SET created_at = created_at")
    after = {t: await db_pool.fetchval(f"SELECT updated_at FROM {t}") for t in tables}
    assert all(after[t] > before[t] for t in tables)


async def test_deleting_a_show_cascades_to_everything_below(db_pool: asyncpg.Pool) -> None:
    show_id = await _tree(db_pool)
    other = await _tree_other(db_pool)
    await db_pool.execute("DELETE FROM tv_shows WHERE id = $1", show_id)
    for table in ("seasons", "episodes", "subtitles", "show_external_ids", "episode_external_ids"):
        assert await db_pool.fetchval(f"SELECT count(*) FROM {table}") == 1, table
    assert await db_pool.fetchval("SELECT count(*) FROM tv_shows") == 1
    assert other


async def _tree_other(pool: asyncpg.Pool) -> int:
    show_id = await _show(pool, "Other")
    await pool.execute("INSERT INTO seasons (tv_show_id, number) VALUES ($1, 1)", show_id)
    episode_id = await pool.fetchval(
        "INSERT INTO episodes (tv_show_id, season, number, title) VALUES ($1, 1, 1, 'x') RETURNING id",
        show_id,
    )
    await pool.execute(
        """INSERT INTO subtitles (episode_id, scene, version, completed, completion_pct,
               hearing_impaired, corrected, download_uri, language, external_id)
           VALUES ($1, 'x', 1, true, 100, false, false, '/o', 'English', '/o')""",
        episode_id,
    )
    await pool.execute(
        "INSERT INTO show_external_ids (tv_show_id, source, external_id) VALUES ($1, 0, '78')",
        show_id,
    )
    await pool.execute(
        "INSERT INTO episode_external_ids (episode_id, source, external_id) VALUES ($1, 0, '3')",
        episode_id,
    )
    return show_id


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO seasons (tv_show_id, number) VALUES ($1, 1)",
        "INSERT INTO episodes (tv_show_id, season, number, title) VALUES ($1, 1, 1, 'dup')",
        "INSERT INTO show_external_ids (tv_show_id, source, external_id) VALUES ($1, 0, '99')",
        """INSERT INTO show_external_ids (tv_show_id, source, external_id)
           SELECT id, 0, '77' FROM tv_shows WHERE name = 'Spare'""",
        """INSERT INTO subtitles (episode_id, scene, version, completed, completion_pct,
               hearing_impaired, corrected, download_uri, language, external_id)
           SELECT id, 'x', 1, true, 100, false, false, '/updated/1/2/1', 'English', 'other'
           FROM episodes WHERE tv_show_id = $1""",
        """INSERT INTO subtitles (episode_id, scene, version, completed, completion_pct,
               hearing_impaired, corrected, download_uri, language, external_id)
           SELECT id, 'x', 1, true, 100, false, false, '/another', 'English', '/updated/1/2/1'
           FROM episodes WHERE tv_show_id = $1""",
        """INSERT INTO episode_external_ids (episode_id, source, external_id)
           SELECT id, 0, '5' FROM episodes WHERE tv_show_id = $1""",
        "INSERT INTO addicted_user_credentials (cookie) VALUES ('c'), ('c')",
    ],
)
async def test_unique_indexes_of_the_original(db_pool: asyncpg.Pool, statement: str) -> None:
    show_id = await _tree(db_pool)
    await _show(db_pool, "Spare")
    with pytest.raises(asyncpg.UniqueViolationError):
        await db_pool.execute(statement, *([show_id] if "$1" in statement else []))
