"""Refresh gating (spec 3.3, 3.5) and the refreshers' try-locks, against PostgreSQL and the
sandbox Addic7ed over HTTP. Ages are written into the rows; upstream calls are counted.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from addicted_jobs.catalog.refresh import (
    SeasonSource,
    season_needs_episode_refresh,
    show_needs_season_refresh,
)
from addicted_jobs.catalog.seasons import Season
from addicted_jobs.catalog.shows import Show, get_show
from addicted_jobs.sandbox import FaultConfig
from addicted_jobs.settings import RefreshSettings
from addicted_jobs.upstream.models import ParsedEpisode
from tests.support.catalogue import CatalogueEnv, catalogue_env

H = timedelta(hours=1)
D = timedelta(days=1)
SEASONS_PAGE = "/ajax_getSeasons.php"
# Sandbox show 1 ("Shameless (US)") has seasons 1-9; show 5 has 1-5.
SHOW_9, SHOW_5 = 1, 5


@pytest.fixture
async def env(db_pool: asyncpg.Pool) -> AsyncIterator[CatalogueEnv]:
    async with catalogue_env(db_pool, shows=400, with_tmdb=False) as env:
        yield env


async def _show(env: CatalogueEnv, show_id: int) -> Show:
    show = await get_show(env.pool, show_id)
    assert show is not None
    return show


# ---- the season list (3.3) ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "completed", "due"),
    [
        (None, False, True),  # never refreshed
        (None, True, True),  # a completed show is still refreshed once
        (11 * H, False, False),
        (12 * H + timedelta(minutes=1), False, True),
        (400 * D, True, False),  # completed and refreshed once: never again
    ],
)
async def test_season_list_gating(
    env: CatalogueEnv, age: timedelta | None, completed: bool, due: bool
) -> None:
    show_id = await env.add_show(SHOW_5, is_completed=completed)
    await env.age_season_list(show_id, age)
    ran = await env.resources.refresher.refresh_seasons(await _show(env, show_id))
    assert ran is due
    assert env.upstream_calls(SEASONS_PAGE) == int(due)
    assert await env.season_numbers(show_id) == ([1, 2, 3, 4, 5] if due else [])


async def test_season_list_is_stamped_even_when_upstream_has_no_season(env: CatalogueEnv) -> None:
    empty = next(
        i for i in env.sandbox.catalogue.show_ids() if not env.sandbox.catalogue.seasons(i)
    )
    show_id = await env.add_show(empty)
    assert await env.resources.refresher.refresh_seasons(await _show(env, show_id))
    assert await env.season_numbers(show_id) == []
    assert (await _show(env, show_id)).last_season_refreshed is not None
    assert not await env.resources.refresher.refresh_seasons(await _show(env, show_id))


# ---- a season's episodes (3.5) ------------------------------------------------------------------


async def _seasons_ready(env: CatalogueEnv, addic7ed_id: int, completed: bool = False) -> int:
    """A show whose season list is known and fresh, every season fetched just now."""
    show_id = await env.add_show(addic7ed_id, is_completed=completed)
    await env.resources.refresher.refresh_show(show_id)
    env.sandbox.reset_counters()
    return show_id


@pytest.mark.parametrize(
    ("number", "age", "completed", "due"),
    [
        (5, None, False, True),  # never fetched
        (5, 2 * H + timedelta(minutes=59), False, False),  # latest season: 3 h
        (5, 3 * H + timedelta(seconds=5), False, True),
        (2, 23 * H, False, False),  # other seasons: 24 h
        (2, 24 * H + timedelta(seconds=5), False, True),
        (2, 89 * D, True, False),  # completed show: 90 days
        (5, 89 * D, True, False),
        (2, 90 * D + timedelta(seconds=5), True, True),
        (5, None, True, True),  # completed but never fetched
    ],
)
async def test_episode_gating(
    env: CatalogueEnv, number: int, age: timedelta | None, completed: bool, due: bool
) -> None:
    show_id = await _seasons_ready(env, SHOW_5, completed)
    await env.age_season(show_id, number, age)
    result = await env.resources.refresher.refresh_show(show_id)
    assert result is not None
    assert env.season_fetches() == ([(SHOW_5, number)] if due else [])
    assert result.refreshed == ([number] if due else [])
    assert env.upstream_calls(SEASONS_PAGE) == 0  # the list itself was fresh


def test_gating_boundaries_without_io() -> None:
    settings = RefreshSettings()
    now = datetime(2026, 1, 1, tzinfo=UTC)

    def show(last: datetime | None, completed: bool = False) -> Show:
        return Show(1, "s", None, None, completed, 0, last, 1)

    assert show_needs_season_refresh(show(now - 12 * H), settings, now)
    assert not show_needs_season_refresh(show(now - 12 * H + timedelta(seconds=1)), settings, now)
    latest = Season(1, 1, 3, now - 3 * H)
    assert season_needs_episode_refresh(show(None), latest, 3, settings, now)
    older = Season(2, 1, 2, now - 3 * H)
    assert not season_needs_episode_refresh(show(None), older, 3, settings, now)
    finished = Season(2, 1, 2, now - 90 * D)
    assert season_needs_episode_refresh(show(None, True), finished, 3, settings, now)


class PeakCounter:
    """Wraps the real client to see how many season pages are in flight at once."""

    def __init__(self, inner: SeasonSource) -> None:
        self.inner = inner
        self.running = 0
        self.peak = 0

    async def get_seasons(self, cookie: str, show_external_id: int) -> list[int]:
        return await self.inner.get_seasons(cookie, show_external_id)

    async def get_season_episodes(
        self, cookie: str, show_external_id: int, season: int
    ) -> list[ParsedEpisode]:
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            return await self.inner.get_season_episodes(cookie, show_external_id, season)
        finally:
            self.running -= 1


async def test_whole_show_refresh_goes_highest_season_first_two_at_a_time(
    env: CatalogueEnv,
) -> None:
    show_id = await env.add_show(SHOW_9)
    refresher = env.resources.refresher
    counter = refresher.addic7ed = PeakCounter(refresher.addic7ed)
    env.sandbox.faults = FaultConfig(latency=0.03, paths=("/ajax_loadShow.php",))
    result = await refresher.refresh_show(show_id)
    assert result is not None and sorted(result.refreshed) == list(range(1, 10))
    assert counter.peak == 2
    fetched = [season for _, season in env.season_fetches()]
    assert sorted(fetched[:2]) == [8, 9] and sorted(fetched) == list(range(1, 10))


async def test_concurrent_refreshes_of_one_show_fetch_each_season_once(env: CatalogueEnv) -> None:
    show_id = await env.add_show(SHOW_9)
    await env.resources.refresher.refresh_seasons(await _show(env, show_id))
    env.sandbox.faults = FaultConfig(latency=0.05, paths=("/ajax_loadShow.php",))
    await asyncio.gather(*(env.resources.refresher.refresh_show(show_id) for _ in range(3)))
    fetched = Counter(season for _, season in env.season_fetches())
    assert fetched == Counter(range(1, 10))
    assert await env.count("seasons", "last_refreshed IS NULL") == 0
