"""The catalogue jobs on the real engine, PostgreSQL and the sandbox over HTTP: the job table,
the continuation chains, fetch_subtitles' (show, season) dedup, and the cleanup.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from pydantic import ValidationError

from addicted_jobs.jobs import DEFAULT_RETRY
from addicted_jobs.jobs.engine import Engine
from addicted_jobs.sandbox import FaultConfig
from addicted_jobs.tasks.catalogue import CATALOGUE_DELAYS
from tests.support import wait_until
from tests.support.catalogue import CatalogueEnv, catalogue_env
from tests.support.engine import EngineFactory

QUEUES = {"default": 10, "fetch-subtitles": 10, "refresh-one-show": 6}


@pytest.fixture
async def env(db_pool: asyncpg.Pool) -> AsyncIterator[CatalogueEnv]:
    async with catalogue_env(db_pool, shows=20) as env:
        yield env


async def _engine(make_engine: EngineFactory, env: CatalogueEnv, start: bool = True) -> Engine:
    return await make_engine(env.registry, start=start, concurrency=QUEUES)


async def _jobs(pool: asyncpg.Pool, name: str | None = None) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT * FROM jobs.jobs WHERE $1::text IS NULL OR name = $1 ORDER BY id", name
    )
    return [dict(r) for r in rows]


async def _until_state(pool: asyncpg.Pool, job_id: int, *states: str) -> None:
    async def probe() -> bool:
        return await pool.fetchval("SELECT state FROM jobs.jobs WHERE id = $1", job_id) in states

    await wait_until(probe, timeout=15, message=f"job {job_id} in {states}")


def test_the_job_table_is_the_original_one(env: CatalogueEnv) -> None:
    specs = env.registry.specs
    table = {
        name: (
            s.queue,
            s.cap,
            s.unique_ttl if s.unique_key else None,
            s.timeout,
            s.lock_mode if s.lock_key else None,
        )
        for name, s in specs.items()
    }
    assert table == {
        "refresh_available_shows": ("default", None, None, None, None),
        "map_show_tmdb": ("default", 1, None, None, None),
        "clean_duplicate_tmdb": ("default", None, None, None, None),
        "fetch_missing_tvdb_id": ("default", None, None, None, None),
        "check_completed_tmdb": ("default", None, None, None, None),
        "refresh_single_show": ("refresh-one-show", 6, 7200.0, 600.0, "try"),
        "cleanup_empty_seasons": ("default", None, 86400.0, None, "wait"),
        "fetch_subtitles": ("fetch-subtitles", 10, 86400.0, 600.0, "try"),
    }
    for name in ("refresh_single_show", "fetch_subtitles"):
        retry = specs[name].retry
        assert (retry.retries, retry.delays, retry.on_exhausted) == (20, CATALOGUE_DELAYS, "delete")
    for name in set(specs) - {"refresh_single_show", "fetch_subtitles"}:
        assert specs[name].retry == DEFAULT_RETRY  # 10 retries, Hangfire's formula, then failed
    fetch = specs["fetch_subtitles"]
    args = fetch.parse({"show_id": 4, "season": 2, "episode": 7, "language": "pt-BR"})
    assert fetch.key_for(args) == "fetch_subtitles:4-2"
    assert fetch.lock_key is not None and fetch.lock_key(args) == "4-2"
    cleanup = specs["cleanup_empty_seasons"]
    assert (
        cleanup.key_for(cleanup.parse({"show_id": 4}))
        == "cleanup_empty_seasons:cleanup-empty-seasons:4"
    )


def test_fetch_subtitles_arguments_are_checked(env: CatalogueEnv) -> None:
    spec = env.registry.get("fetch_subtitles")
    with pytest.raises(ValidationError, match="unknown language"):
        spec.parse({"show_id": 1, "season": 1, "episode": 1, "language": "Elvish"})
    with pytest.raises(ValidationError, match="Extra inputs"):
        spec.parse({"show_id": 1, "season": 1, "episode": 1, "language": "en", "x": 1})
    parsed = spec.parse(
        {"show_id": 1, "season": 1, "episode": 1, "language": " fr ", "file_name": "a.mkv"}
    )
    assert parsed.model_dump() == {
        "show_id": 1,
        "season": 1,
        "episode": 1,
        "language": "fr",
        "file_name": "a.mkv",
    }


async def test_the_sync_chain_runs_map_then_dedupe_then_tvdb(
    env: CatalogueEnv, make_engine: EngineFactory
) -> None:
    engine = await _engine(make_engine, env)
    root = await engine.enqueue("refresh_available_shows")

    async def chain_done() -> bool:
        last = await _jobs(env.pool, "fetch_missing_tvdb_id")
        return bool(last) and last[0]["state"] == "succeeded"

    await wait_until(chain_done, timeout=30, message="the TMDB chain")
    jobs = {j["name"]: j for j in await _jobs(env.pool)}
    sync, mapping = jobs["refresh_available_shows"], jobs["map_show_tmdb"]
    dedupe, tvdb = jobs["clean_duplicate_tmdb"], jobs["fetch_missing_tvdb_id"]
    assert sync["id"] == root.id and sync["state"] == "succeeded"
    assert (dedupe["parent_id"], tvdb["parent_id"]) == (mapping["id"], dedupe["id"])
    assert mapping["started_at"] >= sync["started_at"]
    assert (
        mapping["finished_at"] <= dedupe["started_at"]
        and dedupe["finished_at"] <= tvdb["started_at"]
    )
    assert await env.count("tv_shows") == 20
    assert await env.count("tv_shows", "tmdb_id IS NULL") == 0


async def test_fetch_subtitles_collapses_episodes_and_languages_of_one_season(
    env: CatalogueEnv, make_engine: EngineFactory
) -> None:
    show_id = await env.add_show(5)
    engine = await _engine(make_engine, env, start=False)
    requests = [(1, "en"), (2, "fr"), (3, "pt-BR"), (1, "English"), (9, "de")]
    results = [
        await engine.enqueue(
            "fetch_subtitles",
            {"show_id": show_id, "season": 2, "episode": ep, "language": lang},
        )
        for ep, lang in requests
    ]
    assert (
        len({r.id for r in results}) == 1 and [r.created for r in results] == [True] + [False] * 4
    )
    other_season = await engine.enqueue(
        "fetch_subtitles", {"show_id": show_id, "season": 3, "episode": 1, "language": "en"}
    )
    assert other_season.created and other_season.id != results[0].id
    await engine.start()
    await _until_state(env.pool, results[0].id, "succeeded")
    await _until_state(env.pool, other_season.id, "succeeded")
    assert sorted(env.season_fetches()) == [(5, 2), (5, 3)]
    # Finished: the key is free again.
    again = await engine.enqueue(
        "fetch_subtitles", {"show_id": show_id, "season": 2, "episode": 1, "language": "en"}
    )
    assert again.created


async def test_fetch_subtitles_registers_its_cleanup_before_any_work(
    env: CatalogueEnv, make_engine: EngineFactory
) -> None:
    show_id = await env.add_show(5)
    env.sandbox.faults = FaultConfig(
        error_status=503, error_rate=1.0, paths=("/ajax_loadShow.php",)
    )
    engine = await _engine(make_engine, env)
    job = await engine.enqueue(
        "fetch_subtitles", {"show_id": show_id, "season": 5, "episode": 1, "language": "en"}
    )
    await _until_state(env.pool, job.id, "scheduled")  # failed, retry in 60 s
    [cleanup] = await _jobs(env.pool, "cleanup_empty_seasons")
    assert (cleanup["parent_id"], cleanup["state"]) == (job.id, "awaiting")
    row = await env.pool.fetchrow(
        "SELECT attempt, run_at - now() AS wait FROM jobs.jobs WHERE id = $1", job.id
    )
    assert row is not None and row["attempt"] == 1 and row["wait"] > timedelta(seconds=50)


async def test_cleanup_after_a_fetch_keeps_only_seasons_with_episodes(
    env: CatalogueEnv, make_engine: EngineFactory
) -> None:
    show_id = await env.add_show(5)
    neighbour = await env.add_show(7)
    await env.pool.execute(
        "INSERT INTO seasons (tv_show_id, number) VALUES ($1, 1), ($1, 2)", neighbour
    )
    engine = await _engine(make_engine, env)
    job = await engine.enqueue(
        "fetch_subtitles", {"show_id": show_id, "season": 5, "episode": 1, "language": "en"}
    )
    await _until_state(env.pool, job.id, "succeeded")
    [cleanup] = await _jobs(env.pool, "cleanup_empty_seasons")
    await _until_state(env.pool, cleanup["id"], "succeeded")
    # Seasons 1-4 came with the season list but got no episodes: the cleanup removed them.
    assert await env.season_numbers(show_id) == [5]
    assert await env.count("episodes", "season <> 5") == 0 and await env.count("episodes") > 0
    assert await env.season_numbers(neighbour) == [1, 2]  # another show's seasons are untouched


async def test_a_fetch_for_an_unknown_season_succeeds_and_still_cleans(
    env: CatalogueEnv, make_engine: EngineFactory
) -> None:
    show_id = await env.add_show(5)
    engine = await _engine(make_engine, env)
    job = await engine.enqueue(
        "fetch_subtitles", {"show_id": show_id, "season": 30, "episode": 1, "language": "en"}
    )
    await _until_state(env.pool, job.id, "succeeded")
    [cleanup] = await _jobs(env.pool, "cleanup_empty_seasons")
    await _until_state(env.pool, cleanup["id"], "succeeded")
    assert await env.season_numbers(show_id) == [] and env.season_fetches() == []


async def test_refresh_single_show_then_its_cleanup(
    env: CatalogueEnv, make_engine: EngineFactory
) -> None:
    show_id = await env.add_show(5)
    # A season Addic7ed no longer lists, fresh so it is not fetched, and without episodes.
    await env.pool.execute(
        "INSERT INTO seasons (tv_show_id, number, last_refreshed) VALUES ($1, 42, now())", show_id
    )
    engine = await _engine(make_engine, env, start=False)
    first = await engine.enqueue("refresh_single_show", {"show_id": show_id})
    assert not (await engine.enqueue("refresh_single_show", {"show_id": show_id})).created
    await engine.start()
    await _until_state(env.pool, first.id, "succeeded")
    [cleanup] = await _jobs(env.pool, "cleanup_empty_seasons")
    assert cleanup["parent_id"] == first.id
    await _until_state(env.pool, cleanup["id"], "succeeded")
    assert await env.season_numbers(show_id) == [1, 2, 3, 4, 5]  # 42 had no episodes
    assert await env.count("seasons", "last_refreshed IS NULL") == 0


async def test_a_busy_show_is_skipped_without_a_cleanup(
    env: CatalogueEnv, make_engine: EngineFactory
) -> None:
    show_id = await env.add_show(5)
    engine = await _engine(make_engine, env)
    async with engine.locks.try_lock(f"refresh_single_show:{show_id}") as got:
        assert got
        job = await engine.enqueue("refresh_single_show", {"show_id": show_id})
        await _until_state(env.pool, job.id, "succeeded")
    assert await _jobs(env.pool, "cleanup_empty_seasons") == [] and env.season_fetches() == []


async def test_check_completed_refreshes_the_flipped_shows(
    env: CatalogueEnv, make_engine: EngineFactory
) -> None:
    flipped = await env.add_show(3, tmdb_id=57243)  # Doctor Who (2005): TMDB says Ended
    steady = await env.add_show(23, tmdb_id=1032)  # Top Gear: Returning Series
    await env.pool.execute("UPDATE tv_shows SET last_season_refreshed = now()")
    engine = await _engine(make_engine, env)
    job = await engine.enqueue("check_completed_tmdb", {"completed": False})
    await _until_state(env.pool, job.id, "succeeded")
    [refresh] = await _jobs(env.pool, "refresh_single_show")
    assert refresh["args"] == {"show_id": flipped}
    await _until_state(env.pool, refresh["id"], "succeeded")
    assert await env.season_numbers(flipped) == [1] and await env.season_numbers(steady) == []
