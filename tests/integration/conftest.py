"""Engine fixtures: an Engine on the per-test database, stopped at the end of the test; the
daemon's own Database (its pool options) on that database. Fixtures of one area live in that
area's folder (control/conftest.py); plain shared code in tests/support/."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from addicted_jobs.db import Database, _init_connection, create_engine_pool
from addicted_jobs.jobs import Registry
from addicted_jobs.jobs.engine import Engine, EngineConfig
from tests.support.engine import EngineFactory


@pytest.fixture
async def make_engine(db_pool: asyncpg.Pool, db_dsn: str) -> AsyncIterator[EngineFactory]:
    """An EngineFactory (tests/support/engine.py); every engine it made is stopped afterwards.
    Its claims run on a pool built as the daemon's claim pool (db.create_engine_pool)."""
    engines: list[Engine] = []
    claim_pool = await create_engine_pool(db_dsn, claims=True)

    async def connect() -> asyncpg.Connection:
        conn = await asyncpg.connect(db_dsn)
        await _init_connection(conn)
        return conn

    async def factory(registry: Registry, *, start: bool = True, **config: Any) -> Engine:
        config.setdefault("concurrency", {"default": 10})
        config.setdefault("fallback_poll_s", 1.0)
        engine = Engine(
            db_pool, registry, EngineConfig(**config), connect=connect, claim_pool=claim_pool
        )
        engines.append(engine)
        if start:
            await engine.recover()
            await engine.start()
        return engine

    yield factory
    for engine in engines:
        if engine.started and not engine.stopping:
            await engine.stop(grace=2.0)
    await claim_pool.close()


@pytest.fixture
async def daemon_db(db_dsn: str, tmp_path: Path) -> AsyncIterator[Database]:
    """The per-test database through the daemon's Database: its pool, its connection options."""
    db = Database(db_dsn, tmp_path)
    await db.start()
    yield db
    await db.close()
