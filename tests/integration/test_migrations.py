"""Schema migrations: applied once, in order, recorded with a checksum; a changed file stops start-up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from addicted_jobs.db import (
    LOCK_NAMESPACE,
    MIGRATION_LOCK,
    Database,
    DatabaseError,
    apply_migrations,
    load_migrations,
    release_session_lock,
)
from addicted_jobs.jobs.onetime import run_pending
from tests.support import wait_until


async def test_applied_once_in_order_and_a_tampered_file_is_detected(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    (tmp_path / "001_first.sql").write_text("CREATE TABLE t_first (id int);")
    (tmp_path / "002_second.sql").write_text("ALTER TABLE t_first ADD COLUMN name text;")
    async with db_pool.acquire() as conn:
        await conn.execute(
            "DELETE FROM schema_migrations"
        )  # the template's own history is not ours here
        applied = await apply_migrations(conn, load_migrations(tmp_path))
        assert [m.version for m in applied] == [1, 2]
        assert await apply_migrations(conn, load_migrations(tmp_path)) == []
        await conn.execute("INSERT INTO t_first (id, name) VALUES (1, 'x')")

        (tmp_path / "001_first.sql").write_text("CREATE TABLE t_first (id bigint);")
        with pytest.raises(
            DatabaseError,
            match="001_first.sql: schema migration 1 was changed after it was applied",
        ):
            await apply_migrations(conn, load_migrations(tmp_path))


async def test_a_failing_migration_rolls_back_alone_and_names_the_file(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    (tmp_path / "001_ok.sql").write_text("CREATE TABLE t_ok (id int);")
    (tmp_path / "002_broken.sql").write_text(
        "CREATE TABLE t_broken (id int); SELECT no_such_column FROM t_ok;"
    )
    async with db_pool.acquire() as conn:
        await conn.execute("DELETE FROM schema_migrations")
        with pytest.raises(DatabaseError, match="002_broken.sql: schema migration failed"):
            await apply_migrations(conn, load_migrations(tmp_path))
        versions = await conn.fetch("SELECT version FROM schema_migrations")
        assert [r["version"] for r in versions] == [1]
        assert await conn.fetchval("SELECT to_regclass('t_broken')") is None


def test_badly_named_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "1-first.sql").write_text("SELECT 1;")
    with pytest.raises(DatabaseError, match="NNN_snake_name.sql"):
        load_migrations(tmp_path)


@pytest.fixture
async def observer(db_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection of its own, to look at the locks others hold."""
    conn = await asyncpg.connect(db_dsn)
    yield conn
    await conn.close()


async def _advisory_locks(conn: asyncpg.Connection) -> int:
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database())"
        )
    )


async def test_start_up_locks_are_gone_when_their_pooled_connection_goes_back(
    daemon_db: Database, observer: asyncpg.Connection
) -> None:
    # The daemon's pool skips asyncpg's reset query on release, so nothing else would drop them.
    assert daemon_db.pool is not None
    async with daemon_db.pool.acquire() as conn:
        await apply_migrations(conn)
    await run_pending(daemon_db.pool, [])
    assert await _advisory_locks(observer) == 0


async def test_a_lock_that_cannot_be_released_takes_its_connection_with_it(
    daemon_db: Database, observer: asyncpg.Connection
) -> None:
    assert daemon_db.pool is not None
    async with daemon_db.pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1, $2)", LOCK_NAMESPACE, MIGRATION_LOCK)
        assert await _advisory_locks(observer) == 1
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0):  # cancelled while the unlock is on the wire
                await release_session_lock(conn, MIGRATION_LOCK)

    async def released() -> bool:
        return await _advisory_locks(observer) == 0

    await wait_until(released, timeout=5, message="the terminated session's lock released")
    assert await daemon_db.pool.fetchval("SELECT 1") == 1  # the pool replaced the connection
