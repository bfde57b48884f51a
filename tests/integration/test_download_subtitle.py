"""download_subtitle against the sandbox over HTTP: credential rotation on a spent quota, three
spent attempts ending in a retryable error, the anonymous fallback, a file deleted upstream,
and the store that follows a completed subtitle's download.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from addicted_jobs.jobs import Registry
from addicted_jobs.jobs.engine import Engine
from addicted_jobs.storage.compression import Codec
from addicted_jobs.storage.local import LocalStorage
from addicted_jobs.tasks.credentials import RESET, credential_check_hook, register_credential_jobs
from addicted_jobs.tasks.storage import register_storage_jobs
from addicted_jobs.tasks.storage_ops import storage_get
from addicted_jobs.tasks.subtitle_store import SubtitleStore
from addicted_jobs.upstream.sandbox_data import FakeSubtitle, srt_text
from tests.integration.catalog_env import COOKIE, CatalogueEnv, catalogue_env
from tests.integration.conftest import EngineFactory
from tests.support import wait_until

QUEUES = {"default": 2, "fetch-subtitles": 4, "store-subtitle": 4, "download-creds-checker": 3}
SHOW = 7  # a sandbox show id


@dataclass
class Rig:
    env: CatalogueEnv
    engine: Engine
    store: SubtitleStore

    @property
    def pool(self) -> asyncpg.Pool:
        return self.env.pool

    def pick(self, *, deleted: bool = False, completed: bool = True) -> FakeSubtitle:
        catalogue = self.env.sandbox.catalogue
        for season in catalogue.seasons(SHOW):
            for episode in catalogue.episodes(SHOW, season) or ():
                for sub in episode.subtitles:
                    if sub.deleted == deleted and (sub.completion >= 100) == completed:
                        return sub
        raise AssertionError("no such subtitle in the sandbox")

    async def add(self, sub: FakeSubtitle) -> int:
        """A catalogue row for a sandbox subtitle."""
        show_id = await self.env.add_show(SHOW)
        episode_id = await self.pool.fetchval(
            """INSERT INTO episodes (tv_show_id, season, number, title) VALUES ($1, 1, 1, 'E')
               RETURNING id""",
            show_id,
        )
        subtitle_id: int = await self.pool.fetchval(
            """INSERT INTO subtitles (episode_id, scene, version, completed, completion_pct,
                   hearing_impaired, corrected, download_uri, language)
               VALUES ($1, $2, $3, $4, $5, false, false, $6, $7) RETURNING id""",
            episode_id,
            sub.scene,
            sub.version,
            sub.completion >= 100,
            sub.completion,
            sub.href,
            sub.language,
        )
        return subtitle_id

    async def download(self, subtitle_id: int) -> dict[str, Any]:
        job_id = (await self.engine.enqueue("download_subtitle", {"subtitle_id": subtitle_id})).id

        async def attempted() -> asyncpg.Record | None:
            row = await self.pool.fetchrow("SELECT * FROM jobs.jobs WHERE id = $1", job_id)
            assert row is not None
            return row if row["state"] in ("succeeded", "failed", "scheduled") else None

        return dict(await wait_until(attempted, timeout=15, message=f"download job {job_id}"))

    async def stored(self, subtitle_id: int) -> bytes:
        async def probe() -> str | None:
            path: str | None = await self.pool.fetchval(
                "SELECT storage_path FROM subtitles WHERE id = $1", subtitle_id
            )
            return path

        await wait_until(probe, timeout=15, message=f"subtitle {subtitle_id} stored")
        return base64.b64decode((await storage_get(self.pool, self.store, subtitle_id))["content"])

    async def credential(self, credential_id: int) -> asyncpg.Record:
        row = await self.pool.fetchrow(
            "SELECT * FROM addicted_user_credentials WHERE id = $1", credential_id
        )
        assert row is not None
        return row

    async def count(self, subtitle_id: int) -> int:
        return int(
            await self.pool.fetchval(
                "SELECT download_count FROM subtitles WHERE id = $1", subtitle_id
            )
        )

    def cookies_downloading(self) -> list[str | None]:
        return [r.cookie for r in self.env.sandbox.history if r.path.startswith("/updated/")]


async def _rig(
    pool: asyncpg.Pool, make_engine: EngineFactory, tmp_path: Path, credential: bool
) -> AsyncIterator[Rig]:
    async with catalogue_env(pool, shows=10, with_tmdb=False, credential=credential) as env:
        store = SubtitleStore(LocalStorage(tmp_path / "objects", fsync=False), Codec(), pool)
        registry = Registry()
        register_storage_jobs(registry, env.resources, store, train_after=0)
        register_credential_jobs(registry, env.resources)
        # Quota checks are queued but not run: the assertions look at the marks they would clear.
        engine = await make_engine(registry, concurrency=QUEUES)
        await engine.set_paused("download-creds-checker", True)
        env.credentials.on_exceeded = credential_check_hook(engine.enqueue)
        yield Rig(env, engine, store)


@pytest.fixture
async def rig(
    db_pool: asyncpg.Pool, make_engine: EngineFactory, tmp_path: Path
) -> AsyncIterator[Rig]:
    async for value in _rig(db_pool, make_engine, tmp_path, credential=True):
        yield value


@pytest.fixture
async def anonymous_rig(
    db_pool: asyncpg.Pool, make_engine: EngineFactory, tmp_path: Path
) -> AsyncIterator[Rig]:
    async for value in _rig(db_pool, make_engine, tmp_path, credential=False):
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
