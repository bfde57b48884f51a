"""The catalogue test bench: the sandbox upstream over HTTP on loopback, real clients pointed at
it, a credential, Resources, and the catalogue jobs registered; plus small SQL probes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg

from addicted_jobs.catalog.credentials import CredentialPool
from addicted_jobs.catalog.languages import culture_name
from addicted_jobs.jobs import Registry
from addicted_jobs.sandbox import Sandbox
from addicted_jobs.settings import Addic7edSettings, RefreshSettings, TmdbSettings
from addicted_jobs.tasks.catalogue import register_catalogue_jobs
from addicted_jobs.tasks.resources import Resources
from addicted_jobs.upstream.addic7ed import Addic7edClient
from addicted_jobs.upstream.resilience import RetrySettings, resilience_of
from addicted_jobs.upstream.tmdb import TmdbClient

COOKIE = "PHPSESSID=catalogue-tests; wikisubtitlesuser=1"
FAST_RETRY = RetrySettings(max_retries=1, base_delay=0.01, max_delay=0.02)
# The configuration's defaults, with quick retries.
ADDIC7ED_FAST = resilience_of(Addic7edSettings()) | {"retry": FAST_RETRY}
TMDB_FAST = resilience_of(TmdbSettings()) | {"retry": FAST_RETRY}


@dataclass
class CatalogueEnv:
    """The catalogue bench of one test: its pool, the running sandbox, Resources wired to it and a
    Registry with the catalogue jobs; plus SQL probes and setters of the catalogue tables."""

    pool: asyncpg.Pool
    sandbox: Sandbox
    resources: Resources
    registry: Registry

    @property
    def credentials(self) -> CredentialPool:
        return self.resources.credentials

    def upstream_calls(self, path: str) -> int:
        """How many requests the sandbox served for `path` so far."""
        return len(self.sandbox.seen(path))

    def season_fetches(self) -> list[tuple[int, int]]:
        """(show, season) of every season page requested, in order."""
        return [
            (int(r.query["show"]), int(r.query["season"]))
            for r in self.sandbox.seen("/ajax_loadShow.php")
        ]

    async def add_show(self, addic7ed_id: int, name: str | None = None, **columns: Any) -> int:
        """A show linked to a sandbox show id (name from the sandbox unless given)."""
        name = name or self.sandbox.catalogue.show_name(addic7ed_id)
        keys = ["name", *columns]
        placeholders = ", ".join(f"${i + 1}" for i in range(len(keys)))
        show_id: int = await self.pool.fetchval(
            f"INSERT INTO tv_shows ({', '.join(keys)}) VALUES ({placeholders}) RETURNING id",
            name,
            *columns.values(),
        )
        await self.pool.execute(
            "INSERT INTO show_external_ids (tv_show_id, source, external_id) VALUES ($1, 0, $2)",
            show_id,
            str(addic7ed_id),
        )
        return show_id

    async def count(self, table: str, where: str = "true", *args: Any) -> int:
        """Rows of `table` (an SQL FROM item) matching `where` with parameters `args`."""
        return int(await self.pool.fetchval(f"SELECT count(*) FROM {table} WHERE {where}", *args))

    async def season_numbers(self, show_id: int) -> list[int]:
        rows = await self.pool.fetch(
            "SELECT number FROM seasons WHERE tv_show_id = $1 ORDER BY number", show_id
        )
        return [r["number"] for r in rows]

    async def age_season(self, show_id: int, number: int, age: timedelta | None) -> None:
        """Pretend the season's episodes were last fetched `age` ago (None: never)."""
        await self.pool.execute(
            """UPDATE seasons SET last_refreshed = now() - $3::interval
               WHERE tv_show_id = $1 AND number = $2""",
            show_id,
            number,
            age,
        )

    async def age_season_list(self, show_id: int, age: timedelta | None) -> None:
        await self.pool.execute(
            "UPDATE tv_shows SET last_season_refreshed = now() - $2::interval WHERE id = $1",
            show_id,
            age,
        )


def addic7ed_client(base_url: str) -> Addic7edClient:
    """An Addic7edClient on `base_url` with fast retries (ADDIC7ED_FAST)."""
    return Addic7edClient(base_url, **ADDIC7ED_FAST, language_code=culture_name)


@asynccontextmanager
async def catalogue_env(
    pool: asyncpg.Pool,
    *,
    shows: int = 60,
    refresh: RefreshSettings | None = None,
    with_tmdb: bool = True,
    credential: bool = True,
) -> AsyncIterator[CatalogueEnv]:
    """A sandbox with `shows` shows and the bench on `pool`: TMDB too unless `with_tmdb` is False,
    one Addic7ed credential (COOKIE) unless `credential` is False. The clients close on exit."""
    async with Sandbox(shows=shows) as sandbox:
        addic7ed = addic7ed_client(sandbox.addic7ed_url)
        tmdb = (
            TmdbClient(sandbox.tmdb_url, sandbox.tmdb_api_key, **TMDB_FAST) if with_tmdb else None
        )
        credentials = CredentialPool(pool)
        if credential:
            await credentials.add(COOKIE)
        resources = Resources(pool, addic7ed, tmdb, refresh or RefreshSettings(), credentials)
        registry = Registry()
        register_catalogue_jobs(registry, resources)
        try:
            yield CatalogueEnv(pool, sandbox, resources, registry)
        finally:
            await addic7ed.aclose()
            if tmdb is not None:
                await tmdb.aclose()
