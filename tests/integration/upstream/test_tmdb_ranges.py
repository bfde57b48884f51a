"""TMDB ids that PostgreSQL's int columns cannot hold never leave the TMDB client: a search
result with one is skipped, details with one are None, such a TVDB id is None. The sandbox TMDB
answers "hostile ids" with an id of 99,999,999,999 and TV show 4242 with such a TVDB id.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import structlog

from addicted_jobs.catalog.tmdb_match import try_resolve_show
from addicted_jobs.sandbox import Sandbox
from addicted_jobs.upstream.tmdb import TmdbClient
from tests.support.catalogue import TMDB_FAST

HUGE = 99_999_999_999


@pytest.fixture
async def tmdb() -> AsyncIterator[TmdbClient]:
    async with Sandbox(shows=5) as box:
        async with TmdbClient(box.tmdb_url, box.tmdb_api_key, **TMDB_FAST) as client:
            yield client


async def test_unfit_ids_are_skipped_or_none(tmdb: TmdbClient) -> None:
    with structlog.testing.capture_logs() as logs:
        found = [r.id async for r in tmdb.search_tv("Hostile Ids")]
        details = await tmdb.get_show(HUGE)
        ids = await tmdb.get_show_external_ids(4242)
        by_imdb = await tmdb.find_by_imdb(f"tt{HUGE * 10 + 1}")
    assert found == [4242]
    assert details is None
    assert ids is not None and ids.id == 4242 and ids.tvdb_id is None and ids.imdb_id
    assert by_imdb is not None and by_imdb.tv_results == ()
    warned = [
        (e["what"], e["value"]) for e in logs if e["event"] == "tmdb id out of range, ignored"
    ]
    assert warned == [
        ("search result id", HUGE),
        ("tv id", HUGE),
        ("tvdb id", HUGE),
        ("tv id", HUGE),
    ]
    # Sane ids pass untouched.
    assert (await tmdb.get_show(1419)) is not None


async def test_the_mapper_resolves_past_the_unfit_result(tmdb: TmdbClient) -> None:
    resolved = await try_resolve_show(tmdb, "Hostile Ids")
    assert resolved is not None
    assert (resolved.tmdb_id, resolved.tvdb_id) == (4242, None)
