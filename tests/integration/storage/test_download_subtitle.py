"""download_subtitle against the sandbox over HTTP: credential rotation on a spent quota, three
spent attempts ending in a retryable error, the anonymous fallback, a file deleted upstream,
and the store that follows a completed subtitle's download.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from addicted_jobs.sandbox.data import srt_text
from addicted_jobs.tasks.credentials import RESET
from tests.support.catalogue import COOKIE
from tests.support.download import Rig, download_rig
from tests.support.engine import EngineFactory


@pytest.fixture
async def rig(
    db_pool: asyncpg.Pool, make_engine: EngineFactory, tmp_path: Path
) -> AsyncIterator[Rig]:
    async with download_rig(db_pool, make_engine, tmp_path, credential=True) as value:
        yield value


@pytest.fixture
async def anonymous_rig(
    db_pool: asyncpg.Pool, make_engine: EngineFactory, tmp_path: Path
) -> AsyncIterator[Rig]:
    async with download_rig(db_pool, make_engine, tmp_path, credential=False) as value:
        yield value


async def test_a_completed_subtitle_is_downloaded_counted_and_stored(rig: Rig) -> None:
    sub = rig.pick()
    subtitle_id = await rig.add(sub)
    assert (await rig.download(subtitle_id))["state"] == "succeeded"
    assert await rig.stored(subtitle_id) == srt_text(rig.env.sandbox.seed, sub)
    assert await rig.count(subtitle_id) == 1
    assert rig.cookies_downloading() == [COOKIE]
    assert (await rig.credential(1))["download_usage"] == 1
    # Stored already: a second request is a no-op that never reaches Addic7ed.
    assert (await rig.download(subtitle_id))["state"] == "succeeded"
    assert rig.cookies_downloading() == [COOKIE]


async def test_a_spent_quota_rotates_to_the_next_credential(rig: Rig) -> None:
    second, _ = await rig.env.credentials.add("PHPSESSID=second")
    rig.env.sandbox.set_downloads_used(COOKIE, rig.env.sandbox.quota_per_cookie)
    subtitle_id = await rig.add(rig.pick())
    assert (await rig.download(subtitle_id))["state"] == "succeeded"
    assert rig.cookies_downloading() == [COOKIE, "PHPSESSID=second"]
    first = await rig.credential(1)
    assert first["download_exceeded_date"] is not None and first["download_usage"] == 1
    assert (await rig.credential(second))["download_exceeded_date"] is None
    checks = await rig.pool.fetch("SELECT args FROM jobs.jobs WHERE name = $1", RESET)
    assert [c["args"] for c in checks] == [{"credential_id": 1}]
    await rig.stored(subtitle_id)


async def test_a_200_limit_page_rotates_like_the_redirect_and_is_never_stored(rig: Rig) -> None:
    second, _ = await rig.env.credentials.add("PHPSESSID=second")
    rig.env.sandbox.exceeded_answer = "page"  # 200 text/html instead of the 302
    rig.env.sandbox.set_downloads_used(COOKIE, rig.env.sandbox.quota_per_cookie)
    sub = rig.pick()
    subtitle_id = await rig.add(sub)
    assert (await rig.download(subtitle_id))["state"] == "succeeded"
    assert rig.cookies_downloading() == [COOKIE, "PHPSESSID=second"]
    first = await rig.credential(1)
    assert first["download_exceeded_date"] is not None
    assert (await rig.credential(second))["download_exceeded_date"] is None
    checks = await rig.pool.fetch("SELECT args FROM jobs.jobs WHERE name = $1", RESET)
    assert [c["args"] for c in checks] == [{"credential_id": 1}]
    # What is stored is the file from the second credential, not the page from the first.
    assert await rig.stored(subtitle_id) == srt_text(rig.env.sandbox.seed, sub)


async def test_any_other_200_page_is_retried_and_nothing_is_stored(rig: Rig) -> None:
    rig.env.sandbox.login_wall = True  # every download answers the login page
    subtitle_id = await rig.add(rig.pick())
    job = await rig.download(subtitle_id)
    assert job["state"] == "scheduled" and job["attempt"] == 1  # retried later, not failed
    assert "NotASubtitle" in job["last_error"] and "'Login - Addic7ed.com'" in job["last_error"]
    assert (await rig.credential(1))["download_exceeded_date"] is None  # not a quota matter
    assert await rig.count(subtitle_id) == 0
    assert await rig.env.count("jobs.jobs", "name = 'store_subtitle'") == 0
    stored = await rig.pool.fetchval(
        "SELECT storage_path FROM subtitles WHERE id = $1", subtitle_id
    )
    assert stored is None


async def test_three_spent_attempts_end_with_a_retryable_error(rig: Rig) -> None:
    cookies = [COOKIE, "PHPSESSID=two", "PHPSESSID=three"]
    for cookie in cookies:
        await rig.env.credentials.add(cookie)
        rig.env.sandbox.set_downloads_used(cookie, rig.env.sandbox.quota_per_cookie)
    subtitle_id = await rig.add(rig.pick())
    job = await rig.download(subtitle_id)
    assert job["state"] == "scheduled" and job["attempt"] == 1  # retried later, not failed
    assert "DownloadQuotaExhausted" in job["last_error"]
    assert rig.cookies_downloading() == cookies
    assert await rig.pool.fetchval(
        "SELECT count(*) FROM addicted_user_credentials WHERE download_exceeded_date IS NOT NULL"
    ) == len(cookies)
    assert await rig.count(subtitle_id) == 0
    assert (
        await rig.pool.fetchval("SELECT storage_path FROM subtitles WHERE id = $1", subtitle_id)
        is None
    )


async def test_no_usable_credential_downloads_anonymously(anonymous_rig: Rig) -> None:
    rig = anonymous_rig
    sub = rig.pick()
    subtitle_id = await rig.add(sub)
    assert (await rig.download(subtitle_id))["state"] == "succeeded"
    assert rig.cookies_downloading() == [None]
    assert await rig.stored(subtitle_id) == srt_text(rig.env.sandbox.seed, sub)


async def test_every_credential_exceeded_falls_back_to_anonymous(rig: Rig) -> None:
    await rig.env.credentials.mark_exceeded(1)
    subtitle_id = await rig.add(rig.pick())
    assert (await rig.download(subtitle_id))["state"] == "succeeded"
    assert rig.cookies_downloading() == [None]


async def test_a_file_deleted_upstream_removes_the_row(rig: Rig) -> None:
    subtitle_id = await rig.add(rig.pick(deleted=True))
    assert (await rig.download(subtitle_id))["state"] == "succeeded"
    assert await rig.env.count("subtitles", "id = $1", subtitle_id) == 0
    assert await rig.env.count("episodes") == 1  # only the subtitle goes


async def test_an_incomplete_subtitle_is_counted_but_not_stored(rig: Rig) -> None:
    subtitle_id = await rig.add(rig.pick(completed=False))
    assert (await rig.download(subtitle_id))["state"] == "succeeded"
    assert await rig.count(subtitle_id) == 1
    assert await rig.env.count("jobs.jobs", "name = 'store_subtitle'") == 0


async def test_requests_for_one_subtitle_collapse_and_a_missing_row_is_no_error(rig: Rig) -> None:
    await rig.engine.set_paused("fetch-subtitles", True)
    first = await rig.engine.enqueue("download_subtitle", {"subtitle_id": 99})
    second = await rig.engine.enqueue("download_subtitle", {"subtitle_id": 99})
    assert second.id == first.id and not second.created
    await rig.engine.set_paused("fetch-subtitles", False)
    assert (await rig.download(99))["state"] == "succeeded"
    assert rig.cookies_downloading() == []
