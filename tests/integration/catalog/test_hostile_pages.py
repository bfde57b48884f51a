"""Hostile cells on real-shaped pages never poison a show: the season list and season tables carry
a "²" option, numbers past PostgreSQL's int and broken rows; a whole-show refresh against
PostgreSQL still stores every readable season, episode and subtitle, and warns about the rest.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
import structlog

from tests.support.catalogue import CatalogueEnv, catalogue_env

SHOW = 5  # a sandbox show with several seasons


@pytest.fixture
async def env(db_pool: asyncpg.Pool) -> AsyncIterator[CatalogueEnv]:
    async with catalogue_env(db_pool, shows=20, with_tmdb=False) as env:
        yield env


async def _counts(env: CatalogueEnv, show_id: int) -> tuple[int, int]:
    episodes = await env.count("episodes", "tv_show_id = $1", show_id)
    subtitles = await env.count(
        "subtitles s JOIN episodes e ON e.id = s.episode_id", "e.tv_show_id = $1", show_id
    )
    return episodes, subtitles


async def test_a_show_with_hostile_cells_refreshes_everything_readable(env: CatalogueEnv) -> None:
    env.sandbox.hostile_cells = True
    catalogue = env.sandbox.catalogue
    seasons = catalogue.seasons(SHOW)
    assert len(seasons) > 1
    show_id = await env.add_show(SHOW)
    with structlog.testing.capture_logs() as logs:
        result = await env.resources.refresher.refresh_show(show_id)
    assert result is not None and sorted(result.refreshed) == seasons
    assert await env.season_numbers(show_id) == seasons
    episodes = [e for n in seasons for e in catalogue.episodes(SHOW, n) or ()]
    assert await _counts(env, show_id) == (len(episodes), sum(len(e.subtitles) for e in episodes))
    assert await env.count("episodes", "season > 1000 OR number > 1000") == 0

    skipped = [e for e in logs if e["event"] == "unreadable row skipped"]
    # The list: "²", 99999999999 and -1; every season table: five rows.
    on_list = [e for e in skipped if e["page"] == "ajax_getSeasons.php"]
    assert [(e["show"], e["row"], e["cell"]) for e in on_list] == [
        (SHOW, 1, "value"),
        (SHOW, 2, "value"),
        (SHOW, 3, "value"),
    ]
    assert "got '99999999999'" in on_list[1]["reason"]
    in_tables = [e for e in skipped if e["page"] == "ajax_loadShow.php"]
    assert len(in_tables) == 5 * len(seasons)
    first_season = sorted(
        ((e["row"], e["cell"]) for e in in_tables if e["season"] == seasons[0]),
    )
    assert first_season == [
        (1, "season"),
        (2, "episode"),
        (3, "download (version)"),
        (4, "status"),
        (5, "row"),
    ]
