"""`recurring disable NAME` / `enable` (issue 17): the timer goes at once, the choice survives a
restart and a reload, a missed slot of a disabled entry is not caught up, and `recurring` shows
it; LAST FIRE counts manual triggers. Through the command line over a real socket."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import structlog

from addicted_jobs import cli
from addicted_jobs.control.ops import EngineOps
from addicted_jobs.control.server import ControlServer
from addicted_jobs.jobs.engine import Engine
from addicted_jobs.jobs.recurring import RecurringScheduler, build_plan
from addicted_jobs.jobs.spec import default_registry
from addicted_jobs.settings import RecurringSettings
from tests.support import wait_until
from tests.support.engine import EngineFactory


def plan(enabled: bool = True) -> list:  # type: ignore[type-arg]
    conf = {"tick": RecurringSettings(cron="0 2 * * *", job="noop", enabled=enabled)}
    return build_plan(conf, default_registry())


@pytest.fixture(autouse=True)
def _logs_off_stdout() -> Iterator[None]:
    with structlog.testing.capture_logs():
        yield


@pytest.fixture
async def served(make_engine: EngineFactory, sock_dir: Path) -> AsyncIterator[tuple[Engine, Path]]:
    engine = await make_engine(default_registry())
    yield engine, sock_dir / "c.sock"


async def serve(engine: Engine, path: Path, scheduler: RecurringScheduler) -> ControlServer:
    ops = EngineOps(engine, version="test", uptime=lambda: 1.0, scheduler=scheduler)
    server = ControlServer(path, ops.ops())
    await server.start()
    return server


async def run_cli(path: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = await asyncio.to_thread(cli.main, [*argv, "--socket", str(path)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


async def test_disable_survives_restart_and_reload_and_enable_undoes_it(
    served: tuple[Engine, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    engine, path = served
    scheduler = RecurringScheduler(engine, plan(), 3600)
    await scheduler.start()
    server = await serve(engine, path, scheduler)
    try:
        code, out = await run_cli(path, capsys, "recurring", "disable", "tick")
        assert code == 0 and "recurring tick disabled" in out
        assert scheduler.next_slot("tick") is None
        code, out = await run_cli(path, capsys, "recurring")
        assert "no (disabled)" in out
        scheduler.apply(plan())  # a reload keeps it off
        assert scheduler.next_slot("tick") is None
        code, out = await run_cli(path, capsys, "recurring", "disable", "nope")
        assert code == 1 and "no recurring job 'nope'; configured ones: tick" in out
    finally:
        await server.stop()
        await scheduler.stop()

    # A restart, after 02:00 was missed: a disabled entry is not caught up, nor scheduled.
    now = datetime.now(UTC)
    await engine.pool.execute(
        "UPDATE jobs.recurring SET created_at = $1 WHERE name = 'tick'", now - timedelta(days=2)
    )
    restarted = RecurringScheduler(engine, plan(), 2 * 86400)
    await restarted.start()
    server = await serve(engine, path, restarted)
    try:
        assert restarted.next_slot("tick") is None
        assert await engine.pool.fetchval("SELECT count(*) FROM jobs.jobs") == 0
        listed = json.loads((await run_cli(path, capsys, "recurring", "--json"))[1])
        [entry] = listed["recurring"]
        assert entry["enabled"] is False and entry["next_fire"] is None
        assert entry["disabled_by"].startswith("uid ")
        code, out = await run_cli(path, capsys, "recurring", "enable", "tick")
        assert code == 0 and "recurring tick enabled" in out
        await wait_until(
            lambda: restarted.next_slot("tick") is not None, message="the timer takes tick again"
        )
        code, out = await run_cli(path, capsys, "trigger", "tick")
        assert code == 0
        [entry] = json.loads((await run_cli(path, capsys, "recurring", "--json"))[1])["recurring"]
        assert entry["enabled"] is True and entry["last_fire"] is not None  # the manual trigger
    finally:
        await server.stop()
        await restarted.stop()


async def test_enable_refuses_an_entry_the_config_disables(
    served: tuple[Engine, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    engine, path = served
    scheduler = RecurringScheduler(engine, plan(enabled=False), 3600)
    await scheduler.start()
    server = await serve(engine, path, scheduler)
    try:
        code, out = await run_cli(path, capsys, "recurring", "enable", "tick")
        assert code == 1 and "enabled = false" in out
        code, out = await run_cli(path, capsys, "recurring")
        assert "no (config)" in out
    finally:
        await server.stop()
        await scheduler.stop()
