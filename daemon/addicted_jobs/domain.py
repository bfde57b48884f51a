"""The subtitle domain as the daemon runs it: upstream clients, the catalogue's resources and the
subtitle store; their jobs, one-time migrations and socket operations. Only app.py uses this.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from addicted_jobs.catalog.credentials import CredentialPool
from addicted_jobs.catalog.languages import culture_name
from addicted_jobs.control.protocol import OpError
from addicted_jobs.control.server import OpHandler, Peer
from addicted_jobs.jobs import Enqueuer, OneTimeMigration, Registry
from addicted_jobs.onetime_migrations import all_migrations
from addicted_jobs.settings import Settings, UpstreamResilience
from addicted_jobs.tasks import storage_ops
from addicted_jobs.tasks.catalogue import register_catalogue_jobs
from addicted_jobs.tasks.catalogue_ops import request_subtitles_op
from addicted_jobs.tasks.credential_ops import (
    CredentialNotFound,
    credentials_add,
    credentials_list,
    credentials_remove,
)
from addicted_jobs.tasks.credentials import credential_check_hook, register_credential_jobs
from addicted_jobs.tasks.resources import Resources
from addicted_jobs.tasks.storage import register_storage_jobs
from addicted_jobs.tasks.storage_setup import open_subtitle_store
from addicted_jobs.tasks.subtitle_store import SubtitleStore
from addicted_jobs.upstream.addic7ed import Addic7edClient
from addicted_jobs.upstream.resilience import BreakerSettings, RetrySettings, Timeouts
from addicted_jobs.upstream.tmdb import TmdbClient

READ_ONLY_OPS = {"credentials-list", *storage_ops.READ_ONLY_OPS}


class _CookieArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cookie: str = Field(min_length=1)


class _IdArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: int = Field(ge=1, le=2**31 - 1)  # addicted_user_credentials.id is an int


def resilience_of(conf: UpstreamResilience) -> dict[str, Any]:
    """An upstream client's retry, breaker and timeout arguments from its config section."""
    return {
        "retry": RetrySettings(conf.retries, conf.retry_base_s, conf.retry_max_s),
        "breaker": BreakerSettings(
            min_calls=conf.breaker_min_calls, open_seconds=conf.breaker_open_s
        ),
        "timeouts": Timeouts(
            attempt=conf.attempt_timeout_s,
            total=max(conf.attempt_timeout_s, 300.0),
            connect=min(30.0, conf.attempt_timeout_s),
        ),
    }


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

    def ops(self, engine: Enqueuer) -> dict[str, OpHandler]:
        pool = self.resources.pool

        async def request_subtitles(args: dict[str, Any], peer: Peer) -> dict[str, Any]:
            try:
                return await request_subtitles_op(self.resources, engine.enqueue, args)
            except ValidationError:
                raise  # the server answers invalid_args, field by field
            except LookupError as exc:
                raise OpError("not_found", str(exc)) from exc
            except ValueError as exc:
                raise OpError("invalid_args", str(exc)) from exc

        async def add(args: dict[str, Any], peer: Peer) -> dict[str, Any]:
            parsed = _CookieArgs.model_validate(args)
            try:
                return await credentials_add(pool, parsed.cookie)
            except ValueError as exc:
                raise OpError("invalid_args", str(exc)) from exc

        async def listing(args: dict[str, Any], peer: Peer) -> dict[str, Any]:
            return await credentials_list(pool)

        async def remove(args: dict[str, Any], peer: Peer) -> dict[str, Any]:
            parsed = _IdArgs.model_validate(args)
            try:
                return await credentials_remove(pool, parsed.id)
            except CredentialNotFound as exc:
                raise OpError("not_found", str(exc)) from exc

        return {
            "request-subtitles": request_subtitles,
            "credentials-add": add,
            "credentials-list": listing,
            "credentials-remove": remove,
            **storage_ops.storage_handlers(
                pool,
                self.store,
                enqueue_many=engine.enqueue_many,
                training_dir=self.settings.storage.training_dir,
            ),
        }

    async def close(self) -> None:
        await self.resources.addic7ed.aclose()
        if self.resources.tmdb is not None:
            await self.resources.tmdb.aclose()
        await self.store.close()
