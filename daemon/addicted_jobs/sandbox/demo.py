"""`addicted-jobs demo`: the whole pipeline in one command, on embedded defaults, against the sandbox
upstream on loopback: catalogue sync, show refreshes, subtitle downloads and compressed storage.
It needs no network and no database server; the daemon's own log goes to <state>/daemon.log.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import asyncpg
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from addicted_jobs import logs
from addicted_jobs.app import App
from addicted_jobs.jobs import TERMINAL, JobRequest, store
from addicted_jobs.sandbox import Sandbox
from addicted_jobs.settings import Settings

COOKIES = ("demo-user-1=sandbox", "demo-user-2=sandbox", "demo-user-3=sandbox")


@dataclass(frozen=True)
class DemoOptions:
    shows: int = 200
    sample_shows: int = 20
    sample_subtitles: int = 60
    state: Path | None = None
    keep: bool = False


class Progress:
    """A redrawn line on a terminal; one plain line per change of phase or every few seconds otherwise."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self._last_plain = 0.0

    def show(self, phase: str, done: int, total: int, counts: dict[str, int]) -> None:
        summary = " ".join(f"{k}={v}" for k, v in counts.items() if v)
        if self.tty:
            width = 28
            filled = int(width * done / total) if total else width
            bar = "#" * filled + "-" * (width - filled)
            self.out.write(f"\r\033[K{phase:<22} [{bar}] {done}/{total}  {summary}")
            self.out.flush()
        elif time.monotonic() - self._last_plain > 2 or done == total:
            self._last_plain = time.monotonic()
            print(f"{phase}: {done}/{total} jobs done ({summary})", file=self.out, flush=True)

    def end_phase(self) -> None:
        if self.tty:
            self.out.write("\n")
            self.out.flush()


class DemoSettings(Settings):
    """The demo's own values only: never ADDICTED_JOBS_* from the environment, which could point
    it at a real database, socket or bucket and write its fake catalogue there."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def demo_settings(state: Path, sandbox: Sandbox) -> Settings:
    return DemoSettings.model_validate(
        {
            "state": {"dir": state},
            "control": {"socket": state / "control.sock"},
            "log": {"level": "info", "format": "json"},
            "shutdown": {"grace_seconds": 5},
            "addic7ed": {"base_url": sandbox.addic7ed_url, "requests_per_second": 0},
            "tmdb": {"base_url": sandbox.tmdb_url, "api_key": sandbox.tmdb_api_key},
            "storage": {"backend": "local", "train_after": 0},
            # The demo drives the jobs itself; the nightly schedule would only add noise.
            "recurring": {name: {"enabled": False} for name in Settings().recurring},
        }
    )


STALL_S = 20.0  # how long only failed-and-retrying jobs may be left before the demo gives up


class DemoStalled(Exception):
    """Only jobs waiting to retry after an error are left: against the fault-free sandbox that is
    a bug to show, not something to wait hours of backoff for (the demo used to hang at 114/115)."""


async def _wait_idle(pool: asyncpg.Pool, phase: str, since_id: int, progress: Progress) -> None:
    """Until every job created since `since_id` (continuations included) has finished;
    DemoStalled when only retrying jobs have been left for STALL_S."""
    stalled_since: float | None = None
    while True:
        counts = await store.counts_since(pool, since_id)
        total = sum(counts.values())
        done = sum(counts.get(s, 0) for s in TERMINAL)
        progress.show(phase, done, total, counts)
        if total and done == total:
            progress.end_phase()
            return
        retrying = await store.retrying_since(pool, since_id)
        if not retrying or len(retrying) < total - done:
            stalled_since = None
        elif stalled_since is None:
            stalled_since = time.monotonic()
        elif time.monotonic() - stalled_since > STALL_S:
            progress.end_phase()
            jobs = "; ".join(f"#{r['id']} {r['name']}: {r['last_error']}" for r in retrying[:5])
            raise DemoStalled(f"{phase}: only jobs retrying after an error are left: {jobs}")
        await asyncio.sleep(0.25)  # a progress refresh, not a synchronisation


async def _summary(pool: asyncpg.Pool, app: App, started: float) -> dict[str, Any]:
    counts = {
        table: await pool.fetchval(f"SELECT count(*) FROM {table}")
        for table in ("tv_shows", "seasons", "episodes", "subtitles")
    }
    stored = await pool.fetch("SELECT storage_path FROM subtitles WHERE storage_path IS NOT NULL")
    raw = packed = 0
    assert app.domain is not None
    for row in stored:
        blob = await app.domain.store.storage.get(row["storage_path"])
        if blob is not None:
            packed += len(blob)
            raw += len(await app.domain.store.decompress(blob))
    jobs = await store.counts_since(pool, 0)  # every job: the ids start at 1
    return {
        **counts,
        "stored_files": len(stored),
        "compression_ratio": round(raw / packed, 2) if packed else None,
        "jobs": jobs,
        "seconds": round(time.monotonic() - started, 1),
    }


async def _phase(app: App, phase: str, requests: list[JobRequest], progress: Progress) -> None:
    """Enqueue one phase's jobs and wait until they and their continuations have finished."""
    assert app.engine is not None and app.db is not None and app.db.pool is not None
    if not requests:
        return
    mark = await store.newest_id(app.db.pool)
    await app.engine.enqueue_many(requests)
    await _wait_idle(app.db.pool, phase, mark, progress)


