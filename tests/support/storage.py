"""What the storage tests share: realistic subtitle files and subtitle rows to store them for, an
S3Storage on the moto server, the engine settings of the storage jobs, and waiting for a job."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from addicted_jobs.jobs.backoff import RetryPolicy
from addicted_jobs.sandbox.data import Catalogue, srt_text
from addicted_jobs.storage.s3 import S3Storage
from tests.plugins.s3 import S3_ACCESS_KEY_ID, S3_REGION, S3_SECRET_ACCESS_KEY
from tests.support import wait_until

FAST_RETRY = RetryPolicy(retries=10, delays=(0.3,))
"""The storage jobs' retry policy in tests: ten retries 0.3 s apart."""
QUEUES = {"default": 2, "store-subtitle": 5, "fetch-subtitles": 2}


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


async def job(pool: asyncpg.Pool, job_id: int) -> dict[str, Any]:
    """The jobs.jobs row of `job_id`; AssertionError when there is none."""
    row = await pool.fetchrow("SELECT * FROM jobs.jobs WHERE id = $1", job_id)
    assert row is not None
    return dict(row)


async def until_done(pool: asyncpg.Pool, job_id: int, timeout: float = 15) -> dict[str, Any]:
    """The job's row once it succeeded, failed or was deleted; AssertionError after `timeout` s."""

    async def probe() -> dict[str, Any] | None:
        row = await job(pool, job_id)
        return row if row["state"] in ("succeeded", "failed", "deleted") else None

    return await wait_until(probe, timeout=timeout, message=f"job {job_id} to finish")


def s3(endpoint: str, bucket: str, **options: Any) -> S3Storage:
    """An S3Storage on the moto server at `endpoint` with the test credentials."""
    return S3Storage(endpoint, bucket, S3_REGION, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY, **options)
