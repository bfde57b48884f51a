"""Catalogue policy: find the TMDB entry for an Addic7ed show name (name cleaning, result filters,
resolvers).

The resolvers take anything shaped like TmdbClient (see TmdbLookup), so they can be tested or
reused with another client.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Protocol

from addicted_jobs.upstream.models import (
    ResolvedMovie,
    ResolvedShow,
    TmdbExternalIds,
    TmdbMovieDetails,
    TmdbMovieResult,
    TmdbShowDetails,
    TmdbTvResult,
)

# A whitespace, then "(" or "[", then greedily up to the last ")" or "]".
_QUALIFIER = re.compile(r"\s[\(\[].+[\)\]]", re.IGNORECASE)
_YEAR = re.compile(r"\((\d{4})\)")
_COUNTRY = re.compile(r"\(([A-Z]{2,3})\)")
# Addic7ed writes "(UK)" and "(USA)" where TMDB's origin_country says "GB" and "US".
_COUNTRY_ALIASES = {"UK": "GB", "USA": "US"}
_ENDED_STATUSES = frozenset({"ended", "canceled", "cancelled"})


class TmdbLookup(Protocol):
    def search_tv(self, query: str) -> AsyncGenerator[TmdbTvResult, None]: ...

    def search_movie(self, query: str) -> AsyncGenerator[TmdbMovieResult, None]: ...

    async def get_show(self, tmdb_id: int) -> TmdbShowDetails | None: ...

    async def get_show_external_ids(self, tmdb_id: int) -> TmdbExternalIds | None: ...

    async def get_movie(self, tmdb_id: int) -> TmdbMovieDetails | None: ...

    async def get_movie_external_ids(self, tmdb_id: int) -> TmdbExternalIds | None: ...


def clean_name(name: str) -> str:
    """The search query for a catalogue name: "Shameless (US)" -> "Shameless"."""
    cleaned = _QUALIFIER.sub("", name).replace("BBC ", "").replace("BBC:", "")
    # The original did not trim; "BBC: Sherlock" would search for " Sherlock".
    return cleaned.strip()


def _is_bbc(name: str) -> bool:
    return "BBC " in name or "BBC:" in name


def show_matches(name: str, result: TmdbTvResult) -> bool:
    """Whether a TV search result fits the qualifiers written in the catalogue name."""
    if _is_bbc(name) and "GB" not in result.origin_country:
        return False
    year = _YEAR.search(name)
    if year is not None:
        return (result.first_air_date or "").startswith(year.group(1))
    country = _COUNTRY.search(name)
    if country is not None:
        code = _COUNTRY_ALIASES.get(country.group(1), country.group(1))
        return code in result.origin_country
    return True


def movie_matches(name: str, result: TmdbMovieResult) -> bool:
    year = _YEAR.search(name)
    return year is None or (result.release_date or "").startswith(year.group(1))


def is_ended_status(status: str | None) -> bool:
    """Whether a TMDB show status means no new episodes will come.

    The original was inconsistent: the mapper checked "Ended" only while the completion check
    accepted "ended" and "canceled". One rule for both: ended or canceled, any case.
    """
    return status is not None and status.strip().lower() in _ENDED_STATUSES


async def try_resolve_show(client: TmdbLookup, name: str) -> ResolvedShow | None:
    """The first TV result passing the filters whose details load, with its TvDB id."""
    query = clean_name(name)
    if not query:
        return None
    async with aclosing(client.search_tv(query)) as results:
        async for result in results:
            if not show_matches(name, result):
                continue
            details = await client.get_show(result.id)
            if details is None:
                continue
            external = await client.get_show_external_ids(details.id)
            return ResolvedShow(
                tmdb_id=details.id,
                tvdb_id=external.tvdb_id if external is not None else None,
                is_ended=is_ended_status(details.status),
            )
    return None


async def try_resolve_movie(client: TmdbLookup, name: str) -> ResolvedMovie | None:
    """The first movie result passing the year filter whose details load."""
    query = clean_name(name)
    if not query:
        return None
    async with aclosing(client.search_movie(query)) as results:
        async for result in results:
            if not movie_matches(name, result):
                continue
            details = await client.get_movie(result.id)
            if details is None:
                continue
            external = await client.get_movie_external_ids(details.id)
            return ResolvedMovie(
                tmdb_id=details.id,
                tvdb_id=external.tvdb_id if external is not None else None,
            )
    return None
