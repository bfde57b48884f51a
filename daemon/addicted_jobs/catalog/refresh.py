"""Addic7ed refreshers: when a show's season list and a season's episodes are due (spec 3.2-3.5),
and the refreshes themselves, behind the in-process try-locks of spec 2.4.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import asyncpg
import structlog

from addicted_jobs.catalog.credentials import CredentialPool
from addicted_jobs.catalog.episodes import upsert_episodes
from addicted_jobs.catalog.seasons import (
    Season,
    get_season,
    latest_season_number,
    list_seasons,
    save_season_list,
)
from addicted_jobs.catalog.shows import Show, get_show
from addicted_jobs.keyed_locks import KeyedLocks
from addicted_jobs.settings import RefreshSettings
from addicted_jobs.upstream.models import ParsedEpisode

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]


class SeasonSource(Protocol):
    """The part of Addic7edClient the refreshers use."""

    async def get_seasons(self, cookie: str, show_external_id: int) -> list[int]: ...

    async def get_season_episodes(
        self, cookie: str, show_external_id: int, season: int
    ) -> list[ParsedEpisode]: ...


def show_needs_season_refresh(show: Show, settings: RefreshSettings, now: datetime) -> bool:
    """3.3: never again for a completed show once refreshed; else when unset or old enough."""
    last = show.last_season_refreshed
    if last is None:
        return True
    if show.is_completed:
        return False
    return now - last >= settings.season_refresh


def season_needs_episode_refresh(
    show: Show, season: Season, latest_number: int, settings: RefreshSettings, now: datetime
) -> bool:
    """3.5: a completed show waits the long interval; then 3 h for the latest season, 24 h else."""
    last = season.last_refreshed
    if last is None:
        return True
    age = now - last
    if show.is_completed and age < settings.completed_show_refresh:
        return False
    if season.number == latest_number:
        return age >= settings.episode_refresh_latest_season
    return age >= settings.episode_refresh_default


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class ShowRefresh:
    show_id: int
    season_list_refreshed: bool = False
    refreshed: list[int] = field(default_factory=list)  # season numbers fetched
    skipped: list[int] = field(default_factory=list)  # not due, or busy elsewhere
    subtitles_written: int = 0


class Refresher:
    """One per daemon: the try-locks only mean something if every job shares the instance."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        addic7ed: SeasonSource,
        credentials: CredentialPool,
        settings: RefreshSettings,
        *,
        clock: Clock = _utcnow,
        season_concurrency: int = 2,
    ) -> None:
        self.pool = pool
        self.addic7ed = addic7ed
        self.credentials = credentials
        self.settings = settings
        self.clock = clock
        self.season_concurrency = season_concurrency
        self._locks = KeyedLocks()

    async def refresh_seasons(self, show: Show, *, reread: bool = True) -> bool:
        """Fetch and store the season list if due and nobody else is at it; True if it ran.

        `reread=False` trusts `show` as it is, for a caller that has just loaded it.
        """
        if show.addic7ed_id is None:
            log.info("show has no Addic7ed id, nothing to refresh", show=show.id)
            return False
        async with self._locks.try_lock(f"seasons:{show.id}") as got:
            if not got:
                return False
            # Re-read under the lock: another job may have refreshed since `show` was loaded.
            fresh = await get_show(self.pool, show.id) if reread else show
            if fresh is None or not show_needs_season_refresh(fresh, self.settings, self.clock()):
                return False
            async with self.credentials.querying() as credential:
                numbers = await self.addic7ed.get_seasons(credential.cookie, show.addic7ed_id)
            added = await save_season_list(self.pool, show.id, numbers)
            log.info("season list refreshed", show=show.id, seasons=len(numbers), new=added)
            return True

    async def refresh_season(self, show: Show, season: Season, latest_number: int) -> int | None:
        """Fetch and store one season's episodes if due and free; subtitles written, or None."""
        if show.addic7ed_id is None:
            return None
        async with self._locks.try_lock(f"episodes:{show.id}:{season.id}") as got:
            if not got:
                return None
            # Re-read under the lock: another job may have fetched it since `season` was read.
            season = await get_season(self.pool, show.id, season.number) or season
            if not season_needs_episode_refresh(
                show, season, latest_number, self.settings, self.clock()
            ):
                return None
            async with self.credentials.querying() as credential:
                episodes = await self.addic7ed.get_season_episodes(
                    credential.cookie, show.addic7ed_id, season.number
                )
            # The episodes and the refresh stamp are one statement: a crash re-fetches the season.
            counts = await upsert_episodes(self.pool, show.id, episodes, season.id)
            return counts.subtitles

    async def refresh_show(self, show_id: int) -> ShowRefresh | None:
        """3.4: the season list, then every season (highest first), two at a time."""
        show = await get_show(self.pool, show_id)
        if show is None:
            return None
        result = ShowRefresh(show_id)
        result.season_list_refreshed = await self.refresh_seasons(show, reread=False)
        seasons = await list_seasons(self.pool, show_id)
        if not seasons or show.addic7ed_id is None:
            return result
        latest = seasons[0].number
        slots = asyncio.Semaphore(self.season_concurrency)

        async def one(season: Season) -> None:
            async with slots:
                written = await self.refresh_season(show, season, latest)
            if written is None:
                result.skipped.append(season.number)
            else:
                result.refreshed.append(season.number)
                result.subtitles_written += written

        # A TaskGroup cancels the other seasons when one fails, so the job fails as a whole,
        # with the season's own error rather than a group wrapping it.
        try:
            async with asyncio.TaskGroup() as group:
                for season in seasons:
                    group.create_task(one(season))
        except ExceptionGroup as failed:
            raise failed.exceptions[0] from None
        return result

    async def get_refresh_season(self, show: Show, number: int) -> Season | None:
        """An existing season is returned as is; otherwise the season list is refreshed first."""
        season = await get_season(self.pool, show.id, number)
        if season is not None:
            return season
        if not await self.refresh_seasons(show):
            # Deliberate change: the original skipped when another job held the show's season
            # list and then reported the season missing. Wait for that job's list instead.
            await self._locks.wait_released(f"seasons:{show.id}")
        return await get_season(self.pool, show.id, number)

    async def refresh_one_season(self, show: Show, season: Season) -> bool:
        """The single-season path of fetch_subtitles; True when the season was fetched."""
        latest = await latest_season_number(self.pool, show.id)
        written = await self.refresh_season(show, season, latest or season.number)
        return written is not None
