"""Database.start opens the daemon's three pools together (db.Database._open_pools): all of them
when the server lets it, and none left behind when it refuses one."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from addicted_jobs.db import Database, DatabaseError
from tests.plugins.halfopen_proxy import HalfOpenProxy
from tests.support import wait_until


@pytest.fixture
async def limited_role(
    db_dsn: str, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[str, str]]:
    """(role, DSN) of a login role the server lets hold at most 3 connections (or the number
    given by indirect parametrisation)."""
    limit = int(getattr(request, "param", 3))
    role = f"aj_limited_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(db_dsn)
    await admin.execute(f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT {limit}')
    # Only the user changes: the host part stays as given (a socket directory in `?host=` for the
    # embedded server, an IPv6 address in brackets).
    parts = urlsplit(db_dsn)
    netloc = f"{role}@{parts.netloc.rpartition('@')[2]}"
    try:
        yield role, urlunsplit(parts._replace(netloc=netloc))
    finally:
        # Roles outlive the test's database: dropped whatever the test left (PostgreSQL drops a
        # role with sessions still open; they are ended first all the same).
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", role
            )
        finally:
            await admin.execute(f'DROP ROLE IF EXISTS "{role}"')
            await admin.close()


async def _connections_are(
    admin: asyncpg.Connection, count: int, *, role: str | None = None
) -> bool:
    """Whether `count` connections other than `admin`'s are open to its database (of `role`
    only, when given, on any database)."""
    found = await admin.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
        " AND CASE WHEN $1::text IS NULL THEN datname = current_database() ELSE usename = $1 END",
        role,
    )
    return bool(found == count)


@pytest.mark.parametrize(
    ("limited_role", "spares"),
    [(3, 0), (5, 2)],
    ids=["pools", "pools-and-spares"],
    indirect=["limited_role"],
)
async def test_a_refused_pool_leaves_no_connection_of_the_others_open(
    db_dsn: str, limited_role: tuple[str, str], spares: int, tmp_path: Path
) -> None:
    role, dsn = limited_role
    # 2 client connections + 1 engine + 1 claim (+ the spares) = 4 (6) against a limit of 3 (5):
    # one is refused.
    db = Database(dsn, tmp_path, pool_min=2, pool_max=4, spare_connections=spares)
    with pytest.raises(DatabaseError, match="too many connections"):
        await db.start()
    assert db.pool is None and db.engine_pool is None and db.claim_pool is None
    admin = await asyncpg.connect(db_dsn)
    try:
        # The pools that did open were dropped at once, not left to the caller's close().
        await wait_until(lambda: _connections_are(admin, 0, role=role), message="none left open")
    finally:
        await admin.close()


async def test_all_three_pools_open_when_the_server_allows(db_dsn: str, tmp_path: Path) -> None:
    db = Database(db_dsn, tmp_path, pool_min=2, pool_max=4)
    await db.start()
    try:
        assert db.pool is not None and db.engine_pool is not None and db.claim_pool is not None
        for pool in (db.pool, db.engine_pool, db.claim_pool):
            assert await pool.fetchval("SELECT 1") == 1
        assert db.pool.get_size() >= 2  # pool_min
    finally:
        await db.close()


async def test_a_start_cancelled_while_the_pools_open_leaves_no_connection_open(
    db_dsn: str, proxy: HalfOpenProxy, tmp_path: Path
) -> None:
    # The three pools and the two spare connections start at once (each pool first connects one
    # connection): two of those reach the server, so one of them opens; the others wait for an
    # answer that never comes, so start() is still waiting when it is cancelled (a signal during
    # start-up).
    proxy.forward_only(2)
    parts = urlsplit(db_dsn)
    user = parts.netloc.rpartition("@")[0]
    dsn = urlunsplit(parts._replace(netloc=f"{user}@127.0.0.1:{proxy.port}"))
    db = Database(dsn, tmp_path, pool_min=2, pool_max=4, connect_timeout=60, spare_connections=2)
    admin = await asyncpg.connect(db_dsn)
    try:
        starting = asyncio.create_task(db.start())
        # Both forwarded connections are up: the pool that got one opens with it (its set-up
        # needs no statement), while start() still waits for the held one.
        await wait_until(lambda: _connections_are(admin, 2), message="two at the server")
        starting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await starting
        assert db.pool is None and db.engine_pool is None and db.claim_pool is None
        # What did open was dropped, not left out of close()'s reach.
        await wait_until(lambda: _connections_are(admin, 0), message="none left open")
    finally:
        await admin.close()


async def test_the_spare_connections_open_with_the_pools_and_are_handed_out_first(
    db_dsn: str, tmp_path: Path
) -> None:
    """The instance lock's and LISTEN's connections (app.App: spare_connections=2) are up when
    start() returns: connect() hands them out without a new backend, then opens new ones; close()
    closes a spare nobody asked for."""
    db = Database(db_dsn, tmp_path, pool_min=2, pool_max=4, spare_connections=2)
    admin = await asyncpg.connect(db_dsn)
    opened: list[asyncpg.Connection] = []
    try:
        await db.start()
        # 2 client + 1 engine + 1 claim + 2 spares.
        await wait_until(lambda: _connections_are(admin, 6), message="pools and spares up")
        backends = {
            r["pid"]
            for r in await admin.fetch(
                "SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
            )
        }
        opened.append(await db.connect())
        assert await _connections_are(admin, 6)  # a spare: no new connection
        assert opened[0].get_server_pid() in backends
        assert await opened[0].fetchval("SELECT current_setting('daemon.runner')")  # as connect()'s
        named = await db.connect(application_name="aj-node-lock")  # a named one is never a spare
        opened.append(named)
        assert await _connections_are(admin, 7)
        opened.append(await db.connect())  # the second spare
        assert await _connections_are(admin, 7)
        opened.append(await db.connect())  # then new ones
        assert await _connections_are(admin, 8)
    finally:
        for conn in opened:
            await conn.close()
        await db.close()
        await wait_until(lambda: _connections_are(admin, 0), message="none left open")
        await admin.close()


async def test_spares_never_handed_out_are_closed_and_the_pools_stay(
    db_dsn: str, tmp_path: Path
) -> None:
    """The daemon closes the spares its start-up did not take (close_spares, after the engine
    started), so none sits idle for the life of the process; close() closes them too."""
    db = Database(db_dsn, tmp_path, pool_min=2, pool_max=4, spare_connections=2)
    admin = await asyncpg.connect(db_dsn)
    try:
        await db.start()
        await wait_until(lambda: _connections_are(admin, 6), message="pools and spares up")
        taken = await db.connect()
        await db.close_spares()
        await wait_until(lambda: _connections_are(admin, 5), message="the other spare closed")
        assert db.engine_pool is not None and await db.engine_pool.fetchval("SELECT 1") == 1
        new = await db.connect()  # no spare left: a new connection
        await wait_until(lambda: _connections_are(admin, 6), message="a new one")
        await taken.close()
        await new.close()
        await db.close()
        await wait_until(lambda: _connections_are(admin, 0), message="none left open")
    finally:
        await admin.close()


async def test_close_closes_the_spare_connections_never_handed_out(
    db_dsn: str, tmp_path: Path
) -> None:
    db = Database(db_dsn, tmp_path, pool_min=2, pool_max=4, spare_connections=2)
    admin = await asyncpg.connect(db_dsn)
    try:
        await db.start()
        await wait_until(lambda: _connections_are(admin, 6), message="pools and spares up")
        await db.close()
        await wait_until(lambda: _connections_are(admin, 0), message="none left open")
    finally:
        await admin.close()


async def test_connect_replaces_a_spare_the_server_ended(db_dsn: str, tmp_path: Path) -> None:
    """A spare ended by the server between the start and its use (a restart, an operator's
    pg_terminate_backend) is not handed out: connect() gives a working connection instead."""
    db = Database(db_dsn, tmp_path, pool_min=2, pool_max=4, spare_connections=2)
    admin = await asyncpg.connect(db_dsn)
    conn: asyncpg.Connection | None = None
    try:
        await db.start()
        ended = {
            r["pid"]
            for r in await admin.fetch(
                "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        }
        assert len(ended) == 6  # 2 client + 1 engine + 1 claim + 2 spares
        conn = await db.connect()
        assert await conn.fetchval("SELECT 1") == 1
        assert conn.get_server_pid() not in ended
    finally:
        if conn is not None:
            await conn.close()
        await db.close()
        await admin.close()


async def test_a_spare_whose_set_up_fails_is_not_left_open(
    db_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection that reached the server but failed while it was set up (here every
    connection's: the pools' and the spares') is dropped with the start that failed."""

    async def refuse(conn: asyncpg.Connection) -> None:
        raise RuntimeError("set-up refused")

    monkeypatch.setattr("addicted_jobs.db._init_connection", refuse)
    db = Database(db_dsn, tmp_path, pool_min=2, pool_max=4, spare_connections=2)
    admin = await asyncpg.connect(db_dsn)
    try:
        with pytest.raises(RuntimeError, match="set-up refused"):
            await db.start()
        await wait_until(lambda: _connections_are(admin, 0), message="none left open")
    finally:
        await admin.close()
