"""Shows: reading one with its Addic7ed id, the daily show-list sync (spec 1.4) and the bulk
merge of provider shows (spec 9.5): link to an existing show by TvDB then TMDB id, or create it,
in a handful of statements whatever the number of shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import asyncpg

from addicted_jobs.catalog.credentials import CredentialPool
from addicted_jobs.catalog.tmdb_match import TmdbLookup, try_resolve_show
from addicted_jobs.db import LOCK_NAMESPACE, MERGE_LOCK, Conn
from addicted_jobs.upstream.models import ParsedShow

ADDIC7ED = 0  # DataSource values (spec 9.2; 1, SuperSubtitles, is not a source here)
SHOW, MOVIE = 0, 1  # ShowType values

# pg_advisory_xact_lock(LOCK_NAMESPACE, MERGE_LOCK): merges of one source run one at a time, so
# two syncs never both create the same show.


@dataclass(frozen=True, slots=True)
class Show:
    id: int
    name: str
    tmdb_id: int | None
    tvdb_id: int | None
    is_completed: bool
    type: int
    last_season_refreshed: datetime | None
    addic7ed_id: int | None  # ShowExternalIds.ExternalId for Addic7ed, never the legacy column


@dataclass(frozen=True, slots=True)
class ShowToMerge:
    external_id: str
    name: str
    tvdb_id: int | None = None
    tmdb_id: int | None = None
    is_completed: bool = False  # only used when the show is created


@dataclass(frozen=True, slots=True)
class MergeResult:
    created: int = 0
    linked: int = 0
    existing: int = 0


async def get_show(db: asyncpg.Pool | Conn, show_id: int) -> Show | None:
    row = await db.fetchrow(
        """SELECT t.id, t.name, t.tmdb_id, t.tvdb_id, t.is_completed, t.type,
                  t.last_season_refreshed, x.external_id AS addic7ed
           FROM tv_shows t
           LEFT JOIN show_external_ids x ON x.tv_show_id = t.id AND x.source = $2
           WHERE t.id = $1""",
        show_id,
        ADDIC7ED,
    )
    if row is None:
        return None
    addic7ed = row["addic7ed"]
    return Show(
        id=row["id"],
        name=row["name"],
        tmdb_id=row["tmdb_id"],
        tvdb_id=row["tvdb_id"],
        is_completed=row["is_completed"],
        type=row["type"],
        last_season_refreshed=row["last_season_refreshed"],
        addic7ed_id=int(addic7ed) if addic7ed and addic7ed.isdigit() else None,
    )


async def known_external_ids(db: asyncpg.Pool | Conn, source: int, ids: Sequence[str]) -> set[str]:
    rows = await db.fetch(
        "SELECT external_id FROM show_external_ids WHERE source = $1 AND external_id = ANY($2::text[])",
        source,
        list(ids),
    )
    return {r["external_id"] for r in rows}


_BACKFILL = """
UPDATE tv_shows t SET
    tvdb_id = CASE WHEN t.tvdb_id IS NULL AND u.tvdb > 0 THEN u.tvdb ELSE t.tvdb_id END,
    tmdb_id = CASE WHEN t.tmdb_id IS NULL AND u.tmdb > 0 THEN u.tmdb ELSE t.tmdb_id END,
    last_updated = now()
FROM unnest($1::bigint[], $2::int[], $3::int[]) AS u(id, tvdb, tmdb)
WHERE t.id = u.id AND ((t.tvdb_id IS NULL AND u.tvdb > 0) OR (t.tmdb_id IS NULL AND u.tmdb > 0))
"""

# A candidate must not already carry an id of this source: linking it would steal that id.
_MATCH = """
SELECT u.ord, coalesce(
    (SELECT t.id FROM tv_shows t WHERE u.tvdb > 0 AND t.tvdb_id = u.tvdb
        AND NOT EXISTS (SELECT 1 FROM show_external_ids x WHERE x.tv_show_id = t.id AND x.source = $1)
        ORDER BY t.id LIMIT 1),
    (SELECT t.id FROM tv_shows t WHERE u.tmdb > 0 AND t.tmdb_id = u.tmdb
        AND NOT EXISTS (SELECT 1 FROM show_external_ids x WHERE x.tv_show_id = t.id AND x.source = $1)
        ORDER BY t.id LIMIT 1)) AS show_id
