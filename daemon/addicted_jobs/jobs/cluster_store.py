"""The SQL of several daemons on one database (issue 19): node membership, failure detection and
recovery, caps counted across nodes, keyed locks held in PostgreSQL. The rest of the engine's SQL
is in store.py; this part is apart only to keep that file to one concern per section.

Every time is the database's clock (`now()`), so nodes on hosts with skewed clocks agree on whose
heartbeat is late.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from addicted_jobs.db import LOCK_NAMESPACE, Executor
from addicted_jobs.jobs import store
from addicted_jobs.jobs.store import Claimed

# Advisory lock keys of the cluster, beside db.MIGRATION_LOCK (1), INSTANCE_LOCK (2) and
# onetime.ONETIME_LOCK (3): one reaper at a time, and one claim at a time per capped job type.
REAPER_LOCK = 4
CAP_NAMESPACE = LOCK_NAMESPACE + 1  # (CAP_NAMESPACE, hashtext(job type))
# Keyed locks use the single-bigint form of the advisory locks, a space of their own in pg_locks
# (objsubid 1, where the two-int4 forms above have 2): a 64-bit hash of the key makes a
# collision between two live keys (which would only make one wait or skip) negligible.
KEYED_LOCK_SEED = 0x414A


def lock_application_name(node_id: int) -> str:
    """The application_name of a node's keyed-lock connection: how a live node finds the backend
    of a node it declared dead (to end its session and so release its locks)."""
    return f"addicted-jobs node {node_id} locks"


async def register(
    db: Executor, host: str, pid: int, version: str, process_space: str | None = None
) -> int:
    """Add this daemon as a live node; returns its id (never reused). `process_space` says where
    `pid` is meaningful (see migrations/051)."""
    node_id: int = await db.fetchval(
        """INSERT INTO jobs.nodes (host, pid, version, process_space) VALUES ($1, $2, $3, $4)
           RETURNING id""",
        host,
        pid,
        version,
        process_space,
    )
    return node_id


async def neighbours(db: Executor, host: str, process_space: str) -> list[tuple[int, int]]:
    """(node id, pid) of the live nodes registered from this host and process space: the only
    nodes whose pid this daemon can check."""
    rows = await db.fetch(
        """SELECT id, pid FROM jobs.nodes
           WHERE dead_at IS NULL AND host = $1 AND process_space = $2""",
        host,
        process_space,
    )
    return [(r["id"], r["pid"]) for r in rows]


async def declare_gone(db: Executor, node_ids: Sequence[int]) -> list[dict[str, Any]]:
    """Declare nodes dead whose process is known to be gone (checked on their own host); the
    next reaper pass puts their jobs back. Returns id, host, pid, silent_s of each."""
    rows = await db.fetch(
        """UPDATE jobs.nodes SET dead_at = now() WHERE id = ANY ($1::bigint[]) AND dead_at IS NULL
           RETURNING id, host, pid, extract(epoch FROM now() - heartbeat)::float8 AS silent_s""",
        list(node_ids),
    )
    return [dict(r) for r in rows]


async def heartbeat(db: Executor, node_id: int) -> bool:
    """Prove this node alive; False when another node has declared it dead (it must stop work:
    its jobs were, or are being, put back to ready)."""
    row = await db.fetchval(
        "UPDATE jobs.nodes SET heartbeat = now() WHERE id = $1 AND dead_at IS NULL RETURNING id",
        node_id,
    )
    return row is not None


async def leave(db: Executor, node_id: int) -> None:
    """A clean stop: the node is gone (its jobs were handed back by the engine's shutdown)."""
    await db.execute(
        "UPDATE jobs.nodes SET dead_at = coalesce(dead_at, now()) WHERE id = $1", node_id
    )


# Late heartbeats make their nodes dead, under the reaper lock so that two reapers never recover
# the same row from two snapshots (the second would see a row the first put back and another node
# claimed since as still running: it waits for the lock and reads with a fresh snapshot instead).
_DECLARE_DEAD = """
UPDATE jobs.nodes SET dead_at = now()
WHERE dead_at IS NULL AND heartbeat < now() - make_interval(secs => $1) AND id <> $2
RETURNING id, host, pid, extract(epoch FROM now() - heartbeat)::float8 AS silent_s
"""

# Their keyed locks: ending the session releases every advisory lock it held. A paused node's
# session stays up (its kernel still answers keepalives), so waiting for it would keep its locks.
_END_LOCK_SESSIONS = """
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = ANY ($1::text[])
"""

# Jobs running on a node that is not live (dead, or its row pruned) go back to ready, with the
# attempt refunded and the interruption counted, as store._RECOVER does at a start. The running
# rows are few (the jobs_running partial index holds only them); the live nodes fewer.
_RECOVER_DEAD = """
UPDATE jobs.jobs SET
    interruptions = interruptions + 1,
    attempt = greatest(attempt - 1, 0),
    state = CASE WHEN interruptions + 1 > $1 THEN 'failed' ELSE 'ready' END,
    run_at = now(),
    finished_at = CASE WHEN interruptions + 1 > $1 THEN now() END,
    last_error = CASE WHEN interruptions + 1 > $1
        THEN format('failed as poison: interrupted %s times (its node died)', interruptions + 1)
        ELSE last_error END,
    unique_key = CASE WHEN interruptions + 1 > $1 THEN NULL ELSE unique_key END,
    unique_until = CASE WHEN interruptions + 1 > $1 THEN NULL ELSE unique_until END
WHERE state = 'running' AND node_id IS NOT NULL
  AND node_id NOT IN (SELECT id FROM jobs.nodes WHERE dead_at IS NULL)
RETURNING id, name, state, node_id
"""

# Dead nodes are kept a day for `nodes` and the logs, then forgotten.
_FORGET_DEAD = "DELETE FROM jobs.nodes WHERE dead_at < now() - interval '1 day'"


@dataclass(frozen=True)
class Reaped:
    """What one reaper pass did: nodes declared dead (id, host, pid, silent_s), the jobs put back
    to ready and those failed as poison (interrupted too often)."""

    dead: list[dict[str, Any]]
    requeued: list[int]
    poisoned: list[int]
    skipped: bool = False  # another node was reaping


async def reap(
    pool: asyncpg.Pool, node_id: int, timeout_s: float, max_interruptions: int
) -> Reaped:
    """Declare nodes silent for longer than `timeout_s` dead, end their keyed-lock sessions and
    put back the jobs of every node that is not live. One reaper at a time in the cluster: a pass
    that finds another reaping is skipped (skipped=True)."""
    async with pool.acquire() as conn, conn.transaction():
        if not await conn.fetchval(
            "SELECT pg_try_advisory_xact_lock($1, $2)", LOCK_NAMESPACE, REAPER_LOCK
        ):
            return Reaped([], [], [], skipped=True)
        dead = [dict(r) for r in await conn.fetch(_DECLARE_DEAD, timeout_s, node_id)]
        if dead:
            names = [lock_application_name(d["id"]) for d in dead]
            await conn.fetchval(_END_LOCK_SESSIONS, names)
        rows = await conn.fetch(_RECOVER_DEAD, max_interruptions)
        await conn.execute(_FORGET_DEAD)
    return Reaped(
        dead,
        [r["id"] for r in rows if r["state"] == "ready"],
        [r["id"] for r in rows if r["state"] == "failed"],
    )


async def nodes(db: Executor, running_limit: int = 50) -> list[dict[str, Any]]:
    """Every known node, live ones first: id, host, pid, version, started, heartbeat, dead_at,
    heartbeat_age_s, and `running` (up to `running_limit` {id, name, started_at} of the jobs it
    runs, longest first) with `running_count`."""
    rows = await db.fetch(
        """SELECT n.id, n.host, n.pid, n.version, n.started, n.heartbeat, n.dead_at,
                  extract(epoch FROM now() - n.heartbeat)::float8 AS heartbeat_age_s,
                  (SELECT count(*) FROM jobs.jobs j WHERE j.state = 'running' AND j.node_id = n.id)
                      AS running_count,
                  coalesce((SELECT jsonb_agg(jsonb_build_object('id', r.id, 'name', r.name,
                                                               'started_at', r.started_at))
                            FROM (SELECT id, name, started_at FROM jobs.jobs j
                                  WHERE j.state = 'running' AND j.node_id = n.id
                                  ORDER BY started_at, id LIMIT $1) r), '[]'::jsonb) AS running
           FROM jobs.nodes n ORDER BY n.dead_at IS NOT NULL, n.id""",
        running_limit,
    )
    return [dict(r) for r in rows]


async def live_nodes(db: Executor) -> int:
    """How many nodes are live (the politeness limit is shared among them)."""
    count: int = await db.fetchval("SELECT count(*) FROM jobs.nodes WHERE dead_at IS NULL")
    return count


# ---- caps across nodes ---------------------------------------------------------------------------

# Running jobs of the capped types, counted after their locks are taken: in READ COMMITTED each
# statement reads a fresh snapshot, so this sees every claim committed by the previous holder.
_RUNNING_OF = """
SELECT name, count(*)::int AS n FROM jobs.jobs
WHERE state = 'running' AND name = ANY ($1::text[]) GROUP BY name
"""


async def claim_capped(
    conn: asyncpg.Connection | PoolConnectionProxy,
    queue: str,
    limit: int,
    capped: Sequence[str],
    rooms: dict[str, int],
    caps: dict[str, int],
    node_id: int,
) -> tuple[list[Claimed], dict[str, int]]:
    """store.claim with each capped type's room counted across the cluster: under a transaction
    advisory lock per capped type (taken in name order, so two claims never deadlock), the room
    is the cap less the type's running jobs on every node, and never more than this node's own
    `rooms`. Types without local room take no lock. The lock ends with the claim's transaction,
    so racing claims of a type take turns and never exceed its cap together. Returns the claimed
    jobs and the cluster-wide room each locked type had before this claim."""
    wanted = sorted(name for name in capped if rooms.get(name, 0) > 0)
    async with conn.transaction():
        for name in wanted:
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))", CAP_NAMESPACE, name
            )
        running = {r["name"]: r["n"] for r in await conn.fetch(_RUNNING_OF, wanted)}
        cluster_rooms = {
            name: min(rooms.get(name, 0), caps[name] - running.get(name, 0)) for name in wanted
        }
        claimed = await store.claim(conn, queue, limit, capped, cluster_rooms, node_id)
        return claimed, cluster_rooms


# ---- keyed locks across nodes --------------------------------------------------------------------


async def try_keyed_lock(conn: asyncpg.Connection, key: str) -> bool:
    """Take the cluster-wide lock of `key` on the node's lock connection if it is free."""
    got: bool = await conn.fetchval(
        "SELECT pg_try_advisory_lock(hashtextextended($1, $2))", key, KEYED_LOCK_SEED
    )
    return got


async def release_keyed_lock(conn: asyncpg.Connection, key: str) -> None:
    await conn.execute("SELECT pg_advisory_unlock(hashtextextended($1, $2))", key, KEYED_LOCK_SEED)
