"""Without a TMDB client ([tmdb] api_key unset), each TMDB job logs one warning naming what it
left alone and does nothing else: it succeeds, touches no table and queues no follow-up."""

from __future__ import annotations

from typing import Any, cast

import pytest
import structlog
from structlog.testing import capture_logs

from addicted_jobs.jobs import JobContext, NoArgs
from addicted_jobs.tasks.catalogue_args import CompletedArgs
from addicted_jobs.tasks.catalogue_jobs import CatalogueJobs
from addicted_jobs.tasks.resources import Resources


class Untouchable:
    """Stands for the pool and the engine: any use of them fails the test."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"{name} used by a TMDB job without a TMDB client")


class NoTmdb:
    pool = Untouchable()
    tmdb = None


@pytest.mark.parametrize(
    ("job", "args", "left_alone"),
    [
        ("map_show_tmdb", NoArgs(), "nothing mapped"),
        ("clean_duplicate_tmdb", NoArgs(), "duplicates left alone"),
        ("fetch_missing_tvdb_id", NoArgs(), "TvDB ids left alone"),
        ("check_completed_tmdb", CompletedArgs(completed=True), "completion flags left alone"),
    ],
)
async def test_a_tmdb_job_without_a_client_warns_once_and_does_nothing(
    job: str, args: Any, left_alone: str
) -> None:
    jobs = CatalogueJobs(cast(Resources, NoTmdb()))
    ctx = JobContext(1, job, "default", 1, 1, cast(Any, Untouchable()), structlog.get_logger())
    with capture_logs() as lines:
        await getattr(jobs, job)(ctx, args)
    assert [(line["log_level"], line["event"]) for line in lines] == [
        ("warning", f"no TMDB client configured; {left_alone}")
    ]
