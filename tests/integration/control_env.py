"""Control socket test kit: an engine, its operations and a real socket server on the per-test
database, plus raw-socket helpers. Imported by the test_control_* modules."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from pydantic import BaseModel, ConfigDict

from addicted_jobs.control.client import ControlClient
from addicted_jobs.control.ops import READ_ONLY, EngineOps
from addicted_jobs.control.server import ControlServer, OpHandler
from addicted_jobs.jobs import JobContext, JobSpec, Registry
from addicted_jobs.jobs.engine import Engine
from addicted_jobs.jobs.spec import NOOP
from tests.integration.conftest import EngineFactory


class KeyArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: int


class BlobArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    blob: str


@dataclass
class Gate:
    """Handlers of the `block` job wait here, so a test can hold a job in 'running'."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    started: int = 0


def make_registry(gate: Gate) -> Registry:
    async def block(ctx: JobContext, args: BaseModel) -> None:
        gate.started += 1
        await gate.release.wait()

    async def nothing(ctx: JobContext, args: BaseModel) -> None:
        return None

    registry = Registry()
    registry.register(NOOP)
    registry.register(JobSpec("block", "slow", KeyArgs, block))
    registry.register(JobSpec("uniq", "default", KeyArgs, nothing, unique_key=lambda a: str(a.key)))
    registry.register(JobSpec("blob", "default", BlobArgs, nothing))
    return registry


@dataclass
class Control:
    engine: Engine
    ops: EngineOps
    server: ControlServer
    path: Path
    gate: Gate
    pool: asyncpg.Pool

    def client(self, timeout: float = 10.0) -> ControlClient:
        return ControlClient(self.path, timeout)

    async def call(self, op: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        async with self.client() as client:
            return await client.call(op, args)


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    # pytest's tmp_path can exceed the 107 bytes a Unix socket path may have.
    path = Path(tempfile.mkdtemp(prefix="ajc", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def start_control(
    engine: Engine,
    path: Path,
    gate: Gate,
    extra: dict[str, OpHandler] | None = None,
    **server_options: Any,
) -> Control:
    ops = EngineOps(engine, version="test", uptime=lambda: 1.5)
    server = ControlServer(path, ops.handlers(), extra=extra, read_only=READ_ONLY, **server_options)
    await server.start()
    return Control(engine, ops, server, path, gate, engine.pool)


@pytest.fixture
async def control(make_engine: EngineFactory, sock_dir: Path) -> AsyncIterator[Control]:
    gate = Gate()
    engine = await make_engine(make_registry(gate), concurrency={"default": 10, "slow": 4})
    ctl = await start_control(engine, sock_dir / "c.sock", gate, idle_timeout_s=0.5)
    yield ctl
    gate.release.set()
    await ctl.server.stop(grace=1.0)


async def exchange(
    path: Path, data: bytes, *, half_close: bool = True, timeout: float = 5.0
) -> list[bytes]:
    """Write raw bytes, then read reply lines until the server closes (or `timeout`)."""
    reader, writer = await asyncio.open_unix_connection(str(path), limit=1 << 26)
    lines: list[bytes] = []
    try:
        writer.write(data)
        await writer.drain()
        if half_close:
            writer.write_eof()
        async with asyncio.timeout(timeout):
            while line := await reader.readline():
                lines.append(line)
    except (ConnectionError, TimeoutError):
        pass
    finally:
        writer.close()
    return lines


async def jobs_fingerprint(pool: asyncpg.Pool) -> str:
    """A digest of every row of jobs.jobs and jobs.queues: equal means nothing changed."""
    rows = await pool.fetch("SELECT * FROM jobs.jobs ORDER BY id")
    queues = await pool.fetch("SELECT * FROM jobs.queues ORDER BY name")
    text = repr([tuple(r) for r in rows]) + repr([tuple(q) for q in queues])
    return hashlib.sha256(text.encode()).hexdigest()
