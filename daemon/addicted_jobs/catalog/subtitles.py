"""Subtitle rows as the storage jobs see them: where a subtitle's object lives, whether it is stored,
its download count, and the samples a dictionary training reads.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from addicted_jobs.storage.base import object_key


@dataclass(frozen=True, slots=True)
class SubtitleRow:
    """A subtitle with what its object key and its download need."""

    id: int
    unique_id: uuid.UUID
    show_id: int
    season: int
    episode: int
    download_uri: str
    completed: bool
    storage_path: str | None
    stored_at: datetime | None

    @property
    def key(self) -> str:
        """Where its object is written: `{show_id}/{season}/{episode}/{unique_id}.srt`."""
        return object_key(self.show_id, self.season, self.episode, self.unique_id)


async def get_subtitle(pool: asyncpg.Pool, subtitle_id: int) -> SubtitleRow | None:
    """The subtitle with its episode's place, or None when there is no such row."""
    row = await pool.fetchrow(
        """SELECT s.id, s.unique_id, e.tv_show_id AS show_id, e.season, e.number AS episode,
                  s.download_uri, s.completed, s.storage_path, s.stored_at
           FROM subtitles s JOIN episodes e ON e.id = s.episode_id WHERE s.id = $1""",
        subtitle_id,
    )
    return SubtitleRow(**dict(row)) if row is not None else None


async def mark_stored(pool: asyncpg.Pool, subtitle_id: int, key: str) -> bool:
    """Record where the object is; False when the row is gone."""
    status = await pool.execute(
        "UPDATE subtitles SET storage_path = $2, stored_at = now() WHERE id = $1", subtitle_id, key
    )
    return bool(status.endswith(" 1"))


async def delete_subtitle(pool: asyncpg.Pool, subtitle_id: int) -> bool:
    """Remove the row (gone from Addic7ed); False when it was already gone."""
    status = await pool.execute("DELETE FROM subtitles WHERE id = $1", subtitle_id)
    return bool(status.endswith(" 1"))


async def count_download(pool: asyncpg.Pool, subtitle_id: int) -> None:
    """Add one to the subtitle's download count."""
    # One atomic statement: concurrent downloads of one subtitle never lose a count.
    await pool.execute(
        "UPDATE subtitles SET download_count = download_count + 1 WHERE id = $1", subtitle_id
    )


async def count_stored(pool: asyncpg.Pool, before: datetime | None) -> tuple[int, int]:
    """Subtitles stored in all, and those stored at or before `before` (rows without a stored_at,
    from before it was recorded, count as before)."""
    row = await pool.fetchrow(
        """SELECT count(*) AS total, count(*) FILTER (WHERE stored_at IS NULL OR stored_at <= $1) AS before
           FROM subtitles WHERE storage_path IS NOT NULL""",
        before,
    )
    assert row is not None  # an aggregate always returns its one row
    return int(row["total"]), int(row["before"])


async def sample_stored(pool: asyncpg.Pool, limit: int) -> list[str]:
    """Storage paths of up to `limit` stored subtitles, picked at random."""
    rows = await pool.fetch(
        "SELECT storage_path FROM subtitles WHERE storage_path IS NOT NULL"
        " ORDER BY random() LIMIT $1",
        limit,
    )
    return [r["storage_path"] for r in rows]


async def stored_before(pool: asyncpg.Pool, moment: datetime) -> list[str]:
    """Storage paths of the subtitles stored at or before `moment`, oldest row first."""
    rows = await pool.fetch(
        "SELECT storage_path FROM subtitles WHERE storage_path IS NOT NULL AND stored_at <= $1"
        " ORDER BY id",
        moment,
    )
    return [r["storage_path"] for r in rows]