FROM unnest($2::int[], $3::int[]) WITH ORDINALITY AS u(tvdb, tmdb, ord)
"""

_LINK = """
INSERT INTO show_external_ids (tv_show_id, source, external_id)
SELECT u.id, $1, u.ext FROM unnest($2::bigint[], $3::text[]) AS u(id, ext)
"""

_CREATE = """
WITH input AS (
    SELECT u.*, nextval(pg_get_serial_sequence('tv_shows', 'id')) AS new_id
    FROM unnest($2::text[], $3::text[], $4::int[], $5::int[], $6::bool[]) AS u(ext, name, tvdb, tmdb, done)
), shows AS (
    INSERT INTO tv_shows (id, name, source, tvdb_id, tmdb_id, is_completed)
    SELECT new_id, name, $1, nullif(tvdb, 0), nullif(tmdb, 0), done FROM input
)
INSERT INTO show_external_ids (tv_show_id, source, external_id)
SELECT new_id, $1, ext FROM input
"""


async def merge_shows(pool: asyncpg.Pool, source: int, shows: Sequence[ShowToMerge]) -> MergeResult:
    """Merge provider shows (9.5): back-fill known ones, link matches, create the rest."""
    unique = list({s.external_id: s for s in reversed(shows)}.values())[::-1]
    if not unique:
        return MergeResult()
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", LOCK_NAMESPACE, MERGE_LOCK)
        rows = await conn.fetch(
            """SELECT external_id, tv_show_id FROM show_external_ids
               WHERE source = $1 AND external_id = ANY($2::text[])""",
            source,
            [s.external_id for s in unique],
        )
        owner = {r["external_id"]: r["tv_show_id"] for r in rows}
        backfill = [(owner[s.external_id], s) for s in unique if s.external_id in owner]
        fresh = [s for s in unique if s.external_id not in owner]
        with_ids = [s for s in fresh if (s.tvdb_id or 0) > 0 or (s.tmdb_id or 0) > 0]
        links: list[tuple[int, ShowToMerge]] = []
        if with_ids:
            matches = await conn.fetch(
                _MATCH,
                source,
                [s.tvdb_id or 0 for s in with_ids],
                [s.tmdb_id or 0 for s in with_ids],
            )
            claimed: set[int] = set()
            for match in matches:
                show_id = match["show_id"]
                # Two new ids matching one show: only the first links, the other gets its own show.
                if show_id is not None and show_id not in claimed:
                    claimed.add(show_id)
                    links.append((show_id, with_ids[match["ord"] - 1]))
        linked_ids = {id(s) for _, s in links}
        create = [s for s in fresh if id(s) not in linked_ids]
        targets = backfill + links
        if targets:
            await conn.execute(
                _BACKFILL,
                [show_id for show_id, _ in targets],
                [s.tvdb_id or 0 for _, s in targets],
                [s.tmdb_id or 0 for _, s in targets],
            )
        if links:
            await conn.execute(
                _LINK, source, [i for i, _ in links], [s.external_id for _, s in links]
            )
        if create:
            await conn.execute(
                _CREATE,
                source,
                [s.external_id for s in create],
                [s.name for s in create],
                [s.tvdb_id or 0 for s in create],
                [s.tmdb_id or 0 for s in create],
                [s.is_completed for s in create],
            )
    return MergeResult(created=len(create), linked=len(links), existing=len(backfill))


class ShowListSource(Protocol):
    async def get_shows(self, cookie: str) -> list[ParsedShow]: ...


@dataclass(frozen=True, slots=True)
class SyncResult:
    upstream: int
    new: int
    merge: MergeResult
    resolved: int


async def sync_show_list(
    pool: asyncpg.Pool,
    source: ShowListSource,
    credentials: CredentialPool,
    tmdb: TmdbLookup | None,
    batch: int = 50,
) -> SyncResult:
    """Add the Addic7ed shows not known yet; known ids are left alone (no rename).

    With a TMDB client each new show is resolved first, as the original did, and merged in
    batches so a crash keeps what was done. Without one they are created at once, in bulk, and
    map_show_tmdb (which always follows) resolves them.
    """
    async with credentials.querying() as credential:
        shows = await source.get_shows(credential.cookie)
    known = await known_external_ids(pool, ADDIC7ED, [str(s.external_id) for s in shows])
    new: list[ParsedShow] = []
    seen: set[int] = set()
    for show in shows:
        if str(show.external_id) not in known and show.external_id not in seen:
            seen.add(show.external_id)
            new.append(show)
    if tmdb is None:
        merge = await merge_shows(
            pool, ADDIC7ED, [ShowToMerge(str(s.external_id), s.name) for s in new]
        )
        return SyncResult(len(shows), len(new), merge, 0)
    created = linked = existing = resolved = 0
    for start in range(0, len(new), batch):
        chunk: list[ShowToMerge] = []
        for show in new[start : start + batch]:
            found = await try_resolve_show(tmdb, show.name)
            resolved += found is not None
            chunk.append(
                ShowToMerge(
                    str(show.external_id),
                    show.name,
                    tvdb_id=found.tvdb_id if found else None,
                    tmdb_id=found.tmdb_id if found else None,
                    is_completed=found.is_ended if found else False,
                )
            )
        part = await merge_shows(pool, ADDIC7ED, chunk)
        created, linked, existing = (
            created + part.created,
            linked + part.linked,
            existing + part.existing,
        )
    return SyncResult(len(shows), len(new), MergeResult(created, linked, existing), resolved)
