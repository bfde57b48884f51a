"""Finding jobs by filter and acting on many at once: `jobs` with filters, `delete` (discard a
finished job), and bulk retry/cancel/delete with a dry run. Part of ENGINE_OPS (control/ops.py).

A filter naming a queue, job type or state that does not exist is an error listing the known
ones, never "no jobs match". Every bulk action logs one audit line for the set it changed.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import structlog

from addicted_jobs.control.history import RETRY_NOTE
from addicted_jobs.control.op import Peer, op
from addicted_jobs.control.protocol import BulkArgs, FilterArgs, FindArgs, JobIdArgs, OpError
from addicted_jobs.jobs import TERMINAL, store
from addicted_jobs.jobs.engine import Engine
from addicted_jobs.jobs.store import BULK_STATES, JobFilter

log = structlog.get_logger("addicted_jobs.control")
ERROR_LINE_LIMIT = 300
LIST_VALUE_LIMIT = 200
# A bulk action's audit line shows its filter's closed-vocabulary fields (the `bulk action` line
# adds what was changed); `args` values and `error` text stay out (issue 17).
BULK_AUDIT = ("state", "queue", "name", "since_s", "older_than_s", "dry_run", "limit")


def _as_text(value: Any) -> str:
    # The text `args->>key` gives for a JSON value: true/false, numbers as written, strings bare.
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _compact(args: Any) -> Any:
    # Lists show arguments, not blobs: long strings are replaced by their length.
    if not isinstance(args, dict):
        return args
    return {
        k: f"<{len(v)} chars>" if isinstance(v, str) and len(v) > LIST_VALUE_LIMIT else v
        for k, v in args.items()
    }


def listing_row(row: dict[str, Any]) -> dict[str, Any]:
    """A job as lists show it: the first line of its last error, and none once it succeeded (an
    error from an earlier attempt of a job that then succeeded is history, not a problem)."""
    error = row.get("last_error")
    if row.get("state") == "succeeded":
        error = None
    row["last_error"] = error.splitlines()[0][:ERROR_LINE_LIMIT] if error else None
    return row


class BulkOps:
    """`jobs`, `delete` and the bulk actions, on `engine`'s jobs."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def known_queues(self) -> set[str]:
        config = self.engine.config
        return set(self.engine.queues()) | self.engine.registry.queues() | set(config.concurrency)

    async def job_filter(self, req: FilterArgs) -> JobFilter:
        """The store's filter for `req`; OpError(not_found) for a queue or job type that does not
        exist, listing the known ones."""
        if req.queue is not None and req.queue not in self.known_queues():
            known = ", ".join(sorted(self.known_queues()))
            raise OpError("not_found", f"no queue {req.queue!r}; known queues: {known}")
        if (
            req.name is not None
            and req.name not in self.engine.registry
            and not await store.name_exists(self.engine.pool, req.name)
        ):
            known = ", ".join(sorted(self.engine.registry.specs))
            raise OpError(
                "not_found",
                f"no job type {req.name!r}; known job types: {known} (`addicted-jobs job-types`)",
            )
        return JobFilter(
            states=[req.state] if req.state else None,
            queue=req.queue,
            name=req.name,
            args={k: _as_text(v) for k, v in req.args.items() if v is not None},
            since_s=req.since_s,
            older_than_s=req.older_than_s,
            error=req.error,
        )

    @op("jobs", FindArgs, read_only=True)
    async def jobs(self, req: FindArgs, peer: Peer) -> dict[str, Any]:
        where = await self.job_filter(req)
        if req.before_id is not None:
            where = replace(where, before_id=req.before_id)
        rows = await store.find_jobs(self.engine.pool, where, req.limit)
        found = [listing_row(r) for r in rows]
        for row in found:
            row["args"] = _compact(row["args"])
        return {"jobs": found}

    @op("delete", JobIdArgs, audit=("id",))
    async def delete(self, req: JobIdArgs, peer: Peer) -> dict[str, Any]:
        previous = await store.delete_job(self.engine.pool, req.id)
        if previous is None:
            raise OpError("not_found", f"no job {req.id}")
        if previous not in TERMINAL:
            raise OpError(
                "conflict",
                f"job {req.id} is {previous}; delete discards succeeded, failed or deleted jobs "
                "(cancel it first)",
            )
        return {"id": req.id, "previous_state": previous, "state": "gone"}

    async def _bulk(self, action: str, req: BulkArgs, peer: Peer) -> dict[str, Any]:
        # A running job can be cancelled (this daemon stops it), not retried or discarded.
        allowed = (*BULK_STATES[action], "running") if action == "cancel" else BULK_STATES[action]
        if req.state is not None and req.state not in allowed:
            raise OpError(
                "conflict", f"{action} applies to {', '.join(allowed)} jobs, not {req.state} ones"
            )
        where = await self.job_filter(req)
        acting = replace(where, states=[req.state] if req.state else list(allowed))
        pool = self.engine.pool
        matched = await store.count_jobs(pool, acting)
        # The sample shows jobs this request would change: never more than its limit.
        shown = min(req.sample, req.limit)
        sample = await store.find_jobs(pool, acting, shown) if shown else []
        result: dict[str, Any] = {
            "action": action,
            "dry_run": req.dry_run,
            "matched": matched,
            "would_change": min(matched, req.limit),
            "sample": [
                {k: r[k] for k in ("id", "name", "queue", "state", "created_at")} for r in sample
            ],
        }
        if action == "retry":
            result["history"] = RETRY_NOTE
        if req.dry_run:
            return result
        ids = await store.bulk_action(pool, action, acting, req.limit)
        stopping: list[int] = []
        if action == "cancel" and "running" in (acting.states or ()):
            running = await store.find_jobs(pool, replace(acting, states=["running"]), req.limit)
            stopping = [r["id"] for r in running if self.engine.cancel_running(r["id"])]
        changed = len(ids) + len(stopping)
        result.update(changed=len(ids), stopping=stopping, remaining=max(matched - changed, 0))
        log.info(
            "bulk action",
            action=action,
            peer_uid=peer.uid,
            peer_pid=peer.pid,
            changed=len(ids),
            stopping=len(stopping),
            first_id=min(ids, default=None),
            last_id=max(ids, default=None),
            filter={k: v for k, v in req.model_dump().items() if v not in (None, {}, False)},
        )
        return result

    @op("retry-many", BulkArgs, audit=BULK_AUDIT)
    async def retry_many(self, req: BulkArgs, peer: Peer) -> dict[str, Any]:
        return await self._bulk("retry", req, peer)

    @op("cancel-many", BulkArgs, audit=BULK_AUDIT)
    async def cancel_many(self, req: BulkArgs, peer: Peer) -> dict[str, Any]:
        return await self._bulk("cancel", req, peer)

    @op("delete-many", BulkArgs, audit=BULK_AUDIT)
    async def delete_many(self, req: BulkArgs, peer: Peer) -> dict[str, Any]:
        return await self._bulk("delete", req, peer)