async def _pipeline(app: App, options: DemoOptions, progress: Progress) -> None:
    assert app.db is not None and app.db.pool is not None and app.domain is not None
    pool = app.db.pool
    for cookie in COOKIES:
        await app.domain.resources.credentials.add(cookie)
    await _phase(app, "catalogue sync", [JobRequest("refresh_available_shows", {})], progress)
    shows = await pool.fetch("SELECT id FROM tv_shows ORDER BY id LIMIT $1", options.sample_shows)
    await _phase(
        app,
        "show refreshes",
        [JobRequest("refresh_single_show", {"show_id": r["id"]}) for r in shows],
        progress,
    )
    subtitles = await pool.fetch(
        "SELECT id FROM subtitles WHERE completed ORDER BY id LIMIT $1", options.sample_subtitles
    )
    await _phase(
        app,
        "downloads and stores",
        [JobRequest("download_subtitle", {"subtitle_id": r["id"]}) for r in subtitles],
        progress,
    )


async def run_demo(options: DemoOptions, out: TextIO = sys.stdout) -> int:
    state = options.state or Path(tempfile.mkdtemp(prefix="addicted-jobs-demo-"))
    if options.state is None and os.geteuid() == 0:
        # Ours, made 0700 by mkdtemp: under root the embedded database runs as another user,
        # which must be able to reach its directory inside.
        state.chmod(0o711)
    state.mkdir(parents=True, exist_ok=True)
    log_file = (state / "daemon.log").open("a", encoding="utf-8")
    logs.configure("info", "json", log_file)
    progress = Progress(out)
    started = time.monotonic()
    print(f"addicted-jobs demo: state in {state}, daemon log in {state / 'daemon.log'}", file=out)
    async with Sandbox(shows=options.shows, quota_per_cookie=10_000) as sandbox:
        app = App(demo_settings(state, sandbox))
        app_task = asyncio.create_task(app.run())
        ready = asyncio.create_task(app.ready.wait())
        await asyncio.wait([app_task, ready], return_when=asyncio.FIRST_COMPLETED)
        if app_task.done():
            print(f"the daemon did not start; see {state / 'daemon.log'}", file=out)
            return app_task.result() or 1
        print(
            f"sandbox upstream with {options.shows} shows at {sandbox.addic7ed_url}; daemon ready",
            file=out,
        )
        # Ctrl-C stops the daemon (its own signal handler); the pipeline then stops with it.
        pipeline = asyncio.create_task(_pipeline(app, options, progress))
        await asyncio.wait([pipeline, app_task], return_when=asyncio.FIRST_COMPLETED)
        interrupted = app.stopping
        stalled = False
        if interrupted:
            pipeline.cancel()  # its queries may already have failed on the closing pool
            await asyncio.gather(pipeline, return_exceptions=True)
        else:
            try:
                pipeline.result()  # a failure of the demo itself is shown, not swallowed
            except DemoStalled as exc:
                print(f"\ndemo stalled: {exc}", file=out)
                stalled = True
        if not interrupted and app.db is not None and app.db.pool is not None:
            summary = await _summary(app.db.pool, app, started)
            print("\nsummary", file=out)
            for key, value in summary.items():
                if isinstance(value, dict):
                    value = " ".join(f"{k}={v}" for k, v in sorted(value.items()))
                elif value is None:
                    value = "- (nothing stored)"
                print(f"  {key.replace('_', ' '):<18} {value}", file=out)
        app.request_stop()
        code = await app_task
    log_file.close()
    if options.state is None and not options.keep:
        shutil.rmtree(state, ignore_errors=True)
        print(f"deleted {state} and the daemon log in it (--keep keeps them)", file=out)
    if interrupted:
        print("\ndemo interrupted; the daemon stopped cleanly", file=out)
        return 130
    return 1 if stalled else code
