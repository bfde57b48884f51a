"""The daemon's two connection pools (issue 14): the client pool that socket requests and jobs
share, whose waits are bounded, and the engine's own small pool for claims, status writes,
recovery and pruning, which no request and no job can take. LISTEN and the instance lock have
connections of their own outside both.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import asyncpg
from asyncpg.pool import PoolAcquireContext, PoolConnectionProxy

# Claims of every dispatcher, the status flusher and the pruner take turns on these; each holds a
# connection for a few milliseconds.
ENGINE_POOL_SIZE = 3
# The claims and due-time reads of a daemon without [cluster] have a pool of their own, whose
# statements keep a generic plan (db.CLAIM_POOL_OPTIONS): two, so two queues claim at once.
CLAIM_POOL_SIZE = 2
# The deadline of every statement on the engine's pool (issue 14, part 3): a connection whose path
# still acknowledges but never answers (half-open behind a proxy or NAT) would otherwise hold a
# claim or a status write forever; keepalives cannot see it. A claim, a flush of 5,000 outcomes
# or a due-time query takes milliseconds (0.25 s for the largest flush on a loaded 2-core box),
# so 10 s is never legitimate. Statements that may take long pass their own: recovery and each
# prune batch (store.LONG_STATEMENT_S). asyncpg then cancels the statement and, if the
# connection does not acknowledge the cancel within the same deadline, drops it.
ENGINE_STATEMENT_TIMEOUT_S = 10.0


class PoolExhausted(asyncpg.InterfaceError):
    """No pooled connection became free within the acquire timeout (every one is held by socket
    requests or jobs). The control socket answers it as `unavailable`."""


class _BoundedAcquire:
    """asyncpg's acquire context with a default timeout whose expiry says what happened."""

    def __init__(self, pool: BoundedPool, timeout: float) -> None:
        self._pool = pool
        self._timeout = timeout
        self._inner: PoolAcquireContext = asyncpg.Pool.acquire(pool, timeout=timeout)

    def _exhausted(self) -> PoolExhausted:
        return PoolExhausted(
            f"no database connection became free within {self._timeout:g} s: all "
            f"{self._pool.get_max_size()} connections of the pool ([database] pool_max) are in "
            "use by socket requests and jobs; try again, or raise [database] pool_max"
        )

    async def __aenter__(self) -> PoolConnectionProxy:
        try:
            return await self._inner.__aenter__()
        except TimeoutError as exc:
            raise self._exhausted() from exc

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._inner.__aexit__(exc_type, exc, tb)

    def __await__(self) -> Any:
        return self.__aenter__().__await__()


class BoundedPool(asyncpg.Pool):
    """An asyncpg pool whose acquire (and so fetch, execute...) waits at most `acquire_timeout_s`
    unless the caller gives its own timeout; then raises PoolExhausted."""

    acquire_timeout_s: float = 5.0

    def acquire(self, *, timeout: float | None = None) -> Any:
        if timeout is not None:
            return super().acquire(timeout=timeout)
        return _BoundedAcquire(self, self.acquire_timeout_s)


# asyncpg.create_pool's defaults, which Pool() itself requires explicitly.
asyncpg_defaults: dict[str, Any] = {
    "max_queries": 50000,
    "max_inactive_connection_lifetime": 300.0,
    "loop": None,
    "min_size": 10,
    "max_size": 10,
}


async def create_bounded_pool(dsn: str, acquire_timeout_s: float, **options: Any) -> BoundedPool:
    """asyncpg.create_pool with BoundedPool; `options` as asyncpg.create_pool takes them. Raises
    what opening the pool raises; asyncpg (>= 0.32) has then terminated the connections it had
    opened."""
    for key, default in asyncpg_defaults.items():
        options.setdefault(key, default)
    pool = BoundedPool(
        dsn,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        **options,
    )
    pool.acquire_timeout_s = acquire_timeout_s
    await pool
    return pool
