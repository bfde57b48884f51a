"""Keyed locks across cluster nodes (issue 19): the in-memory registry stays the fast path inside a
node, and a key is also held in PostgreSQL, as a session advisory lock on the node's own lock
connection, so a job on another node sees it. Try and wait modes behave as in KeyedLocks.

A lock is released when its job ends, or when its node dies: a node that exits or loses its
connection loses its session and with it its locks; a node declared dead while its session is
still up (paused) has that session ended by the node that declared it (store.reap_dead_nodes).
A node whose lock session ends under it (a database restart, a failover, the reaper) interrupts
the jobs holding cluster locks at once: they no longer hold them, and run again later.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy

from addicted_jobs.db import UNREACHABLE, close_or_terminate
from addicted_jobs.jobs import store
from addicted_jobs.jobs.locks import KeyedLocks

log = structlog.get_logger("addicted_jobs.jobs.cluster")

WAIT_POLL_MIN_S = 0.02  # a waiter asks again after this, doubling up to WAIT_POLL_MAX_S
WAIT_POLL_MAX_S = 0.5


class ClusterLocks(KeyedLocks):
    """KeyedLocks whose keys are also held cluster-wide. `connect` opens the dedicated lock
    connection (application_name naming the node, see store.lock_application_name).

    A wait-mode waiter polls pg_try_advisory_lock (WAIT_POLL_MIN_S doubling to WAIT_POLL_MAX_S)
    instead of blocking in pg_advisory_lock: the one connection serves every lock of the node,
    and a blocked statement would hold up all of them. Database errors propagate to the job
    (it fails and is retried by its policy)."""

    def __init__(self, connect: Callable[[], Awaitable[asyncpg.Connection]]) -> None:
        super().__init__()
        self._connect = connect
        self._conn: asyncpg.Connection | None = None
        self._use = asyncio.Lock()  # one statement at a time on the connection
        self._pending: set[asyncio.Future[None]] = set()  # releases after a cancelled take
        self._holders: dict[str, asyncio.Task[Any]] = {}  # key -> the job task holding it
        self._closing = False

    async def _statement(self, key: str, take: bool) -> bool:
        async with self._use:
            if self._conn is None or self._conn.is_closed():
                if self._conn is not None:
                    # Every lock that session held is gone with it: jobs holding one run on
                    # unprotected until they end (logged, so the operator can tell).
                    log.warning("keyed-lock connection lost; reconnecting")
                self._conn = await self._connect()
                self._conn.add_termination_listener(self._lost)
            if take:
                return await store.try_keyed_lock(self._conn, key)
            await store.release_keyed_lock(self._conn, key)
            return True

    def _lost(self, conn: asyncpg.Connection | PoolConnectionProxy) -> None:
        """The lock session ended: every lock it held is gone, so the jobs holding them stop
        (interrupted: back to ready without spending an attempt)."""
        if conn is not self._conn or self._closing:
            return
        self._conn = None
        if self._holders:
            log.error(
                "keyed-lock session lost; interrupting the jobs that held cluster locks",
                keys=sorted(self._holders)[:20],
                jobs=len(self._holders),
            )
        for task in self._holders.values():
            task.cancel()

    def _held_by_me(self, key: str) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._holders[key] = task

    async def _take(self, key: str) -> bool:
        """Try the key in the database. A cancellation (a timeout, an operator's cancel) cannot
        leave the lock taken: a statement that answers after it has its lock given back."""
        task = asyncio.ensure_future(self._statement(key, take=True))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(lambda done: self._give_back(key, done))
            raise

    def _give_back(self, key: str, done: asyncio.Future[bool]) -> None:
        if not done.cancelled() and done.exception() is None and done.result():
            self._pending.add(asyncio.ensure_future(self._release(key)))
            self._pending = {t for t in self._pending if not t.done()}

    async def _release(self, key: str) -> None:
        try:
            await asyncio.shield(self._statement(key, take=False))
        except (*UNREACHABLE, asyncpg.PostgresError) as exc:
            # The session is gone (so is the lock) or will be replaced: nothing left to release.
            log.warning("keyed lock not released in the database", key=key, error=str(exc))

    @asynccontextmanager
    async def try_lock(self, key: str) -> AsyncIterator[bool]:
        """Yields False at once when the key is held on this node or any other."""
        async with super().try_lock(key) as got:
            if not got:
                yield False
                return
            if not await self._take(key):
                yield False
                return
            self._held_by_me(key)
            try:
                yield True
            finally:
                self._holders.pop(key, None)
                await self._release(key)

    @asynccontextmanager
    async def lock(self, key: str) -> AsyncIterator[None]:
        """Waits for the key on this node, then across the cluster; cancellation while waiting
        leaves no trace."""
        async with super().lock(key):
            pause = WAIT_POLL_MIN_S
            while not await self._take(key):
                await asyncio.sleep(pause)
                pause = min(pause * 2, WAIT_POLL_MAX_S)
            self._held_by_me(key)
            try:
                yield
            finally:
                self._holders.pop(key, None)
                await self._release(key)

    async def close(self) -> None:
        self._closing = True
        try:
            if self._conn is not None and not self._conn.is_closed():
                await close_or_terminate(self._conn)
        finally:
            self._conn = None
            self._closing = False
