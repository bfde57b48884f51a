"""Operator operations that are not about single jobs: recurring jobs (list, trigger), schema
and one-time migrations, and reloading the configuration. Mixed into EngineOps.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from addicted_jobs.control import job_types
from addicted_jobs.control.protocol import NameArgs, NoArgs, OpError, parse_args
from addicted_jobs.control.server import Peer
from addicted_jobs.db import applied_migrations, load_migrations
from addicted_jobs.jobs.engine import Engine
from addicted_jobs.jobs.recurring import RecurringScheduler

Onetime = Callable[[], Awaitable[list[dict[str, Any]]]]


class AdminOps:
    engine: Engine
    scheduler: RecurringScheduler | None
    reload_config: Callable[[], Awaitable[str | None]] | None
    onetime: Onetime | None
    reload_report: Callable[[], dict[str, list[str]]] | None

    async def recurring(self, args: dict[str, Any], peer: Peer) -> dict[str, Any]:
        parse_args(NoArgs, args, "recurring")
        if self.scheduler is None:
            return {"recurring": []}
        return {"recurring": await self.scheduler.describe()}

    async def trigger(self, args: dict[str, Any], peer: Peer) -> dict[str, Any]:
        req = parse_args(NameArgs, args, "trigger")
        known = self.scheduler.entries if self.scheduler else {}
        if req.name not in known or self.scheduler is None:
            raise OpError(
                "not_found",
                f"no recurring job {req.name!r}; scheduled ones: {', '.join(sorted(known)) or 'none'}",
            )
        fire = await self.scheduler.fire(req.name, None)
        assert fire is not None
        return {"name": req.name, "id": fire.job_id, "created": fire.created}

    async def _set_disabled(
        self, args: dict[str, Any], peer: Peer, disabled: bool
    ) -> dict[str, Any]:
        op = "recurring-disable" if disabled else "recurring-enable"
        req = parse_args(NameArgs, args, op)
        known = self.scheduler.entries if self.scheduler else {}
        if req.name not in known or self.scheduler is None:
            raise OpError(
                "not_found",
                f"no recurring job {req.name!r}; configured ones: {', '.join(sorted(known)) or 'none'}",
            )
        if not disabled and not known[req.name].enabled:
            raise OpError(
                "conflict",
                f"recurring job {req.name!r} is disabled in the configuration file "
                f"([recurring.{req.name}] enabled = false); change it there and reload",
            )
        by = f"uid {peer.uid} pid {peer.pid}"
        changed = await self.scheduler.set_disabled(req.name, disabled, by)
        return {"name": req.name, "enabled": not disabled, "changed": changed}

    async def recurring_disable(self, args: dict[str, Any], peer: Peer) -> dict[str, Any]:
        return await self._set_disabled(args, peer, True)

    async def recurring_enable(self, args: dict[str, Any], peer: Peer) -> dict[str, Any]:
        return await self._set_disabled(args, peer, False)

    async def job_types(self, args: dict[str, Any], peer: Peer) -> dict[str, Any]:
        parse_args(NoArgs, args, "job-types")
        specs = self.engine.registry.specs
        return {"job_types": [job_types.describe(specs[name]) for name in sorted(specs)]}

    async def migrations(self, args: dict[str, Any], peer: Peer) -> dict[str, Any]:
        parse_args(NoArgs, args, "migrations")
        async with self.engine.pool.acquire() as conn:
            applied = {m.version: m for m in await applied_migrations(conn)}
        schema = []
        for m in load_migrations():
            done = applied.pop(m.version, None)
            schema.append(
                {
                    "version": m.version,
                    "name": m.name,
                    "state": "applied" if done else "pending",
                    "applied_at": done.applied_at if done else None,
                    "duration_ms": done.duration_ms if done else None,
                }
            )
        for extra in applied.values():  # applied by a newer release whose file we do not ship
            schema.append({**extra.__dict__, "state": "applied (no file)"})
        onetime = await self.onetime() if self.onetime else []
        return {"schema": sorted(schema, key=lambda m: m["version"]), "onetime": onetime}

    async def reload(self, args: dict[str, Any], peer: Peer) -> dict[str, Any]:
        parse_args(NoArgs, args, "reload")
        if self.reload_config is None:
            raise OpError("conflict", "this daemon was started without a reloadable configuration")
        problem = await self.reload_config()
        if problem is not None:
            raise OpError(
                "conflict", f"the new configuration is invalid; keeping the old one: {problem}"
            )
        report = self.reload_report() if self.reload_report else {}
        return {
            "reloaded": True,
            "applied": report.get("applied", []),
            "needs_restart": report.get("needs_restart", []),
        }
