"""A show refresh cut by kill -9 half-way completes after a restart, with no duplicate rows.

The daemon is tests/support/catalogue_runner.py in a subprocess; the sandbox runs in the
test process and serves it over loopback, slowly enough that the kill lands mid-refresh.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from addicted_jobs.sandbox import FaultConfig
from tests.support import wait_until
from tests.support.catalogue import CatalogueEnv, catalogue_env
from tests.support.engine import EngineFactory

ROOT = Path(__file__).resolve().parents[3]
SHOW = 1  # sandbox show with seasons 1-9


@pytest.fixture
async def env(db_pool: asyncpg.Pool) -> AsyncIterator[CatalogueEnv]:
    async with catalogue_env(db_pool, shows=20, with_tmdb=False) as env:
        yield env


def _readies(log: Path) -> int:
    return log.read_bytes().count(b"READY") if log.exists() else 0


async def _start_runner(dsn: str, env: CatalogueEnv, log: Path) -> asyncio.subprocess.Process:
    # Output goes to a file: a pipe nobody drains would block the runner once full.
    starts = _readies(log)
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.support.catalogue_runner",
            "--dsn",
            dsn,
            "--addic7ed",
            env.sandbox.addic7ed_url,
            cwd=ROOT,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def ready() -> bool:
        assert process.returncode is None, log.read_text()
        return _readies(log) > starts

    try:
        await wait_until(ready, timeout=20, message="the runner to start")
    except BaseException:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    return process


async def test_a_refresh_killed_mid_way_completes_after_restart_without_duplicates(
    env: CatalogueEnv, db_dsn: str, make_engine: EngineFactory, tmp_path: Path
) -> None:
    log = tmp_path / "runner.log"
    show_id = await env.add_show(SHOW)
    # Slow season pages: two at a time, 0.4 s each, nine seasons take about two seconds.
    env.sandbox.faults = FaultConfig(latency=0.4, paths=("/ajax_loadShow.php",))
    enqueuer = await make_engine(env.registry, start=False, concurrency={})
    job = await enqueuer.enqueue("refresh_single_show", {"show_id": show_id})
    runner = await _start_runner(db_dsn, env, log)
    try:

        async def some_seasons_done() -> bool:
            return await env.count("seasons", "last_refreshed IS NOT NULL") >= 2

        await wait_until(some_seasons_done, timeout=20, message="a partial refresh")
    finally:
        runner.send_signal(signal.SIGKILL)
        await runner.wait()
    assert await env.pool.fetchval("SELECT state FROM jobs.jobs WHERE id = $1", job.id) == "running"
    done_before = await env.count("seasons", "last_refreshed IS NOT NULL")
    assert 2 <= done_before < 9

    runner = await _start_runner(db_dsn, env, log)
    try:

        async def finished() -> bool:
            states = await env.pool.fetch("SELECT name, state FROM jobs.jobs ORDER BY id")
            return [tuple(s) for s in states] == [
                ("refresh_single_show", "succeeded"),
                ("cleanup_empty_seasons", "succeeded"),
            ]

        await wait_until(finished, timeout=30, message="the refresh and its cleanup")
    finally:
        runner.send_signal(signal.SIGTERM)
        await asyncio.wait_for(runner.wait(), timeout=15)

    catalogue = env.sandbox.catalogue
    expected = {n: catalogue.episodes(SHOW, n) or () for n in catalogue.seasons(SHOW)}
    assert await env.season_numbers(show_id) == sorted(expected)
    assert await env.count("seasons", "last_refreshed IS NULL") == 0
    assert await env.count("episodes") == sum(len(eps) for eps in expected.values())
    assert await env.count("episode_external_ids") == await env.count("episodes")
    uris = {s.href for eps in expected.values() for e in eps for s in e.subtitles}
    assert await env.count("subtitles") == len(uris)
    # Seasons committed before the kill were not fetched again; at most the two in flight were.
    fetches = Counter(season for _, season in env.season_fetches())
    assert set(fetches) == set(expected) and sum(fetches.values()) <= 9 + 2
