"""Fake TMDB data for the sandbox: search results derived from the query, details from the id.

A handful of hand-written entries (Shameless, Doctor Who, Castle on page 2, The Office over five
pages...) exercise the mapper rules; every other query gets hashed, repeatable results.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

PAGE_SIZE = 20
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def stable_hash(*parts: object) -> int:
    """A 64-bit hash that, unlike hash(), is the same in every process."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


@dataclass(frozen=True, slots=True)
class TmdbEntry:
    id: int
    name: str
    date: str
    countries: tuple[str, ...]
    status: str


def _e(tmdb_id: int, name: str, date: str, country: str, status: str = "Ended") -> TmdbEntry:
    return TmdbEntry(tmdb_id, name, date, (country,), status)


# Catalogue names placed first in the sandbox's show list. Pairs such as "BBC Planet Earth" and
# "Planet Earth" resolve to the same TMDB id, which is what duplicate cleaning has to merge.
SPECIAL_SHOWS: tuple[str, ...] = (
    "Shameless (US)", "Doctor Who (2005)", "BBC Planet Earth", "Planet Earth", "Castle (2009)",
    "The Office (US)", "Law & Order (USA)", "Scrubs", "Scrubs (2001)", "Shameless (UK)",
    "BBC: Top Gear", "Top Gear", "House of Cards (2013)", "House of Cards (1990)",
    "The Office (UK)", "Doctor Who (1963)", "Zzyzx Road Chronicles",
)  # fmt: skip
# query -> (decoys before, entries, decoys after)
_SPECIAL_TV: dict[str, tuple[int, tuple[TmdbEntry, ...], int]] = {
    "shameless": (0, (_e(1906, "Shameless", "2004-01-13", "GB"),
                      _e(34307, "Shameless", "2011-01-09", "US")), 3),
    "doctor who": (0, (_e(121, "Doctor Who", "1963-11-23", "GB"),
                       _e(57243, "Doctor Who", "2005-03-26", "GB"),
                       _e(239770, "Doctor Who", "2024-05-11", "GB", "Returning Series")), 2),
    "planet earth": (0, (_e(1044, "Planet Earth", "2006-03-05", "GB"),
                         _e(84100, "Planet Earth: Revisited", "2010-01-01", "US")), 1),
    "top gear": (0, (_e(1032, "Top Gear", "2002-10-20", "GB", "Returning Series"),), 4),
    # 25 decoys first: the 2009 show is on page 2 of 2, the page the original never read.
    "castle": (25, (_e(1419, "Castle", "2009-03-09", "US"),), 0),
    # 92 results, 5 pages: searches stop after page 3.
    "the office": (0, (_e(2996, "The Office", "2001-07-09", "GB"),
                       _e(2316, "The Office", "2005-03-24", "US")), 90),
    "law & order": (0, (_e(549, "Law & Order", "1990-09-13", "US", "Returning Series"),), 2),
    "scrubs": (0, (_e(4556, "Scrubs", "2001-10-02", "US"),), 1),
    "house of cards": (0, (_e(1425, "House of Cards", "2013-02-01", "US"),
                           _e(37523, "House of Cards", "1990-11-18", "GB", "Canceled")), 0),
    "zzyzx road chronicles": (0, (), 0),
    # Ids past PostgreSQL's int: the result is skipped, the TVDB id of 4242 (below) ignored.
    "hostile ids": (0, (_e(99_999_999_999, "Hostile Ids", "2001-01-01", "US"),
                        _e(4242, "Hostile Ids", "2001-01-01", "US")), 0),
}  # fmt: skip
_HOSTILE_TVDB = {4242: 99_999_999_999}
_SPECIAL_MOVIES: dict[str, tuple[TmdbEntry, ...]] = {
    "dune": (_e(841, "Dune", "1984-12-14", "US", "Released"),
             _e(438631, "Dune", "2021-09-15", "US", "Released")),
}  # fmt: skip
_SPECIAL_BY_ID = {
    entry.id: entry for _, entries, _ in _SPECIAL_TV.values() for entry in entries
} | {entry.id: entry for entries in _SPECIAL_MOVIES.values() for entry in entries}
_DECOY_WORDS = ("Revisited", "Behind the Scenes", "The Reunion", "Uncovered", "Live", "After Dark")
_DECOY_COUNTRIES = ("FR", "DE", "CA", "AU", "JP", "ES", "IT")


