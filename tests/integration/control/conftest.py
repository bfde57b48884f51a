"""The control tests' fixture: a real control socket over an engine on the per-test database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.control import Control, Gate, make_registry, start_control
from tests.support.engine import EngineFactory


@pytest.fixture
async def control(make_engine: EngineFactory, sock_dir: Path) -> AsyncIterator[Control]:
    """A control socket over an engine with the kit's registry (tests/support/control.py), its
    `slow` queue capped at 4, idle connections closed after 0.5 s."""
    gate = Gate()
    engine = await make_engine(make_registry(gate), concurrency={"default": 10, "slow": 4})
    ctl = await start_control(engine, sock_dir / "c.sock", gate, idle_timeout_s=0.5)
    yield ctl
    gate.release.set()
    await ctl.server.stop(grace=1.0)
