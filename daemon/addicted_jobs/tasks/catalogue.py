"""The catalogue jobs (spec 1.3-1.11): their JobSpecs, with queue, cap, unique key and TTL,
retries, timeout and lock as in spec 1.1. Their arguments are in tasks/catalogue_args.py; the
handlers (CatalogueJobs, in tasks/catalogue_jobs.py) load with the first catalogue job a daemon
runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import cache
from typing import TYPE_CHECKING, TypeVar

from pydantic import BaseModel

from addicted_jobs.jobs import JobContext, JobSpec, NoArgs, Registry, RetryPolicy
from addicted_jobs.settings import FETCH_SUBTITLES_QUEUE, REFRESH_ONE_SHOW_QUEUE
from addicted_jobs.tasks.catalogue_args import CompletedArgs, FetchSubtitlesArgs, ShowArgs
from addicted_jobs.tasks.resources import Resources

if TYPE_CHECKING:
    from addicted_jobs.tasks.catalogue_jobs import CatalogueJobs

A = TypeVar("A", bound=BaseModel)
Handler = Callable[[JobContext, A], Awaitable[None]]

# Fixed delay table of RefreshSingleShow and FetchSubtitles, seconds by retry number; the last
# value repeats once the table is exhausted.
CATALOGUE_DELAYS: tuple[int, ...] = (60, 600, 900, 2700, 3600, 600, 1200, 2400, 2700, 3600)
# The two long jobs: 20 retries on the fixed table, then deleted; hard-cancelled after 10 min.
LONG_JOB_RETRY = RetryPolicy(retries=20, delays=CATALOGUE_DELAYS, on_exhausted="delete")
LONG_JOB_TIMEOUT = 600.0
REFRESH_SHOW_TTL = 7200.0
__all__ = [
    "CATALOGUE_DELAYS",
    "CompletedArgs",
    "FetchSubtitlesArgs",
    "ShowArgs",
    "register_catalogue_jobs",
]


def register_catalogue_jobs(registry: Registry, resources: Resources) -> None:
    """Declare every catalogue job with its handler bound to `resources`; the handlers' module
    loads with the first catalogue job that runs."""

    @cache
    def jobs() -> CatalogueJobs:
        from addicted_jobs.tasks.catalogue_jobs import CatalogueJobs

        return CatalogueJobs(resources)

    def handler(method: Callable[[CatalogueJobs], Handler[A]]) -> Handler[A]:
        # `method` picks the bound handler (typed: mypy matches its argument model with the
        # spec's), called in the job's own task: timeouts and cancellation reach it as before.
        async def run(ctx: JobContext, args: A) -> None:
            await method(jobs())(ctx, args)

        return run

    for spec in (
        JobSpec(
            "refresh_available_shows",
            "default",
            NoArgs,
            handler(lambda j: j.refresh_available_shows),
        ),
        JobSpec("map_show_tmdb", "default", NoArgs, handler(lambda j: j.map_show_tmdb), cap=1),
        JobSpec(
            "clean_duplicate_tmdb", "default", NoArgs, handler(lambda j: j.clean_duplicate_tmdb)
        ),
        JobSpec(
            "fetch_missing_tvdb_id", "default", NoArgs, handler(lambda j: j.fetch_missing_tvdb_id)
        ),
        JobSpec(
            "check_completed_tmdb",
            "default",
            CompletedArgs,
            handler(lambda j: j.check_completed_tmdb),
        ),
        JobSpec(
            "refresh_single_show",
            REFRESH_ONE_SHOW_QUEUE,
            ShowArgs,
            handler(lambda j: j.refresh_single_show),
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
            handler(lambda j: j.cleanup_empty_seasons),
            unique_key=lambda a: f"cleanup-empty-seasons:{a.show_id}",
            lock_key=lambda a: str(a.show_id),
            lock_mode="wait",
        ),
        JobSpec(
            "fetch_subtitles",
            FETCH_SUBTITLES_QUEUE,
            FetchSubtitlesArgs,
            handler(lambda j: j.fetch_subtitles),
            unique_key=lambda a: f"{a.show_id}-{a.season}",
            cap=10,
            retry=LONG_JOB_RETRY,
            timeout=LONG_JOB_TIMEOUT,
            lock_key=lambda a: f"{a.show_id}-{a.season}",
            lock_mode="try",
        ),
    ):
        registry.register(spec)
