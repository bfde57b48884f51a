"""`make demo` hung for good at "downloads and stores: 114/115" while one download retried on an
error with hours of backoff ahead: the demo now stops waiting and says which job and why."""

from __future__ import annotations

import asyncio
import io

import asyncpg
import pytest

from addicted_jobs.sandbox import demo


async def add_job(pool: asyncpg.Pool, state: str, last_error: str | None) -> int:
    return int(
        await pool.fetchval(
            """INSERT INTO jobs.jobs (name, queue, state, attempt, max_attempts, run_at, last_error)
               VALUES ('download_subtitle', 'fetch-subtitles', $1, 1, 11,
                       now() + interval '1 hour', $2) RETURNING id""",
            state,
            last_error,
        )
    )


async def test_only_retrying_jobs_left_stops_the_wait_naming_them(
    db_pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(demo, "STALL_S", 0.3)
    await add_job(db_pool, "succeeded", None)
    stuck = await add_job(db_pool, "scheduled", "UnicodeEncodeError: 'ascii' codec")
    with pytest.raises(demo.DemoStalled) as caught:
        await asyncio.wait_for(
            demo._wait_idle(db_pool, "downloads", 0, demo.Progress(io.StringIO())), 10
        )
    assert f"#{stuck} download_subtitle: UnicodeEncodeError" in str(caught.value)


async def test_a_job_merely_delayed_is_still_waited_for(
    db_pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(demo, "STALL_S", 0.3)
    await add_job(db_pool, "scheduled", None)  # scheduled, never failed: not a stall
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(
            demo._wait_idle(db_pool, "downloads", 0, demo.Progress(io.StringIO())), 1.5
        )
