"""The subtitle domain as the daemon runs it: upstream clients, the catalogue's resources and the
subtitle store; their jobs, one-time migrations and socket operations (declared in tasks/ops/).
Wiring only. Only app.py uses this.
"""

from __future__ import annotations

import asyncpg

from addicted_jobs.catalog.credentials import CredentialPool
from addicted_jobs.catalog.languages import culture_name
from addicted_jobs.control.op import Op
from addicted_jobs.jobs import Enqueuer, OneTimeMigration, Registry
from addicted_jobs.onetime_migrations import all_migrations
from addicted_jobs.settings import Settings
from addicted_jobs.storage.setup import open_subtitle_store
from addicted_jobs.storage.store import SubtitleStore
from addicted_jobs.tasks.catalogue import register_catalogue_jobs
from addicted_jobs.tasks.credentials import credential_check_hook, register_credential_jobs
from addicted_jobs.tasks.ops import subtitle_ops
from addicted_jobs.tasks.resources import Resources
from addicted_jobs.tasks.storage import register_storage_jobs
from addicted_jobs.upstream.addic7ed import Addic7edClient
from addicted_jobs.upstream.resilience import resilience_of
from addicted_jobs.upstream.tmdb import TmdbClient


class Domain:
    def __init__(self, settings: Settings, resources: Resources, store: SubtitleStore) -> None:
        self.settings = settings
        self.resources = resources
        self.store = store

    @classmethod
    async def open(cls, settings: Settings, pool: asyncpg.Pool) -> Domain:
        addic7ed = Addic7edClient(
            settings.addic7ed.base_url,
            proxy=settings.addic7ed.proxy,
            requests_per_second=settings.addic7ed.requests_per_second,
            language_code=culture_name,
            max_page_bytes=settings.addic7ed.max_page_bytes,
            max_download_bytes=settings.storage.max_object_bytes,
            max_shows=settings.addic7ed.max_shows,
            **resilience_of(settings.addic7ed),
        )
        tmdb = (
            TmdbClient(
                settings.tmdb.base_url,
                settings.tmdb.api_key,
                max_page_bytes=settings.tmdb.max_page_bytes,
                **resilience_of(settings.tmdb),
            )
            if settings.tmdb.api_key
            else None
        )
        resources = Resources(pool, addic7ed, tmdb, settings.refresh, CredentialPool(pool))
        store = await open_subtitle_store(settings, pool)
        return cls(settings, resources, store)

    def register_jobs(self, registry: Registry) -> None:
        register_catalogue_jobs(registry, self.resources)
        register_credential_jobs(registry, self.resources)
        register_storage_jobs(
            registry, self.resources, self.store, train_after=self.settings.storage.train_after
        )

    def bind(self, engine: Enqueuer) -> None:
        """Hooks that need the engine: an exceeded credential's release queues its quota check."""
        self.resources.credentials.on_exceeded = credential_check_hook(engine.enqueue)
        self.store.on_legacy = lambda path: engine.enqueue("migrate_compression", {"path": path})

    def migrations(self) -> list[OneTimeMigration]:
        return all_migrations(self.resources)

    def ops(self, engine: Enqueuer) -> list[Op]:
        """The domain's socket operations, served with the engine's enqueue functions."""
        return subtitle_ops(
            self.resources,
            self.store,
            enqueue=engine.enqueue,
            enqueue_many=engine.enqueue_many,
            training_dir=self.settings.storage.training_dir,
        )

    async def close(self) -> None:
        await self.resources.addic7ed.aclose()
        if self.resources.tmdb is not None:
            await self.resources.tmdb.aclose()
        await self.store.close()
