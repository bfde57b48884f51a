"""Writing one scrape of a season (spec 9.4) in a single statement: episodes, subtitles, episode
external ids and the season's refresh stamp, so it is atomic without a transaction.

Protected subtitle columns (storage path, download count, scene, qualities, ...) never appear in
an UPDATE list, so a re-scrape cannot overwrite them; rows that did not change are not rewritten.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import structlog

from addicted_jobs.catalog.shows import ADDIC7ED
from addicted_jobs.db import Conn
from addicted_jobs.upstream.models import ParsedEpisode, ParsedSubtitle

log = structlog.get_logger(__name__)

# Every CTE sees the snapshot from before the statement: episodes inserted here are known only
# through ep_up's RETURNING, existing ones through the join, hence the UNION in ep_ids. Foreign
# keys are checked at the end of the statement, so subtitles may point at episodes made here.
_UPSERT = """
WITH ep_in AS (
    SELECT * FROM unnest($3::int[], $4::int[], $5::text[]) AS u(season, number, title)
), ep_up AS (
    INSERT INTO episodes (tv_show_id, season, number, title)
    SELECT $2, season, number, title FROM ep_in
    ON CONFLICT (tv_show_id, season, number) DO UPDATE SET title = EXCLUDED.title
    WHERE episodes.title IS DISTINCT FROM EXCLUDED.title
    RETURNING id, season, number
), ep_ids AS (
    SELECT id, season, number FROM ep_up
    UNION
    SELECT e.id, e.season, e.number FROM episodes e
    JOIN ep_in i ON e.tv_show_id = $2 AND e.season = i.season AND e.number = i.number
), sub_up AS (
    INSERT INTO subtitles (episode_id, scene, version, completed, completion_pct,
                           hearing_impaired, corrected, qualities, download_uri, language,
                           language_iso_code, source, external_id)
    SELECT e.id, u.scene, u.version, u.completed, u.pct, u.hi, u.corrected, u.qualities, u.uri,
           u.language, u.iso, $1, u.uri
    FROM unnest($6::int[], $7::int[], $8::text[], $9::int[], $10::bool[], $11::float8[],
                $12::bool[], $13::bool[], $14::int[], $15::text[], $16::text[], $17::text[])
         AS u(season, number, scene, version, completed, pct, hi, corrected, qualities, uri,
              language, iso)
    JOIN ep_ids e ON e.season = u.season AND e.number = u.number
    ON CONFLICT (download_uri) DO UPDATE SET
        episode_id = EXCLUDED.episode_id, version = EXCLUDED.version,
        completed = EXCLUDED.completed, completion_pct = EXCLUDED.completion_pct,
        hearing_impaired = EXCLUDED.hearing_impaired, corrected = EXCLUDED.corrected,
        language = EXCLUDED.language, language_iso_code = EXCLUDED.language_iso_code
    WHERE (subtitles.episode_id, subtitles.version, subtitles.completed, subtitles.completion_pct,
           subtitles.hearing_impaired, subtitles.corrected, subtitles.language,
           subtitles.language_iso_code)
          IS DISTINCT FROM
          (EXCLUDED.episode_id, EXCLUDED.version, EXCLUDED.completed, EXCLUDED.completion_pct,
           EXCLUDED.hearing_impaired, EXCLUDED.corrected, EXCLUDED.language,
           EXCLUDED.language_iso_code)
    RETURNING 1
), ext_in AS (
    SELECT e.id AS episode_id, u.ext
    FROM unnest($18::int[], $19::int[], $20::text[]) AS u(season, number, ext)
    JOIN ep_ids e ON e.season = u.season AND e.number = u.number
), ext_moved AS (
    -- An episode's id moves to the new value unless another episode owns that value.
    UPDATE episode_external_ids x SET external_id = i.ext
    FROM ext_in i
    WHERE x.episode_id = i.episode_id AND x.source = $1 AND x.external_id <> i.ext
      AND NOT EXISTS (SELECT 1 FROM episode_external_ids o
                      WHERE o.source = $1 AND o.external_id = i.ext)
    RETURNING 1
), ext_added AS (
    -- An episode without one gets it; DO NOTHING covers both unique indexes.
    INSERT INTO episode_external_ids (episode_id, source, external_id)
    SELECT i.episode_id, $1, i.ext FROM ext_in i
    WHERE NOT EXISTS (SELECT 1 FROM episode_external_ids x
                      WHERE x.episode_id = i.episode_id AND x.source = $1)
    ON CONFLICT DO NOTHING
    RETURNING 1
), stamped AS (
    UPDATE seasons SET last_refreshed = now() WHERE id = $21 RETURNING 1
)
SELECT (SELECT count(*) FROM ep_up) AS episodes,
       (SELECT count(*) FROM sub_up) AS subtitles,
       (SELECT count(*) FROM ext_in i JOIN episode_external_ids o
          ON o.source = $1 AND o.external_id = i.ext AND o.episode_id <> i.episode_id) AS conflicts
