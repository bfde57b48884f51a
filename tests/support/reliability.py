"""Rig of the reliability suite: daemon configs pointed at the sandbox, a driver whose blocking calls
run in threads (the in-process sandbox keeps answering), job-table probes and catalogue checks.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import subprocess
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from addicted_jobs.control.client import ControlClient
from addicted_jobs.embedded_pg import ROOT_FALLBACK_USER, SERVER_OPTIONS, _bin_dir
from addicted_jobs.sandbox import Sandbox
from addicted_jobs.sandbox.data import Catalogue
from tests.plugins.daemon import DaemonProcess
from tests.plugins.s3 import S3_ACCESS_KEY_ID, S3_REGION, S3_SECRET_ACCESS_KEY, MotoServer
from tests.support import wait_until

ROOT = Path(__file__).resolve().parents[2]
SIDE_JOBS = "tests.support.side_jobs"
UNFINISHED = ("awaiting", "scheduled", "ready", "running")
DAEMON_COOKIE = "demo-1=x"
CHECK_COOKIE = "reliability-check=1"  # the test's own downloads must not spend the daemon's quota
# The default schedule, off: a test decides what runs.
RECURRING = ("refresh_available_shows", "redeem_download_credentials")
RECURRING += ("check_completed_tmdb_not_completed", "check_completed_tmdb_completed")


def config(
    dsn: str, box: Sandbox | None = None, *, scale: float = 0.02, **sections: dict[str, Any]
) -> dict[str, Any]:
    """A daemon config: no cron, fast retries, the suite's job types, the sandbox upstream."""
    conf: dict[str, Any] = {
        "database": {"dsn": dsn},
        "engine": {"retry_delay_scale": scale, "job_modules": [SIDE_JOBS]},
        "recurring": {name: {"enabled": False} for name in RECURRING},
        "storage": {"train_after": 0},
    }
    if box is not None:
        # Seconds, not the production minutes, so that retries and the breaker act within a test.
        fast = {"retries": 1, "retry_base_s": 0.05, "retry_max_s": 0.2, "attempt_timeout_s": 10.0}
        fast |= {"breaker_min_calls": 20, "breaker_open_s": 1.0}
        conf["addic7ed"] = {"base_url": box.addic7ed_url, "requests_per_second": 0, **fast}
        conf["tmdb"] = {"base_url": box.tmdb_url, "api_key": box.tmdb_api_key, **fast}
    for section, values in sections.items():
        conf.setdefault(section, {}).update(values)
    return conf


def s3_storage(server: MotoServer) -> dict[str, Any]:
    """`[storage]` on a fresh bucket of a (restartable) moto server."""
    keys = {"access_key_id": S3_ACCESS_KEY_ID, "secret_access_key": S3_SECRET_ACCESS_KEY}
    bucket = {"endpoint_url": server.endpoint_url, "bucket": server.create_bucket()}
    return {"backend": "s3", "s3": {**bucket, "region": S3_REGION, **keys}}


def launch(factory: Callable[..., DaemonProcess], name: str, conf: dict[str, Any]) -> Driver:
    # PYTHONPATH: the daemon imports the suite's own job types from this checkout.
    return Driver(factory(name, conf, env={"PYTHONPATH": str(ROOT)}))


