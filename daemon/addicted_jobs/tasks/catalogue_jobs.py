"""The catalogue jobs' handlers (spec 1.3-1.11), which call into addicted_jobs.catalog.

Their specs and policies are in tasks/catalogue.py and their arguments in tasks/catalogue_args.py.
tasks/catalogue.py builds CatalogueJobs with the first catalogue job a daemon runs: this module
loads most of the catalogue and the parsed upstream records (tests/integration/test_lazy_domain.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from addicted_jobs.catalog import tmdb_sync
from addicted_jobs.catalog.episodes import episode_subtitles
from addicted_jobs.catalog.languages import culture_for
from addicted_jobs.catalog.scene import scene_matches_file
from addicted_jobs.catalog.search import subtitle_matches
from addicted_jobs.catalog.seasons import delete_empty_seasons
from addicted_jobs.catalog.shows import get_show, sync_show_list
from addicted_jobs.jobs import JobContext, JobRequest, NoArgs
from addicted_jobs.tasks.catalogue_args import CompletedArgs, FetchSubtitlesArgs, ShowArgs
from addicted_jobs.tasks.resources import Resources
from addicted_jobs.upstream.errors import NothingToParse, UpstreamUnavailable

if TYPE_CHECKING:
    from addicted_jobs.upstream.tmdb import TmdbClient

# Only chooses a log line in fetch_subtitles (spec 11.3): it never gates anything.
COSMETIC_AGE = timedelta(days=180)


class CatalogueJobs:
    """The handlers; one instance per daemon, sharing the resources."""

    def __init__(self, resources: Resources) -> None:
        self.r = resources

    async def refresh_available_shows(self, ctx: JobContext, args: NoArgs) -> None:
        result = await sync_show_list(self.r.pool, self.r.addic7ed, self.r.credentials, self.r.tmdb)
        ctx.log.info(
            "show list synchronised",
            upstream=result.upstream,
            new=result.new,
            created=result.merge.created,
            linked=result.merge.linked,
        )
        mapping = await ctx.enqueue("map_show_tmdb")
        dedupe = await ctx.enqueue("clean_duplicate_tmdb", after=mapping.id)
        await ctx.enqueue("fetch_missing_tvdb_id", after=dedupe.id)

    def _tmdb(self, ctx: JobContext, left_alone: str) -> TmdbClient | None:
        """The TMDB client, or None after the one warning a TMDB job logs without one (then it
        does nothing: `left_alone` says what stays as it was)."""
        if self.r.tmdb is None:
            ctx.log.warning(f"no TMDB client configured; {left_alone}")
        return self.r.tmdb

    async def map_show_tmdb(self, ctx: JobContext, args: NoArgs) -> None:
        if (tmdb := self._tmdb(ctx, "nothing mapped")) is not None:
            await tmdb_sync.map_show_tmdb(self.r.pool, tmdb)

    async def clean_duplicate_tmdb(self, ctx: JobContext, args: NoArgs) -> None:
        if (tmdb := self._tmdb(ctx, "duplicates left alone")) is not None:
            await tmdb_sync.clean_duplicate_tmdb(self.r.pool, tmdb)

    async def fetch_missing_tvdb_id(self, ctx: JobContext, args: NoArgs) -> None:
        if (tmdb := self._tmdb(ctx, "TvDB ids left alone")) is not None:
            await tmdb_sync.fetch_missing_tvdb_id(self.r.pool, tmdb)

    async def check_completed_tmdb(self, ctx: JobContext, args: CompletedArgs) -> None:
        tmdb = self._tmdb(ctx, "completion flags left alone")
        if tmdb is None:
            return

        async def refresh(show_ids: list[int]) -> None:
            requests = [JobRequest("refresh_single_show", {"show_id": i}) for i in show_ids]
            await ctx.enqueue_many(requests)

        await tmdb_sync.check_completed_tmdb(self.r.pool, tmdb, args.completed, refresh)

    async def refresh_single_show(self, ctx: JobContext, args: ShowArgs) -> None:
        result = await self.r.refresher.refresh_show(args.show_id)
        if result is None:
            ctx.log.warning("no such show; nothing to refresh", show=args.show_id)
            return
        ctx.log.info(
            "show refreshed",
            show=args.show_id,
            season_list=result.season_list_refreshed,
            seasons_fetched=len(result.refreshed),
            seasons_skipped=len(result.skipped),
            subtitles_written=result.subtitles_written,
        )
        # Registered only after a refresh that got through (spec 1.9).
        await ctx.continue_with("cleanup_empty_seasons", ShowArgs(show_id=args.show_id))

    async def cleanup_empty_seasons(self, ctx: JobContext, args: ShowArgs) -> None:
        deleted = await delete_empty_seasons(self.r.pool, args.show_id)
        ctx.log.info(
            "empty seasons deleted", show=args.show_id, count=len(deleted), seasons=deleted
        )

    async def fetch_subtitles(self, ctx: JobContext, args: FetchSubtitlesArgs) -> None:
        request = f"S{args.season}E{args.episode} ({args.language}) {args.file_name or ''}".strip()
        try:
            await self._fetch_subtitles(ctx, args, request)
        except (NothingToParse, UpstreamUnavailable) as exc:
            ctx.log.warning("upstream unavailable, will retry", request=request, error=str(exc))
            raise

    async def _fetch_subtitles(
        self, ctx: JobContext, args: FetchSubtitlesArgs, request: str
    ) -> None:
        show = await get_show(self.r.pool, args.show_id)
        if show is None:
            # Retried, as the original did: the show may be created by a sync in progress.
            raise LookupError(f"no show with id {args.show_id}")
        # Before any work: the cleanup runs only if this job succeeds (spec 1.11 step 4).
        await ctx.continue_with("cleanup_empty_seasons", ShowArgs(show_id=args.show_id))
        season = await self.r.refresher.get_refresh_season(show, args.season)
        if season is None:
            ctx.log.info("couldn't find season", show=show.id, request=request)
            return
        await self.r.refresher.refresh_one_season(show, season)
        known = await episode_subtitles(self.r.pool, show.id, args.season, args.episode)
        if known is None:
            ctx.log.info("couldn't find episode", show=show.id, request=request)
            return
        culture = culture_for(args.language)
        assert culture is not None  # validated with the arguments
        matching = any(
            subtitle_matches(culture, s.language, s.language_iso_code)
            and (args.file_name is None or scene_matches_file(s.scene, args.file_name))
            for s in known
        )
        now = datetime.now(UTC)
        latest = max((s.discovered for s in known), default=now)
        if matching or now - latest > COSMETIC_AGE:
            ctx.log.info(
                "matching subtitles found or episode was already refreshed", request=request
            )
        else:
            ctx.log.info("couldn't find matching subtitles", request=request)
