"""Shared fixtures: a migrated template database cloned per test, a short socket directory, and
plugins for the S3 server, the daemon subprocess and the half-open proxy. Plain helpers and types
are in tests/support/; no test module imports from a conftest.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from addicted_jobs.db import POOL_OPTIONS, _init_connection, apply_migrations
from addicted_jobs.embedded_pg import EmbeddedPostgres
from tests.support.database import with_database

pytest_plugins = ["tests.plugins.s3", "tests.plugins.daemon", "tests.plugins.halfopen_proxy"]


async def _reachable(dsn: str) -> bool:
    try:
        conn = await asyncpg.connect(dsn, timeout=3)
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


@pytest.fixture(scope="session")
def pg_admin_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """TEST_DATABASE_URL, else the local server on 127.0.0.1:5432, else an embedded server."""
    explicit = os.environ.get("TEST_DATABASE_URL")
    if explicit:
        yield explicit
        return
    local = "postgresql://postgres@127.0.0.1:5432/postgres"
    if asyncio.run(_reachable(local)):
        yield local
        return
    embedded = EmbeddedPostgres(tmp_path_factory.mktemp("embedded-pg"))
    try:
        yield embedded.start()
    finally:
        embedded.stop()


@pytest.fixture(scope="session")
def pg_template(pg_admin_dsn: str) -> Iterator[str]:
    """A database with every schema migration applied, created once per test session."""
    name = f"aj_template_{os.getpid()}"

    async def create() -> None:
        admin = await asyncpg.connect(pg_admin_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        conn = await asyncpg.connect(with_database(pg_admin_dsn, name))
        try:
            await apply_migrations(conn)
        finally:
            await conn.close()

    async def drop() -> None:
        admin = await asyncpg.connect(pg_admin_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    asyncio.run(create())
    yield name
    asyncio.run(drop())


@pytest.fixture
async def db_dsn(pg_admin_dsn: str, pg_template: str) -> AsyncIterator[str]:
    """A fresh, migrated database for one test, cloned from the template."""
    name = f"aj_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(pg_admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    finally:
        await admin.close()
    yield with_database(pg_admin_dsn, name)
    admin = await asyncpg.connect(pg_admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def db_pool(db_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(
        db_dsn,
        min_size=1,
        max_size=10,
        init=_init_connection,
        **POOL_OPTIONS,  # as the daemon builds its pool
    )
    yield pool
    await pool.close()


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    """A fresh directory under /tmp for Unix sockets, removed afterwards. pytest's tmp_path can
    exceed the 107 bytes a socket path may have."""
    path = Path(tempfile.mkdtemp(prefix="ajc", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)
