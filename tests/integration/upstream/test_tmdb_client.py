"""TmdbClient and the show/movie mapper against the sandbox's TMDB over loopback."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator

import pytest
from structlog.testing import capture_logs

from addicted_jobs import __version__
from addicted_jobs.catalog.tmdb_match import (
    clean_name,
    is_ended_status,
    show_matches,
    try_resolve_movie,
    try_resolve_show,
)
from addicted_jobs.sandbox import FaultConfig, Sandbox
from addicted_jobs.settings import TmdbSettings
from addicted_jobs.upstream.errors import UpstreamUnavailable
from addicted_jobs.upstream.models import (
    TmdbExternalIds,
    TmdbMovieDetails,
    TmdbMovieResult,
    TmdbShowDetails,
    TmdbTvResult,
)
from addicted_jobs.upstream.resilience import BreakerSettings, RetrySettings, resilience_of
from addicted_jobs.upstream.tmdb import TmdbClient

KEY = "tmdb-test-key"
FAST = RetrySettings(max_retries=2, base_delay=0.001, max_delay=0.005)
SEARCH_TV = "/tmdb/3/search/tv"


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(shows=20, seed=8, tmdb_api_key=KEY) as box:
        yield box


@pytest.fixture
async def tmdb(sandbox: Sandbox) -> AsyncIterator[TmdbClient]:
    never_opens = BreakerSettings(min_calls=1_000_000, open_seconds=120.0)
    defaults = resilience_of(TmdbSettings())
    async with TmdbClient(
        sandbox.tmdb_url, KEY, **(defaults | {"retry": FAST, "breaker": never_opens})
    ) as client:
        yield client


def pages_read(sandbox: Sandbox) -> list[str]:
    return [r.query["page"] for r in sandbox.seen(SEARCH_TV)]


async def test_api_key_and_user_agent_are_sent(sandbox: Sandbox, tmdb: TmdbClient) -> None:
    details = await tmdb.get_show(1419)
    assert details == TmdbShowDetails(id=1419, name="Castle", status="Ended")
    [request] = sandbox.seen("/tmdb/3/tv/1419")
    assert request.query["api_key"] == KEY
    assert request.user_agent == f"addicted-jobs/{__version__}"


async def test_a_wrong_key_is_an_outage_not_a_missing_show(sandbox: Sandbox) -> None:
    # Fixed on purpose: the original answered None here, which check_completed_tmdb reads as
    # "deleted from TMDB" and clears the ids of every show it asks about.
    async with TmdbClient(
        sandbox.tmdb_url, "wrong", **(resilience_of(TmdbSettings()) | {"retry": FAST})
    ) as client:
        with pytest.raises(UpstreamUnavailable, match="HTTP 401 after every retry"):
            await client.get_show(1419)
    assert sandbox.requests["/tmdb/3/tv/1419"] == 3  # 401 is retried, as in the original


async def test_a_missing_show_is_none_with_a_warning(sandbox: Sandbox, tmdb: TmdbClient) -> None:
    with capture_logs() as logs:
        assert await tmdb.get_show(0) is None
    assert logs[-1]["event"] == "tmdb request failed" and logs[-1]["status"] == 404


async def test_paging_reads_page_two_of_two(sandbox: Sandbox, tmdb: TmdbClient) -> None:
    # Quirk fixed: with total_pages == 2 the original never fetched page 2.
    results = [result async for result in tmdb.search_tv("Castle")]
    assert pages_read(sandbox) == ["1", "2"]
    assert len(results) == 26
    assert results[-1] == TmdbTvResult(1419, "Castle", "2009-03-09", ("US",))


async def test_paging_stops_after_three_pages(sandbox: Sandbox, tmdb: TmdbClient) -> None:
    results = [result async for result in tmdb.search_tv("The Office")]
    assert pages_read(sandbox) == ["1", "2", "3"]  # of 5
    assert len(results) == 60


async def test_single_empty_and_blank_searches(sandbox: Sandbox, tmdb: TmdbClient) -> None:
    assert len([r async for r in tmdb.search_tv("Shameless")]) == 5
    assert [r async for r in tmdb.search_tv("Zzyzx Road Chronicles")] == []
    assert [r async for r in tmdb.search_tv("  ")] == []
    assert pages_read(sandbox) == ["1", "1"]
    assert sandbox.seen(SEARCH_TV)[0].query["language"] == "en-US"


async def test_a_failing_page_ends_the_search(sandbox: Sandbox, tmdb: TmdbClient) -> None:
    sandbox.faults = FaultConfig(fail_next=2)  # page 1 succeeds on its third attempt
    assert len([r async for r in tmdb.search_tv("Castle")]) == 26
    sandbox.faults = FaultConfig(error_rate=1.0, error_status=404, paths=(SEARCH_TV,))
    assert [r async for r in tmdb.search_tv("Castle")] == []


async def test_details_ids_movies_and_find(sandbox: Sandbox, tmdb: TmdbClient) -> None:
    ids = await tmdb.get_show_external_ids(34307)
    assert ids is not None and ids.id == 34307 and ids.imdb_id
    found = await tmdb.find_by_imdb(ids.imdb_id)
    assert found is not None and [r.id for r in found.tv_results] == [34307]
    assert await tmdb.get_movie(438631) == TmdbMovieDetails(438631, "Dune", "Released")
    movie_ids = await tmdb.get_movie_external_ids(438631)
    assert movie_ids is not None and movie_ids.tvdb_id is None
    dune = [m async for m in tmdb.search_movie("Dune")]
    assert dune == [
        TmdbMovieResult(841, "Dune", "1984-12-14"),
        TmdbMovieResult(438631, "Dune", "2021-09-15"),
    ]
    with capture_logs() as logs:
        assert await tmdb.get_show(-5) is None
    assert logs[0]["status"] == 404


async def test_exceptions_exhaust_into_unavailable(sandbox: Sandbox, tmdb: TmdbClient) -> None:
    sandbox.faults = FaultConfig(reset_next=3)
    with pytest.raises(UpstreamUnavailable, match="tmdb unavailable"):
        await tmdb.get_show(1419)
    assert await tmdb.get_show(1419) is not None


@pytest.mark.parametrize(
    ("name", "tmdb_id"),
    [
        ("Shameless (US)", 34307),
        ("Shameless (UK)", 1906),
        ("Doctor Who (2005)", 57243),
        ("Doctor Who (1963)", 121),
        ("BBC Planet Earth", 1044),
        ("Castle (2009)", 1419),  # only on page 2
        ("The Office (US)", 2316),
        ("The Office (UK)", 2996),
        ("Law & Order (USA)", 549),
        ("House of Cards (1990)", 37523),
        ("BBC: Top Gear", 1032),
    ],
)
async def test_resolve_show(tmdb: TmdbClient, name: str, tmdb_id: int) -> None:
    resolved = await try_resolve_show(tmdb, name)
    assert resolved is not None and resolved.tmdb_id == tmdb_id


async def test_resolve_show_details(sandbox: Sandbox, tmdb: TmdbClient) -> None:
    resolved = await try_resolve_show(tmdb, "The Office (US)")
    assert resolved is not None and resolved.is_ended
    ids = await tmdb.get_show_external_ids(2316)
    assert ids is not None and resolved.tvdb_id == ids.tvdb_id
    assert pages_read(sandbox) == ["1"]  # stopped at the first match, page 2 never asked
    running = await try_resolve_show(tmdb, "Law & Order (USA)")
    assert running is not None and not running.is_ended
    assert await try_resolve_show(tmdb, "Zzyzx Road Chronicles") is None
    assert await try_resolve_show(tmdb, "(2005)") is None


async def test_pairs_resolve_to_the_same_show(sandbox: Sandbox, tmdb: TmdbClient) -> None:
    for pair in (
        ("BBC Planet Earth", "Planet Earth"),
        ("Scrubs", "Scrubs (2001)"),
        ("BBC: Top Gear", "Top Gear"),
    ):
        first, second = [await try_resolve_show(tmdb, name) for name in pair]
        assert first is not None and first == second


async def test_sandbox_show_names_mostly_resolve(sandbox: Sandbox, tmdb: TmdbClient) -> None:
    names = [sandbox.catalogue.show_name(show_id) for show_id in sandbox.catalogue.show_ids()]
    resolved = [await try_resolve_show(tmdb, name) for name in names]
    assert sum(r is not None for r in resolved) >= len(names) - 3


async def test_resolve_movie(tmdb: TmdbClient) -> None:
    recent, first = (
        await try_resolve_movie(tmdb, "Dune (2021)"),
        await try_resolve_movie(tmdb, "Dune"),
    )
    assert recent is not None and recent.tmdb_id == 438631
    assert first is not None and first.tmdb_id == 841
    assert await try_resolve_movie(tmdb, "Dune (1999)") is None


class FakeTmdb:
    """In-memory TmdbLookup: the first matching result's details are missing."""

    def __init__(self) -> None:
        self.detail_calls: list[int] = []

    async def search_tv(self, query: str) -> AsyncGenerator[TmdbTvResult, None]:
        for tmdb_id in (1, 2, 3):
            yield TmdbTvResult(tmdb_id, query, "2010-01-01", ("GB",))

    async def search_movie(self, query: str) -> AsyncGenerator[TmdbMovieResult, None]:
        for tmdb_id in (7, 8):
            yield TmdbMovieResult(tmdb_id, query, "2010-01-01")

    async def get_show(self, tmdb_id: int) -> TmdbShowDetails | None:
        self.detail_calls.append(tmdb_id)
        return None if tmdb_id == 1 else TmdbShowDetails(tmdb_id, "x", "Canceled")

    async def get_show_external_ids(self, tmdb_id: int) -> TmdbExternalIds | None:
        return None

    async def get_movie(self, tmdb_id: int) -> TmdbMovieDetails | None:
        return None if tmdb_id == 7 else TmdbMovieDetails(tmdb_id)

    async def get_movie_external_ids(self, tmdb_id: int) -> TmdbExternalIds | None:
        return TmdbExternalIds(tmdb_id, tvdb_id=99)