"""


@dataclass(frozen=True, slots=True)
class UpsertCounts:
    episodes: int  # inserted or renamed
    subtitles: int  # inserted or changed
    id_conflicts: int  # external ids left with another episode


async def upsert_episodes(
    db: asyncpg.Pool | Conn,
    show_id: int,
    episodes: Sequence[ParsedEpisode],
    season_id: int | None = None,
    source: int = ADDIC7ED,
) -> UpsertCounts:
    """Merge one scrape of a show's episodes, and stamp `season_id` refreshed, atomically.

    Subtitles missing from the scrape are kept (spec 9.4). Within the batch the first episode
    per (season, number), subtitle per URI and external id per value wins; blank ids are dropped.
    """
    by_key: dict[tuple[int, int], ParsedEpisode] = {}
    for episode in episodes:
        by_key.setdefault((episode.season, episode.number), episode)
    kept = list(by_key.values())
    subs: dict[str, tuple[ParsedEpisode, ParsedSubtitle]] = {}
    ids: dict[str, ParsedEpisode] = {}
    for episode in kept:
        for sub in episode.subtitles:
            subs.setdefault(sub.download_uri, (episode, sub))
        if episode.external_id.strip():
            ids.setdefault(episode.external_id.strip(), episode)
    rows = list(subs.values())
    counts = await db.fetchrow(
        _UPSERT,
        source,
        show_id,
        [e.season for e in kept],
        [e.number for e in kept],
        [e.title for e in kept],
        [e.season for e, _ in rows],
        [e.number for e, _ in rows],
        [s.scene for _, s in rows],
        [s.version for _, s in rows],
        [s.completed for _, s in rows],
        [s.completion_pct for _, s in rows],
        [s.hearing_impaired for _, s in rows],
        [s.corrected for _, s in rows],
        [s.qualities for _, s in rows],
        [s.download_uri for _, s in rows],
        [s.language for _, s in rows],
        [s.language_code for _, s in rows],
        [e.season for e in ids.values()],
        [e.number for e in ids.values()],
        list(ids),
        season_id,
    )
    assert counts is not None
    result = UpsertCounts(counts["episodes"], counts["subtitles"], counts["conflicts"])
    if result.id_conflicts:
        log.warning(
            "episode external ids owned by another episode", show=show_id, count=result.id_conflicts
        )
    return result


@dataclass(frozen=True, slots=True)
class KnownSubtitle:
    language: str
    language_iso_code: str | None
    scene: str
    discovered: datetime


async def episode_subtitles(
    db: asyncpg.Pool | Conn, show_id: int, season: int, number: int
) -> list[KnownSubtitle] | None:
    """The subtitles of one episode, or None when the episode is not in the catalogue."""
    rows = await db.fetch(
        """SELECT s.language, s.language_iso_code, s.scene, s.discovered FROM episodes e
           LEFT JOIN subtitles s ON s.episode_id = e.id
           WHERE e.tv_show_id = $1 AND e.season = $2 AND e.number = $3""",
        show_id,
        season,
        number,
    )
    if not rows:
        return None
    return [KnownSubtitle(**dict(r)) for r in rows if r["language"] is not None]