@dataclass
class Driver:
    """Async face of a DaemonProcess: its blocking waits and CLI runs go to a worker thread."""

    proc: DaemonProcess

    async def start(self, timeout: float = 60.0) -> None:
        await asyncio.to_thread(lambda: self.proc.start().wait_ready(timeout))

    async def kill(self) -> None:
        await asyncio.to_thread(self.proc.kill)

    async def stop(self) -> int:
        return await asyncio.to_thread(self.proc.stop)

    def alive(self) -> bool:
        return self.proc.proc is not None and self.proc.proc.poll() is None

    async def cli(self, *args: str) -> str:
        done = await asyncio.to_thread(self.proc.cli, *args)
        assert done.returncode == 0, f"`{' '.join(args)}` exited {done.returncode}: {done.stderr}"
        return done.stdout

    async def call(self, op: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        """One control-socket request, for what would take hundreds of CLI runs."""
        async with ControlClient(self.proc.socket_path, timeout=30) as client:
            return await client.call(op, args)

    async def enqueue(self, name: str, many: Iterable[dict[str, Any]]) -> list[int]:
        jobs = [{"name": name, "args": args} for args in many]
        result = await self.call("enqueue", {"jobs": jobs})
        return [r["id"] for r in result["results"]]

    async def wait_log(self, event: str, timeout: float = 30.0, **fields: Any) -> dict[str, Any]:
        return await asyncio.to_thread(self.proc.wait_for_log, event, timeout, **fields)

    async def add_credential(self) -> None:
        await self.cli("credentials", "add", DAEMON_COOKIE)

    def _storage_get(self, subtitle_id: int, into: Path) -> bytes:
        target = into / f"{subtitle_id}.srt"
        done = self.proc.cli("storage", "get", str(subtitle_id), "-o", str(target))
        assert done.returncode == 0, f"storage get {subtitle_id}: {done.stderr}"
        return target.read_bytes()

    async def read_back(self, subtitle_ids: Iterable[int], into: Path) -> dict[int, bytes]:
        """Every subtitle through `storage get ID -o FILE`, a few CLI processes at a time."""
        await asyncio.to_thread(into.mkdir, parents=True, exist_ok=True)
        slots = asyncio.Semaphore(4)

        async def one(subtitle_id: int) -> tuple[int, bytes]:
            async with slots:
                return subtitle_id, await asyncio.to_thread(self._storage_get, subtitle_id, into)

        return dict(await asyncio.gather(*(one(i) for i in subtitle_ids)))


# ---- the job table ----------------------------------------------------------------------------


async def job_states(pool: asyncpg.Pool, name: str | None = None) -> Counter[str]:
    rows = await pool.fetch(
        """SELECT state, count(*) AS n FROM jobs.jobs
           WHERE $1::text IS NULL OR name = $1 GROUP BY state""",
        name,
    )
    return Counter({r["state"]: r["n"] for r in rows})


async def settled(pool: asyncpg.Pool, timeout: float, message: str) -> Counter[str]:
    """Wait until no job is waiting, scheduled, ready or running; the states of all jobs."""

    async def probe() -> Counter[str] | None:
        states = await job_states(pool)
        return None if any(states[s] for s in UNFINISHED) else states

    return await wait_until(probe, timeout=timeout, interval=0.2, message=message)


async def bad_jobs(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        """SELECT id, name, state, attempt, left(last_error, 300) AS error FROM jobs.jobs
           WHERE state IN ('failed', 'deleted') ORDER BY id"""
    )
    return [dict(r) for r in rows]


async def at_least(probe: Callable[[], Awaitable[int]], n: int) -> bool:
    return await probe() >= n


# ---- the catalogue ----------------------------------------------------------------------------


def grow(box: Sandbox, shows: int) -> None:
    """Addic7ed adds shows: the first ones keep their ids, names and seasons (all derived)."""
    box.catalogue = Catalogue(shows, box.seed)


def expected_show(box: Sandbox, addic7ed_id: int) -> tuple[int, int, int]:
    """(seasons, episodes, subtitles) Addic7ed lists for one show, from the sandbox's catalogue."""
    seasons = box.catalogue.seasons(addic7ed_id)
    episodes = [e for s in seasons for e in box.catalogue.episodes(addic7ed_id, s) or ()]
    return len(seasons), len(episodes), sum(len(e.subtitles) for e in episodes)


async def show_counts(
    pool: asyncpg.Pool, show_ids: Iterable[int]
) -> dict[int, tuple[int, int, int]]:
    rows = await pool.fetch(
        """SELECT t.id,
                  (SELECT count(*) FROM seasons WHERE tv_show_id = t.id) AS seasons,
                  (SELECT count(*) FROM episodes WHERE tv_show_id = t.id) AS episodes,
                  (SELECT count(*) FROM subtitles s JOIN episodes e ON e.id = s.episode_id
                    WHERE e.tv_show_id = t.id) AS subtitles
           FROM tv_shows t WHERE t.id = ANY($1::bigint[])""",
        list(show_ids),
    )
    return {r["id"]: (r["seasons"], r["episodes"], r["subtitles"]) for r in rows}


async def addic7ed_ids(pool: asyncpg.Pool) -> dict[int, int]:
    """Catalogue show id -> Addic7ed (sandbox) show id."""
    rows = await pool.fetch(
        "SELECT tv_show_id, external_id FROM show_external_ids WHERE source = 0"
    )
    return {r["tv_show_id"]: int(r["external_id"]) for r in rows}


async def table_sizes(pool: asyncpg.Pool) -> dict[str, int]:
    tables = "tv_shows seasons episodes subtitles show_external_ids episode_external_ids".split()
    return {t: int(await pool.fetchval(f"SELECT count(*) FROM {t}")) for t in tables}


async def age_catalogue(pool: asyncpg.Pool) -> None:
    """Make every season list and season due again, so a refresh fetches everything anew."""
    await pool.execute("UPDATE tv_shows SET last_season_refreshed = NULL")
    await pool.execute("UPDATE seasons SET last_refreshed = NULL")


async def downloadable(pool: asyncpg.Pool, box: Sandbox, limit: int) -> list[int]:
    """Completed subtitles still on Addic7ed (a deleted one would leave the catalogue)."""
    rows = await pool.fetch("SELECT id, download_uri FROM subtitles WHERE completed ORDER BY id")
    picked = []
    for row in rows:
        found = box.catalogue.subtitle_by_href(row["download_uri"])
        if found is not None and not found[1].deleted:
            picked.append(row["id"])
    return picked[:limit]


async def stored_paths(pool: asyncpg.Pool) -> dict[int, str]:
    rows = await pool.fetch("SELECT id, storage_path FROM subtitles WHERE storage_path IS NOT NULL")
    return {r["id"]: r["storage_path"] for r in rows}


async def upstream_files(box: Sandbox, pool: asyncpg.Pool, ids: Iterable[int]) -> dict[int, bytes]:
    """What Addic7ed (the sandbox) serves for each subtitle's download URI, over HTTP."""
    rows = await pool.fetch(
        "SELECT id, download_uri FROM subtitles WHERE id = ANY($1::bigint[])", list(ids)
    )
    files = {}
    async with httpx.AsyncClient(base_url=box.addic7ed_url, timeout=10) as client:
        for row in rows:
            response = await client.get(row["download_uri"], headers={"Cookie": CHECK_COOKIE})
            assert response.status_code == 200, (row["download_uri"], response.status_code)
            files[row["id"]] = response.content
    return files


class Deadline:
    """An explicit time budget for one phase of a scenario."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return max(0.0, self.end - time.monotonic())


# ---- the embedded PostgreSQL --------------------------------------------------------------------


def embedded_socket_dir(state_dir: Path) -> Path:
    """Where the daemon's embedded server listens: line 5 of its postmaster.pid."""
    return Path((state_dir / "postgres" / "data" / "postmaster.pid").read_text().splitlines()[4])


async def embedded_states(socket_dir: Path) -> Counter[str] | None:
    """Jobs by state, read from the embedded server on a fresh connection; None while it is down."""
    dsn = f"postgresql://postgres@/postgres?host={socket_dir}"
    try:
        conn = await asyncpg.connect(dsn, timeout=5)
    except (OSError, asyncpg.PostgresError):
        return None
    try:
        rows = await conn.fetch("SELECT state, count(*) AS n FROM jobs.jobs GROUP BY state")
    finally:
        await conn.close()
    return Counter({r["state"]: r["n"] for r in rows})


def _pg_ctl(state_dir: Path, *args: str, check: bool = True) -> None:
    """The embedded server's own pg_ctl, run as the user the server runs as."""
    root = state_dir / "postgres"
    owner: dict[str, Any] = {}
    if os.geteuid() == 0:  # as root the server runs as its fallback user, and so must pg_ctl
        user = pwd.getpwnam(ROOT_FALLBACK_USER)
        owner = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    command = [str(_bin_dir() / "pg_ctl"), "-D", str(root / "data"), "-l", str(root / "server.log")]
    subprocess.run(
        [*command, *args], check=check, capture_output=True, timeout=90, cwd="/", **owner
    )


def restart_embedded_postgres(state_dir: Path) -> None:
    """`pg_ctl restart -m fast` under the daemon, on the same socket directory."""
    socket_dir = embedded_socket_dir(state_dir)
    _pg_ctl(
        state_dir,
        "-m",
        "fast",
        "-w",
        "-t",
        "60",
        "-o",
        f"{SERVER_OPTIONS} -k {socket_dir}",
        "restart",
    )


def stop_embedded_postgres(state_dir: Path) -> None:
    """Leave no server behind if the daemon died while the test had restarted it."""
    if (state_dir / "postgres" / "data" / "postmaster.pid").exists():
        _pg_ctl(state_dir, "-m", "immediate", "-w", "-t", "60", "stop", check=False)
