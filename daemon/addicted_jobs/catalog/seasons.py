"""Seasons: insert-only during refreshes (spec 3.3), deleted only by the empty-season cleanup."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from addicted_jobs.db import Conn


@dataclass(frozen=True, slots=True)
class Season:
    id: int
    show_id: int
    number: int
    last_refreshed: datetime | None


def _season(row: asyncpg.Record) -> Season:
    return Season(row["id"], row["tv_show_id"], row["number"], row["last_refreshed"])


async def list_seasons(db: asyncpg.Pool | Conn, show_id: int) -> list[Season]:
    """The show's seasons, highest number first (the order whole-show refreshes use)."""
    rows = await db.fetch(
        """SELECT id, tv_show_id, number, last_refreshed FROM seasons
           WHERE tv_show_id = $1 ORDER BY number DESC""",
        show_id,
    )
    return [_season(r) for r in rows]


async def get_season(db: asyncpg.Pool | Conn, show_id: int, number: int) -> Season | None:
    row = await db.fetchrow(
        """SELECT id, tv_show_id, number, last_refreshed FROM seasons
           WHERE tv_show_id = $1 AND number = $2""",
        show_id,
        number,
    )
    return _season(row) if row is not None else None


async def latest_season_number(db: asyncpg.Pool | Conn, show_id: int) -> int | None:
    """The show's highest season number, None when it has no season."""
    latest = await db.fetchval("SELECT max(number) FROM seasons WHERE tv_show_id = $1", show_id)
    return int(latest) if latest is not None else None


async def save_season_list(db: asyncpg.Pool | Conn, show_id: int, numbers: Sequence[int]) -> int:
    """Insert the numbers not known yet and stamp the show's season refresh, even for an empty
    list (as the original did), in one statement. Returns how many seasons were new.
    """
    added = await db.fetchval(
        """WITH added AS (
               INSERT INTO seasons (tv_show_id, number)
               SELECT $1, n FROM unnest($2::int[]) AS n ORDER BY n
               ON CONFLICT (tv_show_id, number) DO NOTHING
               RETURNING 1
           ), stamped AS (
               UPDATE tv_shows SET last_season_refreshed = now() WHERE id = $1 RETURNING 1
           )
           SELECT count(*) FROM added""",
        show_id,
        sorted(set(numbers)),
    )
    return int(added)


async def delete_empty_seasons(pool: asyncpg.Pool, show_id: int) -> list[int]:
    """Delete the show's seasons that have no episode; returns their numbers.

    The original also kept seasons holding a season pack; packs are out of scope here.
    """
    rows = await pool.fetch(
        """DELETE FROM seasons s
           WHERE s.tv_show_id = $1
             AND NOT EXISTS (SELECT 1 FROM episodes e WHERE e.tv_show_id = s.tv_show_id AND e.season = s.number)
           RETURNING s.number""",
        show_id,
    )
    return sorted(r["number"] for r in rows)
