"""The TMDB side of the catalogue (spec 1.5-1.8): map shows to TMDB, split wrong duplicates,
back-fill TvDB ids, and follow TMDB's ended/returning status. TMDB calls run one at a time;
rows are saved in batches of 50 so a crash keeps most of the work.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass

import asyncpg
import structlog

from addicted_jobs.catalog.shows import MOVIE, SHOW
from addicted_jobs.catalog.tmdb_match import (
    TmdbLookup,
    clean_name,
    is_ended_status,
    try_resolve_movie,
    try_resolve_show,
)
from addicted_jobs.upstream.models import TmdbExternalIds, TmdbShowDetails, TmdbTvResult

log = structlog.get_logger(__name__)

BATCH = 50
_YEAR = re.compile(r"\((\d{4})\)")
_COUNTRY = re.compile(r"\(([A-Z]{2,3})\)")
_COUNTRY_CODES = {"UK": "GB", "USA": "US"}

# (id, tmdb_id, tvdb_id, is_completed, type or None to keep it); a TvDB id already known is not
# erased by a null.
_SAVE_MAPPING = """
UPDATE tv_shows t SET tmdb_id = u.tmdb, tvdb_id = coalesce(u.tvdb, t.tvdb_id),
                      is_completed = u.done, type = coalesce(u.type, t.type)
FROM unnest($1::bigint[], $2::int[], $3::int[], $4::bool[], $5::int[]) AS u(id, tmdb, tvdb, done, type)
WHERE t.id = u.id
"""

Mapping = tuple[int, int, int | None, bool, int | None]


async def _save(pool: asyncpg.Pool, rows: Sequence[Mapping]) -> None:
    if rows:
        await pool.execute(_SAVE_MAPPING, *(list(column) for column in zip(*rows, strict=True)))


@dataclass(frozen=True, slots=True)
class MapResult:
    shows: int
    movies: int
    unresolved: int


async def map_show_tmdb(pool: asyncpg.Pool, tmdb: TmdbLookup) -> MapResult:
    """Resolve every show without a TMDB id as a TV show, else as a movie."""
    rows = await pool.fetch("SELECT id, name FROM tv_shows WHERE tmdb_id IS NULL ORDER BY id")
    pending: list[Mapping] = []
    maybe_movies: list[asyncpg.Record] = []
    shows = movies = 0
    for row in rows:
        show = await try_resolve_show(tmdb, row["name"])
        if show is None:
            maybe_movies.append(row)
            continue
        # A show hit leaves the type alone, as the original did; only movies set it.
        pending.append((row["id"], show.tmdb_id, show.tvdb_id, show.is_ended, None))
        shows += 1
        if len(pending) >= BATCH:
            await _save(pool, pending)
            pending = []
    for row in maybe_movies:
        movie = await try_resolve_movie(tmdb, row["name"])
        if movie is None:
            continue
        pending.append((row["id"], movie.tmdb_id, movie.tvdb_id, True, MOVIE))
        movies += 1
        if len(pending) >= BATCH:
            await _save(pool, pending)
            pending = []
    await _save(pool, pending)
    result = MapResult(shows, movies, len(maybe_movies) - movies)
    log.info("tmdb mapping done", shows=shows, movies=movies, unresolved=result.unresolved)
    return result


async def _first_show(
    tmdb: TmdbLookup, name: str, keep: Callable[[TmdbTvResult], bool]
) -> tuple[TmdbShowDetails, TmdbExternalIds | None] | None:
    async with aclosing(tmdb.search_tv(clean_name(name))) as results:
        async for result in results:
            if not keep(result):
                continue
            details = await tmdb.get_show(result.id)
            if details is not None:
                return details, await tmdb.get_show_external_ids(details.id)
    return None


def _other_year(year: str) -> Callable[[TmdbTvResult], bool]:
    return lambda result: not (result.first_air_date or "").startswith(year)


def _other_country(country: str) -> Callable[[TmdbTvResult], bool]:
    code = _COUNTRY_CODES.get(country, country)
    return lambda result: code not in result.origin_country


async def _refit(
    tmdb: TmdbLookup, pair: Sequence[asyncpg.Record]
) -> tuple[int, TmdbShowDetails, TmdbExternalIds | None] | None:
    """Find a better TMDB entry for the show of a duplicate pair that lacks the qualifier: the
    year rule first, then the country rule when the year rule found nothing."""
    for pattern, keep in ((_YEAR, _other_year), (_COUNTRY, _other_country)):
        qualified = next((r for r in pair if pattern.search(r["name"])), None)
        if qualified is None:
            continue
        match = pattern.search(qualified["name"])
        assert match is not None
        other = pair[1] if qualified is pair[0] else pair[0]
        found = await _first_show(tmdb, other["name"], keep(match.group(1)))
        if found is not None:
            return other["id"], found[0], found[1]
    return None


async def clean_duplicate_tmdb(pool: asyncpg.Pool, tmdb: TmdbLookup) -> int:
    """Pairs of shows sharing a TMDB id: re-map the one without the year (or country) qualifier."""
    groups = await pool.fetch(
        """SELECT tmdb_id FROM tv_shows WHERE tmdb_id IS NOT NULL
           GROUP BY tmdb_id HAVING count(*) = 2 ORDER BY tmdb_id"""
    )
    fixes: list[Mapping] = []
    for group in groups:
        pair = await pool.fetch(
            "SELECT id, name, type FROM tv_shows WHERE tmdb_id = $1 ORDER BY id", group["tmdb_id"]
        )
        if len(pair) != 2:
            continue  # changed since the grouping
        found = await _refit(tmdb, pair)
        if found is None:
            continue
        show_id, details, external = found
        kind = next(r["type"] for r in pair if r["id"] == show_id)
        tvdb = external.tvdb_id if external is not None else None
        fixes.append((show_id, details.id, tvdb, is_ended_status(details.status), kind))
    await _save(pool, fixes)
    log.info("tmdb duplicates cleaned", pairs=len(groups), fixed=len(fixes))
    return len(fixes)


async def fetch_missing_tvdb_id(pool: asyncpg.Pool, tmdb: TmdbLookup) -> int:
    """Fill TvDB ids from TMDB's external ids; returns how many shows got one."""
    rows = await pool.fetch(
        """SELECT id, tmdb_id, type FROM tv_shows
           WHERE tvdb_id IS NULL AND tmdb_id IS NOT NULL ORDER BY id"""
    )
    found: list[tuple[int, int]] = []
    total = 0

    async def save() -> None:
        if found:
            await pool.execute(
                """UPDATE tv_shows t SET tvdb_id = u.tvdb
                   FROM unnest($1::bigint[], $2::int[]) AS u(id, tvdb) WHERE t.id = u.id""",
                [i for i, _ in found],
                [t for _, t in found],
            )
            found.clear()

    for row in rows:
        get = tmdb.get_movie_external_ids if row["type"] == MOVIE else tmdb.get_show_external_ids
        external = await get(row["tmdb_id"])
        # No answer, or TMDB knows no TvDB id either: nothing to write (the row stays NULL).
        if external is None or external.tvdb_id is None:
            continue
        found.append((row["id"], external.tvdb_id))
        total += 1
        if len(found) >= BATCH:
            await save()
    await save()
    log.info("tvdb ids back-filled", candidates=len(rows), filled=total)
    return total


