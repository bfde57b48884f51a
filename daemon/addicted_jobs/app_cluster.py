"""The daemon's side of `[cluster]` (issue 19): joining as a node at start-up, recovering only the
jobs of dead nodes, the `nodes` socket operation, the politeness limit's share, leaving at stop,
and the schema check every daemon makes (code older than the database's schema refuses to start).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy

from addicted_jobs.control.op import Op, Peer, bind, declared, op
from addicted_jobs.db import Database, DatabaseConfigError, applied_migrations, load_migrations
from addicted_jobs.jobs import NoArgs, store
from addicted_jobs.jobs.cluster import Cluster, ClusterConfig
from addicted_jobs.jobs.engine import Engine
from addicted_jobs.settings import Settings
from addicted_jobs.upstream.resilience import RateLimiter

log = structlog.get_logger("addicted_jobs.cluster")


class SchemaNewerThanCode(DatabaseConfigError):
    """The database holds schema migrations this code does not know: a newer daemon migrated it
    (a rolling upgrade half done, or a downgrade). Exit 78: running would write rows the newer
    schema does not expect; the operator upgrades this host or rolls the database back."""


async def check_schema_known(conn: asyncpg.Connection | PoolConnectionProxy) -> None:
    """Raise SchemaNewerThanCode when an applied schema migration is newer than this code's."""
    known = {m.version for m in load_migrations()}
    newest_known = max(known, default=0)
    unknown = [m for m in await applied_migrations(conn) if m.version not in known]
    newer = [m for m in unknown if m.version > newest_known]
    if newer:
        names = ", ".join(f"{m.version:03d}_{m.name}" for m in newer)
        raise SchemaNewerThanCode(
            f"the database's schema is newer than this daemon's code: migrations {names} were "
            f"applied by a newer version (this one knows up to {newest_known:03d}); upgrade this "
            "daemon to the version the other nodes run"
        )


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}


class ClusterNode:
    """Wires a Cluster into the daemon; built only with `[cluster] enabled`."""

    def __init__(self, settings: Settings, db: Database, engine: Engine, version: str) -> None:
        assert db.engine_pool is not None
        conf = settings.cluster
        self.settings = settings
        self.engine = engine
        self.cluster = Cluster(
            db.engine_pool,
            db.connect,
            ClusterConfig(conf.node_timeout_s, conf.heartbeat_s, settings.engine.max_interruptions),
            version,
        )
        self.limiters: list[RateLimiter] = []  # the Addic7ed limiter, shared among live nodes
        engine.cluster = self.cluster
        engine.locks = self.cluster.locks
        self.cluster.on_expelled = engine.abandon_running
        self.cluster.on_beat = engine.sync_paused  # pause/resume through any node holds for all
        self.cluster.on_live_nodes = self._share_rate

    async def join(self) -> None:
        """Join, then put back the jobs of dead nodes only (a live node's stay running)."""
        await self.cluster.join()
        await self.cluster.reap()
        self._share_rate(await store.count_live_nodes(self.cluster.pool))

    def share_limit(self, limiter: RateLimiter) -> None:
        self.limiters.append(limiter)
        self._share_rate(self.cluster.live_nodes)

    def _share_rate(self, live: int) -> None:
        """Each node spaces its requests by rate / live nodes, so the cluster together stays
        within the configured limit (unless `per_node_rate_limit`: every host has its own IP)."""
        self.cluster.live_nodes = live
        rate = self.settings.addic7ed.requests_per_second
        if self.settings.cluster.per_node_rate_limit or rate <= 0:
            return
        share = rate / max(live, 1)
        for limiter in self.limiters:
            limiter.set_rate(share)
        log.info("addic7ed rate limit shared among live nodes", live_nodes=live, rate=share)

    async def leave(self) -> None:
        await self.cluster.leave()

    def ops(self) -> list[Op]:
        return bind(self)

    @op("nodes", NoArgs, read_only=True)
    async def nodes_op(self, args: NoArgs, peer: Peer) -> dict[str, Any]:
        rows = await store.list_nodes(self.cluster.pool)
        for row in rows:
            row["running"] = [_jsonable(r) for r in row["running"]]
            row["heartbeat_age_s"] = round(row["heartbeat_age_s"], 1)
        return {
            "enabled": True,
            "this_node": self.cluster.node_id,
            "node_timeout_s": self.cluster.config.node_timeout_s,
            "nodes": [_jsonable(r) for r in rows],
        }


class Standalone:
    """`nodes` with clustering off: this daemon runs alone, under the instance lock."""

    def ops(self) -> list[Op]:
        return bind(self)

    @op("nodes", NoArgs, read_only=True)
    async def nodes_off(self, args: NoArgs, peer: Peer) -> dict[str, Any]:
        return {"enabled": False, "this_node": None, "nodes": []}


# The `nodes` op, whichever of the two serves it (both declare the same record).
CLUSTER_OPS: list[Op] = declared(ClusterNode)