async def test_mapper_skips_results_whose_details_do_not_load() -> None:
    fake = FakeTmdb()
    show = await try_resolve_show(fake, "BBC Something")
    assert show is not None and (show.tmdb_id, show.tvdb_id, show.is_ended) == (2, None, True)
    assert fake.detail_calls == [1, 2]
    movie = await try_resolve_movie(fake, "Something (2010)")
    assert movie is not None and (movie.tmdb_id, movie.tvdb_id) == (8, 99)


@pytest.mark.parametrize(
    ("name", "query"),
    [
        ("Shameless (US)", "Shameless"),
        ("Doctor Who (2005)", "Doctor Who"),
        ("BBC Planet Earth", "Planet Earth"),
        ("BBC: Sherlock", "Sherlock"),
        ("The Show [2019] (US)", "The Show"),
        ("Castle", "Castle"),
        ("(Untitled)", "(Untitled)"),  # no whitespace before the bracket: kept
    ],
)
def test_clean_name(name: str, query: str) -> None:
    assert clean_name(name) == query


@pytest.mark.parametrize(
    ("name", "date", "countries", "matches"),
    [
        ("Shameless (US)", "2011-01-09", ("US",), True),
        ("Shameless (US)", "2004-01-13", ("GB",), False),
        ("Shameless (UK)", "2004-01-13", ("GB",), True),
        ("Doctor Who (2005)", "2005-03-26", ("GB",), True),
        ("Doctor Who (2005)", None, ("GB",), False),
        ("BBC Planet Earth", "2006-03-05", ("US",), False),
        ("BBC: Planet Earth (2006)", "2006-03-05", ("GB",), True),
        ("Anything", None, (), True),
        ("Lower (us)", "2000", ("GB",), True),  # the country code is upper-case only
    ],
)
def test_show_filter(
    name: str, date: str | None, countries: tuple[str, ...], matches: bool
) -> None:
    assert show_matches(name, TmdbTvResult(1, "x", date, countries)) is matches


@pytest.mark.parametrize(
    ("status", "ended"),
    [
        ("Ended", True),
        ("ended", True),
        ("Canceled", True),
        ("Returning Series", False),
        (None, False),
    ],
)
def test_is_ended_status(status: str | None, ended: bool) -> None:
    assert is_ended_status(status) is ended
