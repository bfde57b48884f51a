"""What the catalogue job handlers close over: the pool, the upstream clients, the refresh
intervals, the credential pool, and the one Refresher whose try-locks every job shares.

The Refresher is built with the first job or request that refreshes: its module loads most of
the catalogue and the parsed upstream records, which a daemon running only engine jobs never
needs (tests/integration/test_lazy_domain.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import asyncpg

from addicted_jobs.catalog.credentials import CredentialPool
from addicted_jobs.settings import RefreshSettings
from addicted_jobs.upstream.addic7ed import Addic7edClient
from addicted_jobs.upstream.tmdb import TmdbClient

if TYPE_CHECKING:
    from addicted_jobs.catalog.refresh import Refresher


@dataclass
class Resources:
    pool: asyncpg.Pool
    addic7ed: Addic7edClient
    tmdb: TmdbClient | None  # None: no TMDB configured, the TMDB jobs log and do nothing
    refresh: RefreshSettings
    credentials: CredentialPool

    @cached_property
    def refresher(self) -> Refresher:
        """The one Refresher of this daemon, built on first use (no await: two first users in
        one loop turn cannot build two)."""
        from addicted_jobs.catalog.refresh import Refresher

        return Refresher(self.pool, self.addic7ed, self.credentials, self.refresh)
