"""Operator operations that are not about single jobs: recurring jobs (list, trigger), schema
and one-time migrations, and reloading the configuration. Part of ENGINE_OPS (control/ops.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from addicted_jobs.control import job_types
from addicted_jobs.control.op import Peer, op
from addicted_jobs.control.protocol import NameArgs, NoArgs, OpError
from addicted_jobs.db import applied_migrations, load_migrations
from addicted_jobs.jobs.engine import Engine
from addicted_jobs.jobs.recurring import RecurringScheduler

Onetime = Callable[[], Awaitable[list[dict[str, Any]]]]


class AdminOps:
    """Recurring jobs, migrations, job types and reload: what each needs may be absent (None)
    in a test's daemon, and the op then says so or answers empty."""

    def __init__(
        self,
        engine: Engine,
        scheduler: RecurringScheduler | None = None,
        reload_config: Callable[[], Awaitable[str | None]] | None = None,
        onetime: Onetime | None = None,
        reload_report: Callable[[], dict[str, list[str]]] | None = None,
    ) -> None:
        self.engine = engine
        self.scheduler = scheduler
        self.reload_config = reload_config
        self.onetime = onetime
        self.reload_report = reload_report

    @op("recurring", NoArgs, read_only=True)
    async def recurring(self, args: NoArgs, peer: Peer) -> dict[str, Any]:
        if self.scheduler is None:
            return {"recurring": []}
        return {"recurring": await self.scheduler.describe()}

    @op("trigger", NameArgs, audit=("name",))
    async def trigger(self, req: NameArgs, peer: Peer) -> dict[str, Any]:
        known = self.scheduler.entries if self.scheduler else {}
        if req.name not in known or self.scheduler is None:
            raise OpError(
                "not_found",
                f"no recurring job {req.name!r}; scheduled ones: {', '.join(sorted(known)) or 'none'}",
            )
        fire = await self.scheduler.fire(req.name, None)
        assert fire is not None
        return {"name": req.name, "id": fire.job_id, "created": fire.created}

    async def _set_disabled(self, req: NameArgs, peer: Peer, disabled: bool) -> dict[str, Any]:
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

    @op("recurring-disable", NameArgs, audit=("name",))
    async def recurring_disable(self, req: NameArgs, peer: Peer) -> dict[str, Any]:
        return await self._set_disabled(req, peer, True)

    @op("recurring-enable", NameArgs, audit=("name",))
    async def recurring_enable(self, req: NameArgs, peer: Peer) -> dict[str, Any]:
        return await self._set_disabled(req, peer, False)

    @op("job-types", NoArgs, read_only=True)
    async def job_types(self, args: NoArgs, peer: Peer) -> dict[str, Any]:
        specs = self.engine.registry.specs
        return {"job_types": [job_types.describe(specs[name]) for name in sorted(specs)]}

    @op("migrations", NoArgs, read_only=True)
    async def migrations(self, args: NoArgs, peer: Peer) -> dict[str, Any]:
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

    @op("reload", NoArgs)
    async def reload(self, args: NoArgs, peer: Peer) -> dict[str, Any]:
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
