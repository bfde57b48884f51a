"""Several daemons on one PostgreSQL (issue 19, `[cluster] enabled`): this daemon as a node of the
cluster. It heartbeats, declares silent nodes dead and puts their jobs back (the reaper), claims
capped types under cluster-wide counts, holds keyed locks in PostgreSQL, and stops claiming the
moment it cannot prove itself alive.

The lease: a node may claim only while its last successful heartbeat is younger than
`node_timeout_s - heartbeat_s` by its own monotonic clock, measured from when that heartbeat was
sent. Peers declare it dead only once the database saw no heartbeat for `node_timeout_s`, so a
node paused (SIGSTOP, a frozen VM) or cut off stops claiming before anyone may recover its jobs,
and on waking claims nothing until a heartbeat has gone through. A node that finds itself
declared dead abandons its running jobs (their outcomes would be refused anyway: the fencing
token of jobs.claims, see migrations/007) and joins again as a new node.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy

from addicted_jobs.db import UNREACHABLE
from addicted_jobs.jobs import store
from addicted_jobs.jobs.cluster_locks import ClusterLocks
from addicted_jobs.jobs.store import Claimed

log = structlog.get_logger("addicted_jobs.jobs.cluster")
DB_ERRORS = (*UNREACHABLE, asyncpg.PostgresError)
# A capped type found at its cap across the cluster is not claimed again for this long: other
# nodes' finishes do not wake this one, so it looks again after this, not in a tight loop.
CAP_FULL_RETRY_S = 0.25


@dataclass(frozen=True)
class ClusterConfig:
    """`node_timeout_s`: silence (seconds, database clock) after which a node is dead.
    `heartbeat_s`: how often a node proves itself alive and looks for dead peers; at most a third
    of the timeout, so one late heartbeat does not cost a node its jobs."""

    node_timeout_s: float = 30.0
    heartbeat_s: float = 3.0
    max_interruptions: int = 5


class Cluster:
    """This daemon's membership. `connect(application_name)` opens a connection outside the pools
    (the keyed-lock connection); `pool` is the engine's own pool."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        connect: Callable[[str], Awaitable[asyncpg.Connection]],
        config: ClusterConfig,
        version: str,
    ) -> None:
        self.pool = pool
        self.config = config
        self.version = version
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.node_id: int | None = None
        self.live_nodes = 1
        self.on_live_nodes: Callable[[int], None] | None = None  # the politeness limit's share
        self.on_expelled: Callable[[], None] | None = None  # the engine abandons its jobs
        self.on_beat: Callable[[], Awaitable[None]] | None = None  # after each good heartbeat
        self._connect = connect
        self._lease_end = 0.0  # monotonic; claiming stops here unless a heartbeat renews it
        self._full_until: dict[str, float] = {}  # capped type -> monotonic end of its pause
        self.locks = ClusterLocks(self._lock_connection)

    async def _lock_connection(self) -> asyncpg.Connection:
        assert self.node_id is not None
        return await self._connect(store.lock_application_name(self.node_id))

    def _renew(self, sent: float) -> None:
        self._lease_end = sent + self.config.node_timeout_s - self.config.heartbeat_s

    def may_claim(self) -> bool:
        """True while this node's lease holds (see the module's docstring)."""
        return self.node_id is not None and time.monotonic() < self._lease_end

    async def join(self) -> int:
        """Register as a new node and take the lease; returns the node id. Earlier nodes of this
        host and process space whose process is gone (this daemon before a restart, a crash)
        are declared dead at once, so the next reaper pass puts their jobs back without waiting
        node_timeout_s."""
        sent = time.monotonic()
        space = process_space()
        if space is not None:
            await self._bury_predecessors(space)
        self.node_id = await store.register_node(
            self.pool, self.host, self.pid, self.version, space
        )
        self._renew(sent)
        log.info("joined the cluster", node=self.node_id, host=self.host, pid=self.pid)
        return self.node_id

    async def _bury_predecessors(self, space: str) -> None:
        gone = [
            node
            for node, pid in await store.node_neighbours(self.pool, self.host, space)
            if pid != self.pid and not _pid_alive(pid)
        ]
        if not gone:
            return
        for node in await store.declare_nodes_gone(self.pool, gone):
            log.warning(
                "node declared dead: its process is gone from this host",
                dead_node=node["id"],
                host=node.get("host"),
                pid=node["pid"],
                silent_s=round(node["silent_s"], 1),
            )

    async def leave(self) -> None:
        """At a clean stop, after the engine handed its jobs back: peers need not wait for the
        timeout to know this node is gone."""
        await self.locks.close()
        if self.node_id is not None:
            try:
                await store.leave_cluster(self.pool, self.node_id)
            except DB_ERRORS as exc:
                log.warning(
                    "could not mark this node gone; peers notice it by its silence", error=str(exc)
                )

    async def claim(
        self,
        conn: asyncpg.Connection | PoolConnectionProxy,
        queue: str,
        limit: int,
        capped: Sequence[str],
        rooms: dict[str, int],
        caps: dict[str, int],
    ) -> list[Claimed]:
        """store.claim on `conn` (the caller's, so it knows which session a lost claim ran on),
        marked with this node; capped types with room are counted across the cluster
        (store.claim_capped), others claim as with a single daemon."""
        node_id = self.node_id
        assert node_id is not None
        if any(rooms.get(name, 0) > 0 for name in capped):
            claimed, cluster_rooms = await store.claim_capped(
                conn, queue, limit, capped, rooms, caps, node_id
            )
            until = time.monotonic() + CAP_FULL_RETRY_S
            for name, room in cluster_rooms.items():
                if room <= 0:
                    self._full_until[name] = until
            return claimed
        return await store.claim(conn, queue, limit, capped, rooms, node_id)

    def cap_full(self, name: str) -> bool:
        """Whether capped type `name` was at its cap across the cluster within the last
        CAP_FULL_RETRY_S (the engine then treats it as having no room)."""
        until = self._full_until.get(name)
        if until is None:
            return False
        if time.monotonic() >= until:
            del self._full_until[name]
            return False
        return True

    async def reap(self) -> store.Reaped:
        """One reaper pass (at start, then with each heartbeat); logs what it did."""
        assert self.node_id is not None
        reaped = await store.reap_dead_nodes(
            self.pool, self.node_id, self.config.node_timeout_s, self.config.max_interruptions
        )
        for node in reaped.dead:
            log.warning(
                "node declared dead: no heartbeat",
                dead_node=node["id"],
                host=node["host"],
                pid=node["pid"],
                silent_s=round(node["silent_s"], 1),
            )
        if reaped.requeued or reaped.poisoned:
            log.warning(
                "recovered jobs of dead nodes",
                requeued=len(reaped.requeued),
                poisoned=reaped.poisoned,
                ids=reaped.requeued[:50],
            )
        return reaped

    async def run(self) -> None:
        """Heartbeat and reap every heartbeat_s, for ever (a supervised task)."""
        while True:
            await asyncio.sleep(self.config.heartbeat_s)
            try:
                await self.beat()
            except DB_ERRORS as exc:
                # The lease runs out by itself: claiming stops until a heartbeat goes through.
                log.warning("heartbeat failed", error=f"{type(exc).__name__}: {exc}")

    async def beat(self) -> None:
        """One heartbeat, then a reaper pass and the live-node count."""
        assert self.node_id is not None
        sent = time.monotonic()
        if not await store.node_heartbeat(self.pool, self.node_id):
            await self._expelled()
            return
        self._renew(sent)
        await self.reap()
        if self.on_beat is not None:
            await self.on_beat()
        live = await store.count_live_nodes(self.pool)
        if live != self.live_nodes:
            log.info("live nodes changed", live_nodes=live, before=self.live_nodes)
            self.live_nodes = live
            if self.on_live_nodes is not None:
                self.on_live_nodes(live)

    async def _expelled(self) -> None:
        """Declared dead while alive (paused or cut off longer than the timeout): the jobs this
        node runs were put back and may run elsewhere, so it drops them and joins anew."""
        self._lease_end = 0.0
        log.error(
            "this node was declared dead by another (paused or cut off longer than "
            "node_timeout_s); abandoning its running jobs and joining again",
            node=self.node_id,
            node_timeout_s=self.config.node_timeout_s,
        )
        if self.on_expelled is not None:
            self.on_expelled()
        await self.join()
        # The old lock session (ended by the reaper, or about to be) goes; the next lock opens one
        # named after the new id, so the reaper can end it if this node dies again.
        await self.locks.close()


def process_space() -> str | None:
    """Where this daemon's pid means something: the kernel's boot id and the PID namespace, as
    "<boot_id> pid:[<inode>]"; None where /proc does not say (then no predecessor is buried)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
        return f"{boot} {os.readlink('/proc/self/ns/pid')}"
    except OSError:
        return None


def _pid_alive(pid: int) -> bool:
    """Whether a process `pid` exists here (one of another user counts: it may be the node)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
