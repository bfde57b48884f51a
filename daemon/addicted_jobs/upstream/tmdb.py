"""TMDB v3 client: show and movie details, external ids, searches (paged) and IMDB lookups.

A non-2xx answer (after retries) or an unreadable body gives None and a warning, as in the
original. Which TMDB entry is which show is catalogue policy: addicted_jobs.catalog.tmdb_match.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import TYPE_CHECKING, Protocol, TypeVar

import pydantic
import structlog

from addicted_jobs import __version__
from addicted_jobs.settings import TmdbSettings
from addicted_jobs.upstream.errors import BodyTooLarge, UpstreamUnavailable
from addicted_jobs.upstream.resilience import (
    BreakerSettings,
    RetrySettings,
    Timeouts,
)
from addicted_jobs.upstream.session import DEFAULT_MAX_PAGE_BYTES, UpstreamSession

if TYPE_CHECKING:
    import httpx  # loaded with the first request (upstream/session.py)

    # The records load with the first answer read (~8 ms of dataclasses a daemon that asks TMDB
    # nothing never needs; tests/unit/upstream/test_lazy_imports.py).
    from addicted_jobs.upstream.models import (
        TmdbExternalIds,
        TmdbFindResult,
        TmdbMovieDetails,
        TmdbMovieResult,
        TmdbShowDetails,
        TmdbTvResult,
    )

__all__ = ["TmdbClient"]

log = structlog.get_logger(__name__)

UPSTREAM = "tmdb"
DEFAULT_BASE_URL = TmdbSettings().base_url
# Searches read at most this many pages, like the original.
MAX_PAGES = 3
# The original retried 5xx, 401, 402 and 403; 408 and 429 are TMDB's "slow down" answers.
RETRY_STATUSES = frozenset({401, 402, 403, 408, 429})
BREAKER_STATUSES = frozenset({401, 402, 403})

Params = dict[str, str | int]
INLINE_PARSE_BYTES = 64 * 1024
T = TypeVar("T")


class _Page(Protocol):
    @property
    def total_pages(self) -> int: ...


P = TypeVar("P", bound=_Page)


@functools.cache
def _adapter(record: type[T]) -> pydantic.TypeAdapter[T]:
    # Built on first use, once per record type: the six adapters took ~6 ms of the daemon's
    # start-up, before its first job, for calls that come minutes later if at all.
    return pydantic.TypeAdapter(record)


def _fits(tmdb_or_tvdb_id: int | None) -> bool:
    """An id the catalogue's `int` columns can hold (or none): anything else would fail the
    whole batch's write with a DataError on every retry.
    """
    from addicted_jobs.upstream.models import PG_INT_MAX  # loaded: an answer was read

    return tmdb_or_tvdb_id is None or 0 < tmdb_or_tvdb_id <= PG_INT_MAX


def _unfit(what: str, value: int | None) -> None:
    from addicted_jobs.upstream.models import PG_INT_MAX

    log.warning("tmdb id out of range, ignored", what=what, value=value, max=PG_INT_MAX)


def is_bearer_token(api_key: str) -> bool:
    """True for a TMDB v4 read-access token (a JWT), which TMDB takes as `Authorization: Bearer`."""
    return api_key.startswith("eyJ") and api_key.count(".") == 2


class TmdbClient(UpstreamSession):
    """One httpx.AsyncClient for the client's lifetime; every request carries the API key."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str = "",
        *,
        requests_per_second: float = 0.0,
        timeouts: Timeouts,
        retry: RetrySettings,
        breaker: BreakerSettings,
        max_connections: int = 10,
        clock: Callable[[], float] = time.monotonic,
        max_page_bytes: int = DEFAULT_MAX_PAGE_BYTES,
    ) -> None:
        self._max_page_bytes = max_page_bytes
        headers = {"User-Agent": f"addicted-jobs/{__version__}", "Accept": "application/json"}
        # A v4 read-access token (a JWT, "eyJ...") goes in a header, where no URL-logging code
        # sees it; TMDB takes a v3 key only as the api_key query parameter, so that one stays in
        # the query and logs.py strips the query of every URL it writes.
        self._key_params: Params = {}
        if is_bearer_token(api_key):
            headers["Authorization"] = f"Bearer {api_key}"
        elif api_key:
            self._key_params = {"api_key": api_key}
        super().__init__(
            UPSTREAM,
            base_url,
            max_connections=max_connections,
            client_options={"headers": headers},
            retry=retry,
            breaker=breaker,
            requests_per_second=requests_per_second,
            timeouts=timeouts,
            retry_statuses=RETRY_STATUSES,
            failure_statuses=BREAKER_STATUSES,
            clock=clock,
        )

    async def _get(self, path: str, adapter: pydantic.TypeAdapter[T], params: Params) -> T | None:
        query: Params = {**params, **self._key_params}

        async def attempt() -> httpx.Response:
            request = (await self._ready()).build_request("GET", path, params=query)
            return await self._send_capped(request, self._max_page_bytes)

        # The request description leaves the query out: it holds the API key.
        try:
            response = await self._sender.send(attempt, f"GET {path}")
        except BodyTooLarge as exc:
            log.warning("tmdb answer refused", path=path, error=str(exc))
            return None
        if self._sender.is_retry_status(response.status_code):
            # Still failing after the retries: TMDB is down, which must not read as "no such
            # show" (check_completed_tmdb would clear the ids of every show it asked about).
            raise UpstreamUnavailable(
                UPSTREAM, f"GET {path}: HTTP {response.status_code} after every retry"
            )
        if not response.is_success:
            log.warning("tmdb request failed", path=path, status=response.status_code)
            return None
        try:
            if len(response.content) <= INLINE_PARSE_BYTES:
                return adapter.validate_json(response.content)
            # A capped but large answer: parsed in a thread, the event loop stays free.
            return await asyncio.to_thread(adapter.validate_json, response.content)
        except (ValueError, pydantic.ValidationError) as exc:
            log.warning("tmdb answer unreadable", path=path, error=str(exc)[:200])
            return None

    # Every id read below is range-checked (_fits): details with an unfit id are None, an unfit
    # TVDB id is None, search and find results with an unfit id are skipped.

    async def get_show(self, tmdb_id: int) -> TmdbShowDetails | None:
        from addicted_jobs.upstream.models import TmdbShowDetails

        details = await self._get(f"tv/{tmdb_id}", _adapter(TmdbShowDetails), {})
        if details is not None and not _fits(details.id):
            _unfit("tv id", details.id)
            return None
        return details

    async def get_show_external_ids(self, tmdb_id: int) -> TmdbExternalIds | None:
        from addicted_jobs.upstream.models import TmdbExternalIds

        ids = await self._get(f"tv/{tmdb_id}/external_ids", _adapter(TmdbExternalIds), {})
        return _fit_ids(ids)

    async def get_movie(self, tmdb_id: int) -> TmdbMovieDetails | None:
        from addicted_jobs.upstream.models import TmdbMovieDetails

        details = await self._get(f"movie/{tmdb_id}", _adapter(TmdbMovieDetails), {})
        if details is not None and not _fits(details.id):
            _unfit("movie id", details.id)
            return None
        return details

    async def get_movie_external_ids(self, tmdb_id: int) -> TmdbExternalIds | None:
        from addicted_jobs.upstream.models import TmdbExternalIds

        ids = await self._get(f"movie/{tmdb_id}/external_ids", _adapter(TmdbExternalIds), {})
        return _fit_ids(ids)

    async def find_by_imdb(self, imdb_id: str) -> TmdbFindResult | None:
        from addicted_jobs.upstream.models import TmdbFindResult

        found = await self._get(
            f"find/{imdb_id}", _adapter(TmdbFindResult), {"external_source": "imdb_id"}
        )
        if found is None:
            return None
        return TmdbFindResult(
            tv_results=_fit_results(found.tv_results, "tv id"),
            movie_results=_fit_results(found.movie_results, "movie id"),
        )

    async def _pages(
        self, path: str, params: Params, adapter: pydantic.TypeAdapter[P]
    ) -> AsyncGenerator[P, None]:
        page = 1
        while True:
            body = await self._get(path, adapter, {**params, "page": page})
            if body is None:
                return
            yield body
            # The original tested the already-incremented page number against total_pages, so
            # with exactly two pages it never read page 2. Every page up to the limit is read.
            if page >= min(body.total_pages, MAX_PAGES):
                return
            page += 1

    async def search_tv(
        self, query: str, *, language: str = "en-US"
    ) -> AsyncGenerator[TmdbTvResult, None]:
        """TV results in TMDB's order, across up to MAX_PAGES pages, fetched as consumed."""
        from addicted_jobs.upstream.models import TmdbTvPage

        if not query.strip():
            return  # TMDB rejects an empty query
        params: Params = {"query": query, "language": language}
        # aclosing: a caller that stops early must not leave the page generator dangling.
        async with aclosing(self._pages("search/tv", params, _adapter(TmdbTvPage))) as pages:
            async for page in pages:
                for result in page.results:
                    if _fits(result.id):
                        yield result
                    else:
                        _unfit("search result id", result.id)

    async def search_movie(
        self, query: str, *, language: str = "en-US"
    ) -> AsyncGenerator[TmdbMovieResult, None]:
        from addicted_jobs.upstream.models import TmdbMoviePage

        if not query.strip():
            return
        params: Params = {"query": query, "language": language}
        async with aclosing(self._pages("search/movie", params, _adapter(TmdbMoviePage))) as pages:
            async for page in pages:
                for result in page.results:
                    if _fits(result.id):
                        yield result
                    else:
                        _unfit("search result id", result.id)


def _fit_ids(ids: TmdbExternalIds | None) -> TmdbExternalIds | None:
    if ids is None or _fits(ids.tvdb_id):
        return ids
    _unfit("tvdb id", ids.tvdb_id)
    return dataclasses.replace(ids, tvdb_id=None)


R = TypeVar("R", "TmdbTvResult", "TmdbMovieResult")


def _fit_results(results: tuple[R, ...], what: str) -> tuple[R, ...]:
    for result in results:
        if not _fits(result.id):
            _unfit(what, result.id)
    return tuple(r for r in results if _fits(r.id))
