"""Read side of one-time migrations: where each stands, and the `migrations` operation's answer
(schema migrations as applied, then one-time ones) with a plain-text rendering for the CLI.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import asyncpg

from daemon.db import applied_migrations
from daemon.jobs.onetime import MigrationRegistry, MigrationState, OneTimeMigration


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
    rows = await pool.fetch(
        """SELECT DISTINCT ON (migration_type) migration_type, state, started_at, finished_at,
                  duration_ms, error, count(*) OVER (PARTITION BY migration_type) AS attempts
           FROM onetime_migrations ORDER BY migration_type, (state = 0) DESC, id DESC"""
    )
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


async def migrations_overview(
    pool: asyncpg.Pool, registered: Sequence[OneTimeMigration] = ()
) -> dict[str, Any]:
    """The `migrations` operation: schema migrations as applied, then the one-time ones."""
    async with pool.acquire() as conn:
        schema = await applied_migrations(conn)
    return {
        "schema": [
            {
                "version": m.version,
                "name": m.name,
                "state": "applied",
                "applied_at": m.applied_at.isoformat(),
                "duration_ms": round(m.duration_ms, 2),
            }
            for m in schema
        ],
        "onetime": [s.as_dict() for s in await list_state(pool, registered)],
    }


def render_overview(overview: dict[str, Any]) -> str:
    """Two tables for a terminal: what `addicted-jobs migrations` prints without --json."""
    lines = ["Schema migrations", f"  {'VERSION':<8} {'NAME':<32} {'APPLIED AT':<26} DURATION"]
    for m in overview.get("schema", []):
        lines.append(
            f"  {m['version']:<8} {m['name']:<32} {_when(m['applied_at']):<26} {_ms(m['duration_ms'])}"
        )
    lines += ["", "One-time migrations"]
    lines.append(f"  {'MIGRATION':<56} {'STATE':<8} {'TRIES':>5} {'FINISHED AT':<26} DURATION")
    for m in overview.get("onetime", []):
        state = m["state"] + ("" if m.get("registered", True) else "*")
        lines.append(
            f"  {m['key']:<56} {state:<8} {m['attempts']:>5} "
            f"{_when(m['finished_at'] or m['started_at']):<26} {_ms(m['duration_ms'])}"
        )
        if m.get("error") and m["state"] != "success":
            lines.append(f"      last error: {m['error']}")
    if any(not m.get("registered", True) for m in overview.get("onetime", [])):
        lines.append("  * recorded but no longer registered")
    return "\n".join(lines)


def _when(value: str | None) -> str:
    return value.replace("T", " ")[:19] + " UTC" if value else "-"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f} ms" if value < 10_000 else f"{value / 1000:.1f} s"
