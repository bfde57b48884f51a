"""What the catalogue job handlers close over: the pool, the upstream clients, the refresh
intervals, the credential pool, and the one Refresher whose try-locks every job shares.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

from addicted_jobs.catalog.credentials import CredentialPool
from addicted_jobs.catalog.refresh import Refresher
from addicted_jobs.settings import RefreshSettings
from addicted_jobs.upstream.addic7ed import Addic7edClient
from addicted_jobs.upstream.tmdb import TmdbClient


@dataclass
class Resources:
    pool: asyncpg.Pool
    addic7ed: Addic7edClient
    tmdb: TmdbClient | None  # None: no TMDB configured, the TMDB jobs log and do nothing
    refresh: RefreshSettings
    credentials: CredentialPool
    refresher: Refresher = field(init=False)

    def __post_init__(self) -> None:
        self.refresher = Refresher(self.pool, self.addic7ed, self.credentials, self.refresh)
