"""Read side of one-time migrations: where each registered or recorded migration stands, for the
`migrations` operation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import asyncpg

from addicted_jobs.jobs import store
from addicted_jobs.jobs.migration import OneTimeMigration
from addicted_jobs.jobs.onetime import MigrationRegistry, MigrationState


@dataclass(frozen=True)
class MigrationStatus:
    """Where one migration stands: its success if any, else its latest attempt."""

    key: str
    state: str  # success | running | fail | pending
    attempts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: float | None = None
    error: str | None = None
    registered: bool = True
    required: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "state": self.state,
            "attempts": self.attempts,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "duration_ms": self.duration_ms,
            "error": self.error.splitlines()[0] if self.error else None,
            "registered": self.registered,
            "required": self.required,
        }


async def list_state(
    pool: asyncpg.Pool, registered: Sequence[OneTimeMigration] = ()
) -> list[MigrationStatus]:
    """Registered migrations in run order (never run: 'pending'), then recorded ones no longer
    registered."""
    rows = await store.onetime_latest(pool)
    recorded = {r["migration_type"]: r for r in rows}
    result: list[MigrationStatus] = []
    for migration in MigrationRegistry(registered).ordered():
        row = recorded.pop(migration.key, None)
        status = _status(migration.key, row) if row else MigrationStatus(migration.key, "pending")
        result.append(replace(status, required=migration.required))
    result.extend(_status(key, row, registered=False) for key, row in sorted(recorded.items()))
    return result


def _status(key: str, row: asyncpg.Record, *, registered: bool = True) -> MigrationStatus:
    return MigrationStatus(
        key=key,
        state=MigrationState(row["state"]).name.lower(),
        attempts=row["attempts"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        duration_ms=row["duration_ms"],
        error=row["error"],
        registered=registered,
    )


async def onetime_rows(
    pool: asyncpg.Pool, registered: Sequence[OneTimeMigration] = ()
) -> list[dict[str, Any]]:
    """The one-time part of the `migrations` operation, JSON-ready (control.ops.Onetime)."""
    return [status.as_dict() for status in await list_state(pool, registered)]