def _key(query: str) -> str:
    return " ".join(query.split()).lower()


def tv_variants(seed: int, query: str) -> tuple[tuple[int, str], tuple[int, str]] | None:
    """The (year, country) of the two real shows behind a generic name; None if not on TMDB."""
    h = stable_hash(seed, "tv", _key(query))
    if h % 20 == 0:
        return None
    year0 = 1995 + h % 30
    year1 = year0 - 1 - (h >> 8) % 15
    countries = ("US", "GB") if (h >> 16) & 1 else ("GB", "US")
    return (year0, countries[0]), (year1, countries[1])


def _generic_id(seed: int, kind: str, key: str, index: int) -> int:
    # Above every hand-written id, so the two never collide.
    return 1_000_000 + stable_hash(seed, kind, "id", key, index) % 90_000_000


def _decoys(seed: int, kind: str, key: str, name: str, first: int, count: int) -> list[TmdbEntry]:
    # Decoy years and countries never satisfy a "(YYYY)", "(US)"/"(UK)" or BBC filter.
    out = []
    for index in range(first, first + count):
        h = stable_hash(seed, kind, "decoy", key, index)
        out.append(
            TmdbEntry(
                _generic_id(seed, kind, key, index),
                f"{name}: {_DECOY_WORDS[index % len(_DECOY_WORDS)]}",
                f"{1940 + h % 40}-0{1 + h % 9}-1{h % 10}",
                (_DECOY_COUNTRIES[h % len(_DECOY_COUNTRIES)],),
                "Ended",
            )
        )
    return out


def _search(seed: int, kind: str, query: str) -> list[TmdbEntry]:
    key, name = _key(query), " ".join(query.split())
    special = _SPECIAL_TV.get(key) if kind == "tv" else None
    if special is not None:
        before, entries, after = special
        return [
            *_decoys(seed, kind, key, name, 10, before),
            *entries,
            *_decoys(seed, kind, key, name, 10 + before, after),
        ]
    if kind == "movie" and key in _SPECIAL_MOVIES:
        return list(_SPECIAL_MOVIES[key])
    variants = tv_variants(seed, key)
    if variants is None:
        return []
    status = "Released" if kind == "movie" else "Ended"
    real = [
        TmdbEntry(
            _generic_id(seed, kind, key, i), name, f"{year}-0{3 + i}-1{i}", (country,), status
        )
        for i, (year, country) in enumerate(variants)
    ]
    h = stable_hash(seed, kind, "layout", key)
    layout, extra = h % 10, (h >> 8) % 5
    if layout == 0:
        return _decoys(seed, kind, key, name, 10, 25) + real  # the real ones on page 2
    if layout == 1:
        return _decoys(seed, kind, key, name, 10, 45) + real  # ...or on page 3
    return real + _decoys(seed, kind, key, name, 10, extra)


