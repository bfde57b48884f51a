"""Control socket test kit: a registry whose `block` jobs a test can hold in 'running', a real
socket server over an engine's operations, and raw-socket helpers. The `control` and `sock_dir`
fixtures built on it are in tests/integration/control/conftest.py and tests/conftest.py."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from pydantic import BaseModel, ConfigDict

from addicted_jobs.control.client import ControlClient
from addicted_jobs.control.op import Handler, Op
from addicted_jobs.control.ops import EngineOps
from addicted_jobs.control.protocol import NoArgs
from addicted_jobs.control.server import ControlServer
from addicted_jobs.jobs import JobContext, JobSpec, Registry
from addicted_jobs.jobs.engine import Engine
from addicted_jobs.jobs.spec import NOOP


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
    """noop, `block` (queue slow, waits on `gate`), `uniq` (unique by key) and `blob`."""

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
    """A running control socket at `path` over `engine`'s operations; `gate` holds its `block` jobs."""

    engine: Engine
    ops: EngineOps
    server: ControlServer
    path: Path
    gate: Gate
    pool: asyncpg.Pool

    def client(self, timeout: float = 10.0) -> ControlClient:
        """A client of this socket; `timeout` in seconds per call."""
        return ControlClient(self.path, timeout)

    async def call(self, op: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        """One request on a fresh connection; the reply's result (ControlError on an error reply)."""
        async with self.client() as client:
            return await client.call(op, args)


async def start_control(
    engine: Engine,
    path: Path,
    gate: Gate,
    extra: dict[str, Handler] | None = None,
    **server_options: Any,
) -> Control:
    """The engine's operations, plus `extra` ones (name -> handler, taking no arguments)."""
    ops = EngineOps(engine, version="test", uptime=lambda: 1.5)
    added = [Op(name, NoArgs, handler) for name, handler in (extra or {}).items()]
    server = ControlServer(path, [*ops.ops(), *added], **server_options)
    await server.start()
    return Control(engine, ops, server, path, gate, engine.pool)


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
