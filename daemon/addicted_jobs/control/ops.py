"""The engine's socket operations (ENGINE_OPS): ping, enqueue, job, queues, retry, cancel,
pause/resume and stats (for `top`) here; recurring, trigger, migrations and reload in admin_ops.py;
finding jobs and bulk actions in bulk_ops.py. EngineOps builds all three and binds their @op
records for the server.

The server checks every op's arguments against its model before a handler runs, so bad input
never reaches the database; handlers raise OpError for what only they can know (not_found, ...).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from addicted_jobs.control.activity import Activity
from addicted_jobs.control.admin_ops import AdminOps, Onetime
from addicted_jobs.control.bulk_ops import BulkOps
from addicted_jobs.control.history import RETRY_NOTE, timeline
from addicted_jobs.control.op import Op, Peer, bind, declared, op
from addicted_jobs.control.protocol import (
    EnqueueArgs,
    JobIdArgs,
    NoArgs,
    OpError,
    QueueArgs,
    describe_errors,
    summarise,
)
from addicted_jobs.control.wire import VERSION
from addicted_jobs.jobs import EnqueueResult, JobRequest, UnknownJob, store
from addicted_jobs.jobs.engine import Engine
from addicted_jobs.jobs.recurring import RecurringScheduler
from addicted_jobs.jobs.store import ParentLocked, ParentNotFound

RUNNING_SHOWN = 12  # running jobs in a `stats` answer (top's pane), the longest-running first


def _signature(model: type[BaseModel]) -> str:
    parts = []
    for name, info in model.model_fields.items():
        kind = getattr(info.annotation, "__name__", str(info.annotation))
        parts.append(f"{name}: {kind}" + ("" if info.is_required() else f" = {info.default!r}"))
    return ", ".join(parts) or "no arguments"


def _enqueued(result: EnqueueResult) -> dict[str, Any]:
    return {"id": result.id, "created": result.created, "state": result.state}


class EngineOps:
    """The engine's own operations and what they need; ops() serves them with AdminOps' (given
    scheduler, reload, onetime and reload_report) and BulkOps' (ENGINE_OPS lists all of them,
    unbound). `state` and `uptime` feed ping; `activity` and `upstream` feed stats (top)."""

    def __init__(
        self,
        engine: Engine,
        *,
        version: str,
        uptime: Callable[[], float],
        state: Callable[[], str] = lambda: "running",
        scheduler: RecurringScheduler | None = None,
        reload: Callable[[], Awaitable[str | None]] | None = None,
        onetime: Onetime | None = None,
        activity: Activity | None = None,
        upstream: Callable[[], Awaitable[dict[str, Any]]] | None = None,
        reload_report: Callable[[], dict[str, list[str]]] | None = None,
    ) -> None:
        self.engine = engine
        self.version = version
        self.uptime = uptime
        self.state = state
        self.activity = activity
        self.upstream_status = upstream
        self.admin = AdminOps(engine, scheduler, reload, onetime, reload_report)
        self.bulk = BulkOps(engine)

    def ops(self) -> list[Op]:
        """Every engine operation, bound to this daemon's engine."""
        return [*bind(self), *bind(self.admin), *bind(self.bulk)]

    @op("ping", NoArgs, read_only=True)
    async def ping(self, args: NoArgs, peer: Peer) -> dict[str, Any]:
        result: dict[str, Any] = {
            "version": self.version,
            "protocol": VERSION,
            "pid": os.getpid(),
            "uptime_s": round(self.uptime(), 3),
            "state": self.state(),
        }
        pool = self.engine.pool
        if pool.get_size() >= pool.get_max_size() and pool.get_idle_size() == 0:
            # Jobs or requests hold every client connection: the database is fine, so ask it
            # through the engine's own pool rather than report it unavailable (issue 14).
            pool = self.engine.engine_pool
            result["connections"] = (
                f"all {self.engine.pool.get_max_size()} pooled connections in use"
            )
        try:
            async with asyncio.timeout(2.0):
                counts = await store.queue_counts(pool, oldest=False)
        except Exception as exc:  # ping answers even when the database does not
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            result.update(database=f"unavailable: cannot query PostgreSQL ({reason})", queues=None)
            return result
        keep = ("ready", "running", "scheduled", "failed")
        queues = {q: {s: e["counts"][s] for s in keep} for q, e in sorted(counts.items())}
        result.update(database="ok", queues=queues)
        if self.engine.horizon is not None:
            result["oldest_transaction"] = self.engine.horizon
        return result

    # ---- enqueue ------------------------------------------------------------------------------

    def _parse_job(self, name: str, args: dict[str, Any], where: str) -> BaseModel:
        try:
            spec = self.engine.registry.get(name)
        except UnknownJob as exc:
            raise OpError("unknown_job", f"{where}{exc}") from None
        try:
            model: BaseModel = spec.parse(args)
            return model
        except ValidationError as exc:
            details = describe_errors(exc)
            raise OpError(
                "invalid_args",
                f"{where}invalid arguments for job {name!r}: {summarise(details)}; "
                f"{name!r} takes ({_signature(spec.args_model)})",
                details,
            ) from None

    async def _store(self, requests: list[JobRequest]) -> list[EnqueueResult]:
        try:
            return await self.engine.enqueue_many(requests)
        except ParentNotFound as exc:
            raise OpError(
                "not_found", f"{exc}: `after` must name an existing job id (see `jobs`)"
            ) from None
        except ParentLocked as exc:
            raise OpError("unavailable", str(exc)) from None

    @op("enqueue", EnqueueArgs, audit=("name", "after", "delay", "count", "jobs"))
    async def enqueue(self, req: EnqueueArgs, peer: Peer) -> dict[str, Any]:
        if req.jobs is not None:
            # Validate the whole batch first: one bad item rejects it before anything is written.
            requests = [
                JobRequest(
                    j.name, self._parse_job(j.name, j.args, f"jobs[{i}]: "), j.after, j.delay
                )
                for i, j in enumerate(req.jobs)
            ]
            return {"results": [_enqueued(r) for r in await self._store(requests)]}
        assert req.name is not None
        model = self._parse_job(req.name, req.args, "")
        requests = [JobRequest(req.name, model, req.after, req.delay)] * (req.count or 1)
        results = await self._store(requests)
        if req.count is None:
            return _enqueued(results[0])
        return {"ids": [r.id for r in results], "created": sum(r.created for r in results)}

    # ---- jobs and queues ----------------------------------------------------------------------

    @op("job", JobIdArgs, read_only=True)
    async def job(self, req: JobIdArgs, peer: Peer) -> dict[str, Any]:
        row = await store.get_job(self.engine.pool, req.id)
        if row is None:
            raise OpError("not_found", f"no job {req.id}")
        row["attempts"] = await store.job_attempts(self.engine.pool, req.id)
        row["timeline"] = timeline(row, row["attempts"])
        return row

    async def _queue_rows(self) -> list[dict[str, Any]]:
        counts = await store.queue_counts(self.engine.pool)
        config = self.engine.config
        out = []
        for name in sorted(set(self.engine.queues()) | set(counts)):
            entry = counts.get(name) or store.queue_entry()
            dispatcher = self.engine.dispatchers.get(name)
            concurrency = (
                dispatcher.concurrency
                if dispatcher
                else config.concurrency.get(name, config.default_concurrency)
            )
            out.append({"name": name, "concurrency": concurrency, **entry})
        return out

    @op("queues", NoArgs, read_only=True)
    async def queues(self, args: NoArgs, peer: Peer) -> dict[str, Any]:
        return {"queues": await self._queue_rows()}

    @op("stats", NoArgs, read_only=True)
    async def stats(self, args: NoArgs, peer: Peer) -> dict[str, Any]:
        pool = self.engine.pool
        return {
            "version": self.version,
            "uptime_s": round(self.uptime(), 3),
            "queues": await self._queue_rows(),
            "finished_last_minute": await store.finished_since(pool, 60.0),
            "failures": await store.recent_failures(pool, 8),
            "running": await store.running_jobs(pool, RUNNING_SHOWN),
            **(self.activity.snapshot() if self.activity else {}),
            "upstream": await self.upstream_status() if self.upstream_status else None,
            "oldest_transaction": self.engine.horizon,
        }

    async def _set_paused(self, req: QueueArgs, paused: bool) -> dict[str, Any]:
        known = set(self.engine.queues()) | set(await store.state_counts(self.engine.pool))
        if req.queue not in known:
            raise OpError(
                "not_found", f"no queue {req.queue!r}; known queues: {', '.join(sorted(known))}"
            )
        await self.engine.set_paused(req.queue, paused)
        return {"queue": req.queue, "paused": paused}

    @op("pause", QueueArgs, audit=("queue",))
    async def pause(self, req: QueueArgs, peer: Peer) -> dict[str, Any]:
        return await self._set_paused(req, True)

    @op("resume", QueueArgs, audit=("queue",))
    async def resume(self, req: QueueArgs, peer: Peer) -> dict[str, Any]:
        return await self._set_paused(req, False)

    @op("retry", JobIdArgs, audit=("id",))
    async def retry(self, req: JobIdArgs, peer: Peer) -> dict[str, Any]:
        retried = await store.retry(self.engine.pool, req.id)
        if retried is None:
            raise OpError("not_found", f"no job {req.id}")
        if not retried.changed:
            raise OpError(
                "conflict",
                f"job {req.id} is {retried.state}; retry applies to failed, deleted, succeeded or "
                "scheduled jobs (cancel a running job first, or wait for it)",
            )
        return {
            "id": req.id,
            "previous_state": retried.previous,
            "state": retried.state,
            "continuations_restored": retried.restored,
            "history": RETRY_NOTE,
        }

    @op("cancel", JobIdArgs, audit=("id",))
    async def cancel(self, req: JobIdArgs, peer: Peer) -> dict[str, Any]:
        previous = await store.cancel(self.engine.pool, req.id)
        if previous is None:
            raise OpError("not_found", f"no job {req.id}")
        if previous in ("ready", "scheduled", "awaiting"):
            return {"id": req.id, "previous_state": previous, "state": "deleted"}
        if previous == "running":
            if self.engine.cancel_running(req.id):
                return {"id": req.id, "previous_state": previous, "state": "cancelling"}
            raise OpError(
                "conflict",
                f"job {req.id} is running but not on this daemon's dispatchers (it is finishing, "
                "or waits to be recovered at the next start); try again in a moment",
            )
        raise OpError(
            "conflict",
            f"job {req.id} is {previous}; only ready, scheduled, awaiting or running jobs "
            "can be cancelled",
        )


# Every engine operation, handlers unbound: what the daemon serves besides the domain's.
ENGINE_OPS: list[Op] = [*declared(EngineOps), *declared(AdminOps), *declared(BulkOps)]
