"""The pool of Addic7ed session cookies (addicted_user_credentials): least-used picks, and usage
counts kept by atomic SQL so concurrent jobs never lose one (spec section 6).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg
import structlog

log = structlog.get_logger(__name__)

Use = Literal["query", "download"]
OnExceeded = Callable[[int], Awaitable[object]]

_COLUMNS = "id, cookie, usage, download_usage, last_usage, download_exceeded_date"


class NoCredentials(LookupError):
    """Scraping needs at least one session cookie and the table is empty."""

    def __init__(self) -> None:
        super().__init__(
            "no Addic7ed credentials in addicted_user_credentials: scraping needs a logged-in "
            "session cookie; add one with `addicted-jobs credentials add COOKIE`"
        )


@dataclass(frozen=True, slots=True)
class Credential:
    id: int
    cookie: str
    usage: int
    download_usage: int
    last_usage: datetime | None
    download_exceeded_date: datetime | None

    @property
    def exceeded(self) -> bool:
        return self.download_exceeded_date is not None


def _credential(row: asyncpg.Record) -> Credential:
    return Credential(**dict(row))


class CredentialPool:
    """Picks are plain reads (the original's MIN(usage) choice, ties broken by id); every count is
    an `x = x + 1` UPDATE at release time. `on_exceeded` runs after a release of a credential that
    is marked exceeded, so the caller can enqueue its quota check (reset_download_credential).
    """

    def __init__(self, pool: asyncpg.Pool, on_exceeded: OnExceeded | None = None) -> None:
        self.pool = pool
        self.on_exceeded = on_exceeded

    async def pick_querying(self) -> Credential:
        # Exceeded credentials still scrape: the quota only limits downloads.
        row = await self.pool.fetchrow(
            f"SELECT {_COLUMNS} FROM addicted_user_credentials ORDER BY usage, id LIMIT 1"
        )
        if row is None:
            raise NoCredentials()
        return _credential(row)

    async def pick_download(self) -> Credential | None:
        """The least-used credential with quota left, or None: download anonymously."""
        row = await self.pool.fetchrow(
            f"""SELECT {_COLUMNS} FROM addicted_user_credentials
                WHERE download_exceeded_date IS NULL ORDER BY download_usage, id LIMIT 1"""
        )
        if row is None:
            log.warning("every download credential is exceeded (or none exist); going anonymous")
            return None
        return _credential(row)

    async def release(self, credential_id: int, use: Use) -> bool:
        """Count one use; True when the credential is marked exceeded (its check is due)."""
        column = "usage" if use == "query" else "download_usage"
        exceeded = await self.pool.fetchval(
            f"""UPDATE addicted_user_credentials SET {column} = {column} + 1, last_usage = now()
                WHERE id = $1 RETURNING download_exceeded_date IS NOT NULL""",
            credential_id,
        )
        if exceeded and self.on_exceeded is not None:
            await self.on_exceeded(credential_id)
        return bool(exceeded)

    async def mark_exceeded(self, credential_id: int) -> None:
        # Written at once, not at release as the original did: concurrent picks skip it now.
        await self.pool.execute(
            """UPDATE addicted_user_credentials SET download_exceeded_date = now()
               WHERE id = $1 AND download_exceeded_date IS NULL""",
            credential_id,
        )

    @asynccontextmanager
    async def querying(self) -> AsyncIterator[Credential]:
        """The least-used querying credential, counted when the block ends (even on error)."""
        credential = await self.pick_querying()
        try:
            yield credential
        finally:
            await self.release(credential.id, "query")

    @asynccontextmanager
    async def downloading(self) -> AsyncIterator[Credential | None]:
        credential = await self.pick_download()
        try:
            yield credential
        finally:
            if credential is not None:
                await self.release(credential.id, "download")

    # ---- administration and the quota check -----------------------------------------------------

    async def add(self, cookie: str) -> tuple[int, bool]:
        """Store a session cookie; returns (id, created). Adding a known cookie changes nothing."""
        cookie = cookie.strip()
        if not cookie:
            raise ValueError("a credential is a non-empty Addic7ed session cookie string")
        row = await self.pool.fetchrow(
            """WITH ins AS (
                   INSERT INTO addicted_user_credentials (cookie) VALUES ($1)
                   ON CONFLICT (cookie) DO NOTHING RETURNING id)
               SELECT id, true AS created FROM ins
               UNION ALL
               SELECT id, false FROM addicted_user_credentials WHERE cookie = $1
               LIMIT 1""",
            cookie,
        )
        assert row is not None
        return int(row["id"]), bool(row["created"])

    async def remove(self, credential_id: int) -> bool:
        status = await self.pool.execute(
            "DELETE FROM addicted_user_credentials WHERE id = $1", credential_id
        )
        return bool(status.endswith(" 1"))

    async def get(self, credential_id: int) -> Credential | None:
        row = await self.pool.fetchrow(
            f"SELECT {_COLUMNS} FROM addicted_user_credentials WHERE id = $1", credential_id
        )
        return _credential(row) if row is not None else None

    async def all_credentials(self) -> list[Credential]:
        rows = await self.pool.fetch(
            f"SELECT {_COLUMNS} FROM addicted_user_credentials ORDER BY id"
        )
        return [_credential(r) for r in rows]

    async def exceeded_ids(self) -> list[int]:
        rows = await self.pool.fetch(
            """SELECT id FROM addicted_user_credentials
               WHERE download_exceeded_date IS NOT NULL ORDER BY id"""
        )
        return [int(r["id"]) for r in rows]

    async def record_quota(self, credential_id: int, used: int, fully_used: bool) -> bool:
        """Save what panel.php said; the exceeded mark is cleared only when quota is left.

        Returns False when the credential no longer exists.
        """
        status = await self.pool.execute(
            """UPDATE addicted_user_credentials SET download_usage = $2,
                   download_exceeded_date = CASE WHEN $3 THEN coalesce(download_exceeded_date, now())
                                                 ELSE NULL END
               WHERE id = $1""",
            credential_id,
            used,
            fully_used,
        )
        return bool(status.endswith(" 1"))
