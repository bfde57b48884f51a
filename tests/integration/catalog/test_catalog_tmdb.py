"""The TMDB side of the catalogue (spec 1.5-1.8) against PostgreSQL and the sandbox TMDB."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import asyncpg
import pytest

from addicted_jobs.catalog import tmdb_sync
from addicted_jobs.catalog.shows import sync_show_list
from addicted_jobs.upstream.errors import UpstreamUnavailable
from addicted_jobs.upstream.tmdb import TmdbClient
from tests.support.catalogue import CatalogueEnv, catalogue_env


@pytest.fixture
async def env(db_pool: asyncpg.Pool) -> AsyncIterator[CatalogueEnv]:
    async with catalogue_env(db_pool, shows=120) as env:
        yield env


def _tmdb(env: CatalogueEnv) -> TmdbClient:
    assert env.resources.tmdb is not None
    return env.resources.tmdb


async def _add(pool: asyncpg.Pool, name: str, **columns: object) -> int:
    keys = ["name", *columns]
    marks = ", ".join(f"${i + 1}" for i in range(len(keys)))
    return int(
        await pool.fetchval(
            f"INSERT INTO tv_shows ({', '.join(keys)}) VALUES ({marks}) RETURNING id",
            name,
            *columns.values(),
        )
    )


async def _row(pool: asyncpg.Pool, show_id: int) -> asyncpg.Record:
    row = await pool.fetchrow("SELECT * FROM tv_shows WHERE id = $1", show_id)
    assert row is not None
    return row


async def test_map_show_tmdb_resolves_shows_then_movies_saving_by_fifty(
    env: CatalogueEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = env.resources
    await sync_show_list(env.pool, r.addic7ed, r.credentials, None)
    saves: list[int] = []
    original = tmdb_sync._save

    async def counting(pool: asyncpg.Pool, rows: Sequence[tmdb_sync.Mapping]) -> None:
        saves.append(len(rows))
        await original(pool, rows)

    monkeypatch.setattr(tmdb_sync, "_save", counting)
    result = await tmdb_sync.map_show_tmdb(env.pool, _tmdb(env))
    assert result.shows + result.movies + result.unresolved == 120
    assert result.movies >= 1 and result.shows > 100
    assert max(saves) == 50 and sum(saves) == result.shows + result.movies
    rows = await env.pool.fetch("SELECT name, tmdb_id, type, is_completed FROM tv_shows")
    by_name = {row["name"]: row for row in rows}
    assert by_name["Shameless (UK)"]["tmdb_id"] == 1906
    assert by_name["Castle (2009)"]["tmdb_id"] == 1419
    movie = by_name["Zzyzx Road Chronicles"]
    assert movie["type"] == 1 and movie["is_completed"] is True and movie["tmdb_id"]
    # Mapped shows are not looked at again.
    again = await tmdb_sync.map_show_tmdb(env.pool, _tmdb(env))
    assert again.shows == again.movies == 0


async def test_clean_duplicates_refits_the_show_without_the_qualifier(env: CatalogueEnv) -> None:
    pool = env.pool
    plain_who = await _add(pool, "Doctor Who", tmdb_id=57243)
    year_who = await _add(pool, "Doctor Who (2005)", tmdb_id=57243)
    us = await _add(pool, "Shameless (US)", tmdb_id=34307)
    plain = await _add(pool, "Shameless", tmdb_id=34307)
    trio = [await _add(pool, f"Top Gear {i}", tmdb_id=1032) for i in range(3)]
    fixed = await tmdb_sync.clean_duplicate_tmdb(pool, _tmdb(env))
    assert fixed == 2
    # Year rule: the other show may not be the 2005 series; the 1963 one is first.
    assert (await _row(pool, plain_who))["tmdb_id"] == 121
    assert (await _row(pool, year_who))["tmdb_id"] == 57243
    # Country rule: the other show may not be American.
    assert (await _row(pool, plain))["tmdb_id"] == 1906
    assert (await _row(pool, us))["tmdb_id"] == 34307
    # Groups of three are left alone, as in the original.
    assert [(await _row(pool, i))["tmdb_id"] for i in trio] == [1032] * 3


async def test_fetch_missing_tvdb_ids_uses_the_endpoint_of_the_type(env: CatalogueEnv) -> None:
    pool = env.pool
    show = await _add(pool, "Scrubs", tmdb_id=4556)
    known = await _add(pool, "Castle (2009)", tmdb_id=1419, tvdb_id=1)
    movie = await _add(pool, "Dune", tmdb_id=841, type=1)
    unmapped = await _add(pool, "Nothing")
    filled = await tmdb_sync.fetch_missing_tvdb_id(pool, _tmdb(env))
    assert filled == 1
    assert (await _row(pool, show))["tvdb_id"] == 342803
    assert (await _row(pool, known))["tvdb_id"] == 1
    assert (await _row(pool, movie))["tvdb_id"] is None  # TMDB has no TvDB id for movies
    assert (await _row(pool, unmapped))["tvdb_id"] is None
    assert len(env.sandbox.seen("/tmdb/3/movie/841/external_ids")) == 1


async def test_check_completed_flips_clears_and_reports_flipped_shows(env: CatalogueEnv) -> None:
    pool = env.pool
    refreshed = "now() - interval '1 hour'"
    ended = await _add(pool, "Doctor Who (2005)", tmdb_id=57243, tvdb_id=5)  # TMDB: Ended
    running = await _add(pool, "Top Gear", tmdb_id=1032)  # TMDB: Returning Series
    gone = await _add(pool, "Gone", tmdb_id=0, tvdb_id=9)  # TMDB: 404
    film = await _add(pool, "Dune", tmdb_id=841, type=1)  # movies are never checked
    done = await _add(pool, "Law & Order (USA)", tmdb_id=549, is_completed=True)  # Returning
    await pool.execute(f"UPDATE tv_shows SET last_season_refreshed = {refreshed}")
    batches: list[list[int]] = []

    async def on_flipped(ids: list[int]) -> None:
        batches.append(ids)

    result = await tmdb_sync.check_completed_tmdb(pool, _tmdb(env), False, on_flipped)
    assert (result.checked, result.flipped, result.unmapped) == (3, [ended], [gone])
    assert batches == [[ended]]
    row = await _row(pool, ended)
    assert row["is_completed"] is True and row["last_season_refreshed"] is None
    assert (await _row(pool, running))["last_season_refreshed"] is not None
    row = await _row(pool, gone)
    assert (row["tmdb_id"], row["tvdb_id"], row["is_completed"], row["last_season_refreshed"]) == (
        None,
        None,
        False,
        None,
    )
    assert (await _row(pool, film))["last_season_refreshed"] is not None
    result = await tmdb_sync.check_completed_tmdb(pool, _tmdb(env), True, on_flipped)
    assert result.flipped == [done] and (await _row(pool, done))["is_completed"] is False


async def test_a_tmdb_outage_never_reads_as_deleted_shows(env: CatalogueEnv) -> None:
    pool = env.pool
    kept = await _add(pool, "Doctor Who (2005)", tmdb_id=57243, tvdb_id=5)
    env.sandbox.faults.error_rate = 1.0
    env.sandbox.faults.paths = ("/tmdb/",)

    async def on_flipped(ids: list[int]) -> None:
        raise AssertionError("nothing may flip during an outage")

    with pytest.raises(UpstreamUnavailable):
        await tmdb_sync.check_completed_tmdb(pool, _tmdb(env), False, on_flipped)
    row = await _row(pool, kept)
    assert (row["tmdb_id"], row["tvdb_id"]) == (57243, 5)