def search_payload(seed: int, kind: str, query: str, page: int) -> dict[str, Any]:
    entries = _search(seed, kind, query)
    chunk = entries[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    return {
        "page": page,
        "results": [result_json(kind, entry) for entry in chunk],
        "total_pages": math.ceil(len(entries) / PAGE_SIZE),
        "total_results": len(entries),
    }


def result_json(kind: str, entry: TmdbEntry) -> dict[str, Any]:
    common = {"id": entry.id, "overview": "", "popularity": round(entry.id % 997 / 7, 3)}
    if kind == "movie":
        return common | {"title": entry.name, "release_date": entry.date}
    return common | {
        "name": entry.name,
        "original_name": entry.name,
        "first_air_date": entry.date,
        "origin_country": list(entry.countries),
    }


def details(seed: int, kind: str, tmdb_id: int) -> dict[str, Any] | None:
    """tv/{id} or movie/{id}; about one generic id in fifty does not exist (a 404)."""
    special = _SPECIAL_BY_ID.get(tmdb_id)
    if special is not None:
        name_key = "title" if kind == "movie" else "name"
        return {"id": tmdb_id, name_key: special.name, "status": special.status}
    if tmdb_id < 1 or stable_hash(seed, "gone", tmdb_id) % 50 == 0:
        return None
    if kind == "movie":
        return {"id": tmdb_id, "title": f"TMDB movie {tmdb_id}", "status": "Released"}
    roll = stable_hash(seed, "status", tmdb_id) % 100
    status = (
        "Returning Series"
        if roll < 50
        else "Ended"
        if roll < 85
        else "Canceled"
        if roll < 95
        else "In Production"
    )
    return {"id": tmdb_id, "name": f"TMDB show {tmdb_id}", "status": status}


def external_ids(seed: int, kind: str, tmdb_id: int) -> dict[str, Any] | None:
    if details(seed, kind, tmdb_id) is None:
        return None
    h = stable_hash(seed, "tvdb", kind, tmdb_id)
    tvdb = None if kind == "movie" or h % 10 == 0 else 70_000 + h % 400_000
    tvdb = _HOSTILE_TVDB.get(tmdb_id, tvdb)
    suffix = 2 if kind == "movie" else 1
    return {"id": tmdb_id, "imdb_id": f"tt{tmdb_id * 10 + suffix:08d}", "tvdb_id": tvdb}


def find_by_imdb(seed: int, imdb_id: str) -> dict[str, Any]:
    """find/{imdb}: the imdb ids handed out above encode the TMDB id and the kind."""
    found: dict[str, Any] = {"tv_results": [], "movie_results": []}
    digits = imdb_id.removeprefix("tt")
    if not digits.isdigit():
        return found
    tmdb_id, suffix = divmod(int(digits), 10)
    kind = {1: "tv", 2: "movie"}.get(suffix)
    body = details(seed, kind, tmdb_id) if kind is not None else None
    if kind is not None and body is not None:
        entry = _SPECIAL_BY_ID.get(tmdb_id) or TmdbEntry(
            tmdb_id, body.get("name") or body.get("title") or "", "2000-01-01", ("US",), ""
        )
        found[f"{kind}_results"] = [result_json(kind, entry)]
    return found


def tmdb_app(seed: int, api_key: str) -> web.Application:
    """The TMDB v3 endpoints the jobs use, answering 401 without the right key: a v3 `api_key`
    query parameter or, as TMDB accepts for v4 read-access tokens, `Authorization: Bearer`."""

    @web.middleware
    async def check_api_key(request: web.Request, handler: Handler) -> web.StreamResponse:
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if api_key not in (request.query.get("api_key"), bearer):
            message = "Invalid API key: You must be granted a valid key."
            return _json({"success": False, "status_code": 7, "status_message": message}, 401)
        return await handler(request)

    async def search(request: web.Request) -> web.Response:
        page = _int(request.query.get("page", "1"))
        if not 1 <= page <= 500:
            return _json({"success": False, "errors": ["page must be between 1 and 500"]}, 422)
        query = request.query.get("query", "")
        return _json(search_payload(seed, request.match_info["kind"], query, page))

    async def show_or_movie(request: web.Request) -> web.Response:
        body = details(seed, request.match_info["kind"], _int(request.match_info["id"]))
        return _json(body) if body is not None else _not_found()

    async def ids(request: web.Request) -> web.Response:
        body = external_ids(seed, request.match_info["kind"], _int(request.match_info["id"]))
        return _json(body) if body is not None else _not_found()

    async def find(request: web.Request) -> web.Response:
        if request.query.get("external_source") != "imdb_id":
            return _json({"success": False, "status_message": "Invalid external source"}, 400)
        return _json(find_by_imdb(seed, request.match_info["external_id"]))

    app = web.Application(middlewares=[check_api_key])
    app.router.add_get("/search/{kind:tv|movie}", search)
    app.router.add_get("/{kind:tv|movie}/{id}", show_or_movie)
    app.router.add_get("/{kind:tv|movie}/{id}/external_ids", ids)
    app.router.add_get("/find/{external_id}", find)
    return app


def _int(value: str | None) -> int:
    try:
        return int(value or "")
    except ValueError:
        return -1


def _json(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


def _not_found() -> web.Response:
    message = "The resource you requested could not be found."
    return _json({"success": False, "status_code": 34, "status_message": message}, 404)
