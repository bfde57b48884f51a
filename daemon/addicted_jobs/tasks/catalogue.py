"""The catalogue jobs (spec 1.3-1.11): their JobSpecs, with queue, cap, unique key and TTL,
retries, timeout and lock as in spec 1.1, and handlers that call into addicted_jobs.catalog.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator

from addicted_jobs.catalog import tmdb_sync
from addicted_jobs.catalog.episodes import episode_subtitles
from addicted_jobs.catalog.languages import culture_for, known_language
from addicted_jobs.catalog.scene import scene_matches_file
from addicted_jobs.catalog.search import subtitle_matches
from addicted_jobs.catalog.seasons import delete_empty_seasons
from addicted_jobs.catalog.shows import get_show, sync_show_list
from addicted_jobs.jobs import JobContext, JobRequest, JobSpec, NoArgs, Registry, RetryPolicy
from addicted_jobs.settings import FETCH_SUBTITLES_QUEUE, REFRESH_ONE_SHOW_QUEUE
from addicted_jobs.tasks.resources import Resources
from addicted_jobs.upstream.errors import NothingToParse, UpstreamUnavailable

# Fixed delay table of RefreshSingleShow and FetchSubtitles, seconds by retry number; the last
# value repeats once the table is exhausted.
CATALOGUE_DELAYS: tuple[int, ...] = (60, 600, 900, 2700, 3600, 600, 1200, 2400, 2700, 3600)
# The two long jobs: 20 retries on the fixed table, then deleted; hard-cancelled after 10 min.
LONG_JOB_RETRY = RetryPolicy(retries=20, delays=CATALOGUE_DELAYS, on_exhausted="delete")
LONG_JOB_TIMEOUT = 600.0
REFRESH_SHOW_TTL = 7200.0
# Only chooses a log line in fetch_subtitles (spec 11.3): it never gates anything.
COSMETIC_AGE = timedelta(days=180)


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


class ShowArgs(_Args):
    show_id: int = Field(ge=1)


class CompletedArgs(_Args):
    completed: bool


class FetchSubtitlesArgs(_Args):
    show_id: int = Field(ge=1)
    season: int = Field(ge=0)
    episode: int = Field(ge=0)
    language: str  # a culture name ("en", "pt-BR") or any label the culture parser knows
    file_name: str | None = Field(default=None, max_length=1000)

    @field_validator("file_name")
    @classmethod
    def _printable_file_name(cls, value: str | None) -> str | None:
        # A NUL cannot be stored in the job's jsonb arguments: refused here as invalid_args, not
        # by PostgreSQL as an internal error.
        if value is not None and "\x00" in value:
            raise ValueError("a file name cannot contain a NUL character")
        return value

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str) -> str:
        return known_language(value)


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

    async def map_show_tmdb(self, ctx: JobContext, args: NoArgs) -> None:
        if self.r.tmdb is None:
            ctx.log.warning("no TMDB client configured; nothing mapped")
            return
        await tmdb_sync.map_show_tmdb(self.r.pool, self.r.tmdb)

    async def clean_duplicate_tmdb(self, ctx: JobContext, args: NoArgs) -> None:
        if self.r.tmdb is None:
            ctx.log.warning("no TMDB client configured; duplicates left alone")
            return
        await tmdb_sync.clean_duplicate_tmdb(self.r.pool, self.r.tmdb)

    async def fetch_missing_tvdb_id(self, ctx: JobContext, args: NoArgs) -> None:
        if self.r.tmdb is None:
            ctx.log.warning("no TMDB client configured; TvDB ids left alone")
            return
        await tmdb_sync.fetch_missing_tvdb_id(self.r.pool, self.r.tmdb)

    async def check_completed_tmdb(self, ctx: JobContext, args: CompletedArgs) -> None:
        if self.r.tmdb is None:
            ctx.log.warning("no TMDB client configured; completion flags left alone")
            return

        async def refresh(show_ids: list[int]) -> None:
            requests = [JobRequest("refresh_single_show", {"show_id": i}) for i in show_ids]
            await ctx.enqueue_many(requests)

        await tmdb_sync.check_completed_tmdb(self.r.pool, self.r.tmdb, args.completed, refresh)

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


def register_catalogue_jobs(registry: Registry, resources: Resources) -> None:
    """Declare every catalogue job with its handler bound to `resources`."""
    jobs = CatalogueJobs(resources)
    for spec in (
        JobSpec("refresh_available_shows", "default", NoArgs, jobs.refresh_available_shows),
        JobSpec("map_show_tmdb", "default", NoArgs, jobs.map_show_tmdb, cap=1),
        JobSpec("clean_duplicate_tmdb", "default", NoArgs, jobs.clean_duplicate_tmdb),
        JobSpec("fetch_missing_tvdb_id", "default", NoArgs, jobs.fetch_missing_tvdb_id),
        JobSpec("check_completed_tmdb", "default", CompletedArgs, jobs.check_completed_tmdb),
        JobSpec(
            "refresh_single_show",
            REFRESH_ONE_SHOW_QUEUE,
            ShowArgs,
            jobs.refresh_single_show,
            unique_key=lambda a: str(a.show_id),
            unique_ttl=REFRESH_SHOW_TTL,
            cap=6,
            retry=LONG_JOB_RETRY,
            timeout=LONG_JOB_TIMEOUT,
            lock_key=lambda a: str(a.show_id),
            lock_mode="try",
        ),
        JobSpec(
            "cleanup_empty_seasons",
            "default",
            ShowArgs,
            jobs.cleanup_empty_seasons,
            unique_key=lambda a: f"cleanup-empty-seasons:{a.show_id}",
            lock_key=lambda a: str(a.show_id),
            lock_mode="wait",
        ),
        JobSpec(
            "fetch_subtitles",
            FETCH_SUBTITLES_QUEUE,
            FetchSubtitlesArgs,
            jobs.fetch_subtitles,
            unique_key=lambda a: f"{a.show_id}-{a.season}",
            cap=10,
            retry=LONG_JOB_RETRY,
            timeout=LONG_JOB_TIMEOUT,
            lock_key=lambda a: f"{a.show_id}-{a.season}",
            lock_mode="try",
        ),
    ):
        registry.register(spec)