@dataclass(frozen=True, slots=True)
class CompletionResult:
    checked: int
    flipped: list[int]
    unmapped: list[int]  # TMDB no longer knows them: ids cleared, no refresh


async def check_completed_tmdb(
    pool: asyncpg.Pool,
    tmdb: TmdbLookup,
    completed: bool,
    on_flipped: Callable[[list[int]], Awaitable[object]],
) -> CompletionResult:
    """1.8: re-read TMDB's status of the shows with this completion flag.

    A flipped show gets its season-list refresh time cleared; `on_flipped` receives each saved
    batch of them (to enqueue their refreshes) right after it is committed.
    """
    rows = await pool.fetch(
        """SELECT id, tmdb_id FROM tv_shows
           WHERE tmdb_id IS NOT NULL AND is_completed = $1 AND type = $2 ORDER BY id""",
        completed,
        SHOW,
    )
    flips: list[int] = []
    gone: list[int] = []
    all_flipped: list[int] = []

    async def save() -> None:
        if gone:
            await pool.execute(
                """UPDATE tv_shows SET is_completed = false, tmdb_id = NULL, tvdb_id = NULL,
                       last_season_refreshed = NULL WHERE id = ANY($1::bigint[])""",
                gone,
            )
            gone.clear()
        if flips:
            batch = list(flips)
            flips.clear()
            await pool.execute(
                """UPDATE tv_shows SET is_completed = $2, last_season_refreshed = NULL
                   WHERE id = ANY($1::bigint[])""",
                batch,
                not completed,
            )
            all_flipped.extend(batch)
            await on_flipped(batch)

    unmapped: list[int] = []
    for row in rows:
        details = await tmdb.get_show(row["tmdb_id"])
        if details is None:
            gone.append(row["id"])
            unmapped.append(row["id"])
        elif is_ended_status(details.status) != completed:
            flips.append(row["id"])
            if len(flips) >= BATCH:
                await save()
    await save()
    log.info(
        "tmdb completion checked",
        completed=completed,
        checked=len(rows),
        flipped=len(all_flipped),
        unmapped=len(unmapped),
    )
    return CompletionResult(len(rows), all_flipped, unmapped)
