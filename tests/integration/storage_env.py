"""What the storage tests share: realistic subtitle files and subtitle rows to store them for."""

from __future__ import annotations

import uuid

import asyncpg

from addicted_jobs.sandbox.data import Catalogue, srt_text


def sample_files(count: int, seed: int = 3) -> list[bytes]:
    """Realistic SRT files (the sandbox's), all different."""
    catalogue, files = Catalogue(40, seed), []
    for show in catalogue.show_ids():
        for season in catalogue.seasons(show):
            for episode in catalogue.episodes(show, season) or ():
                files += [srt_text(seed, s) for s in episode.subtitles]
                if len(files) >= count:
                    return files[:count]
    raise AssertionError("the sandbox catalogue is too small")


async def add_subtitle(
    pool: asyncpg.Pool, number: int, *, show_id: int | None = None, season: int = 1
) -> int:
    """A subtitle row (not stored yet) for episode `number`, under a new show unless given one."""
    if show_id is None:
        show_id = await pool.fetchval("INSERT INTO tv_shows (name) VALUES ('Stored') RETURNING id")
    episode_id = await pool.fetchval(
        """INSERT INTO episodes (tv_show_id, season, number, title) VALUES ($1, $2, $3, 'Pilot')
           ON CONFLICT (tv_show_id, season, number) DO UPDATE SET title = excluded.title
           RETURNING id""",
        show_id,
        season,
        number,
    )
    subtitle_id: int = await pool.fetchval(
        """INSERT INTO subtitles (episode_id, scene, version, completed, completion_pct,
                                  hearing_impaired, corrected, download_uri, language)
           VALUES ($1, 'LOL', 0, true, 100, false, false, $2, 'English') RETURNING id""",
        episode_id,
        f"/updated/1/{uuid.uuid4().int % 10**9}/0",
    )
    return subtitle_id
