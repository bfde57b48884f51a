"""The download bench: an engine with the download and storage jobs over the catalogue bench and
local storage, and the few probes the download tests read."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from addicted_jobs.jobs.engine import Engine
from addicted_jobs.jobs.spec import Registry
from addicted_jobs.sandbox.data import FakeSubtitle
from addicted_jobs.storage.compression import Codec
from addicted_jobs.storage.local import LocalStorage
from addicted_jobs.storage.store import SubtitleStore
from addicted_jobs.tasks.credentials import credential_check_hook, register_credential_jobs
from addicted_jobs.tasks.ops.storage import storage_get
from addicted_jobs.tasks.storage import register_storage_jobs
from tests.support import wait_until
from tests.support.catalogue import CatalogueEnv, catalogue_env
from tests.support.engine import EngineFactory

QUEUES = {"default": 2, "fetch-subtitles": 4, "store-subtitle": 4, "download-creds-checker": 3}
SHOW = 7  # a sandbox show id


@dataclass
class Rig:
    """An engine running download_subtitle and store_subtitle on local files, over the catalogue
    bench (tests/support/catalogue.py); its methods add, download and inspect one subtitle."""

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


@asynccontextmanager
async def download_rig(
    pool: asyncpg.Pool, make_engine: EngineFactory, tmp_path: Path, credential: bool
) -> AsyncIterator[Rig]:
    """A Rig on `pool` for the test's `make_engine`, its objects under `tmp_path`; with one
    Addic7ed credential (COOKIE) unless `credential` is False. The quota checker queue is paused."""
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
