"""Hostile upstream benchmark: the real daemon (a subprocess, on a fresh database) pointed at an
upstream on loopback that serves a 1 GiB gzip bomb, an endless chunked body, 500 MB pages and
subtitle files and a 60,000-show list. Throughout, the daemon's RSS is sampled every 20 ms and
`ping` is sent every 50 ms. One JSON line per phase (the first a well-formed page: the first
upstream request's one-time costs), then a summary.

    python bench/hostile_upstream.py

Targets: the daemon's peak RSS under 200 MiB; every `ping` answered within 200 ms.
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import asyncio
import json
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import tomli_w

from addicted_jobs.control.client import ControlClient, Unreachable

ROOT = Path(HERE).parent
RSS_TARGET_MIB = 200
PING_TARGET_MS = 200
PAGE_MODES = ("ok", "bomb", "endless", "huge", "huge-chunked", "many-shows")
FILE_MODES = ("bomb", "endless", "huge", "huge-chunked")
OFF = ("refresh_available_shows", "redeem_download_credentials")
OFF += ("check_completed_tmdb_not_completed", "check_completed_tmdb_completed")


def admin_dsn() -> str:
    return os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def with_db(dsn: str, name: str) -> str:
    base, _, query = dsn.partition("?")
    return base.rpartition("/")[0] + f"/{name}" + (f"?{query}" if query else "")


def emit(**fields: Any) -> None:
    print(json.dumps({"bench": "hostile_upstream", **fields}), flush=True)


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class Watch:
    """RSS samples and ping latencies, kept per phase."""

    def __init__(self, pid: int, sock: Path) -> None:
        self.pid, self.sock = pid, sock
        self.rss: list[int] = []
        self.pings: list[float] = []
        self.ping_failures = 0

    def reset(self) -> None:
        self.rss, self.pings, self.ping_failures = [], [], 0

    async def sample_rss(self) -> None:
        while True:
            self.rss.append(rss_kib(self.pid))
            await asyncio.sleep(0.02)

    async def ping(self) -> None:
        async with ControlClient(self.sock, timeout=30) as client:
            while True:
                started = time.perf_counter()
                try:
                    await client.call("ping")
                    self.pings.append(time.perf_counter() - started)
                except Unreachable:
                    self.ping_failures += 1
                await asyncio.sleep(0.05)

    def report(self) -> dict[str, Any]:
        pings = sorted(self.pings) or [0.0]
        return {
            "peak_rss_mib": round(max(self.rss or [0]) / 1024, 1),
            "ping_max_ms": round(pings[-1] * 1000, 1),
            "ping_p50_ms": round(pings[len(pings) // 2] * 1000, 1),
            "pings": len(self.pings),
            "ping_failures": self.ping_failures,
        }


async def run_job(sock: Path, name: str, args: dict[str, Any]) -> dict[str, Any]:
    """Enqueue, wait for its first attempt to end, cancel a retry; the job's row."""
    async with ControlClient(sock, timeout=30) as client:
        job_id = (await client.call("enqueue", {"name": name, "args": args}))["id"]
        while True:
            row = await client.call("job", {"id": job_id})
            if row["state"] not in ("ready", "running") and row["attempt"] >= 1:
                break
            await asyncio.sleep(0.05)
        if row["state"] == "scheduled":
            await client.call("cancel", {"id": job_id})
        return row


async def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="aj-hostile-"))
    hostile = subprocess.Popen(
        [sys.executable, "-m", "tests.plugins.hostile"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert hostile.stdout is not None
    port = int(hostile.stdout.readline().split()[1])
    base = f"http://127.0.0.1:{port}/"
    db = f"aj_bench_hostile_{os.getpid()}"
    admin = await asyncpg.connect(admin_dsn())
    await admin.execute(f'CREATE DATABASE "{db}"')
    daemon: subprocess.Popen[bytes] | None = None
    try:
        sock = work / "control.sock"
        config = {
            "state": {"dir": str(work / "state")},
            "control": {"socket": str(sock)},
            "log": {"format": "json", "level": "info"},
            "database": {"dsn": with_db(admin_dsn(), db)},
            "addic7ed": {"base_url": base, "requests_per_second": 0, "retries": 0},
            "recurring": {name: {"enabled": False} for name in OFF},
            "storage": {"train_after": 0},
        }
        (work / "config.toml").write_bytes(tomli_w.dumps(config).encode())
        with (work / "daemon.log").open("wb") as log:
            daemon = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "addicted_jobs",
                    "run",
                    "--config",
                    str(work / "config.toml"),
                ],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while True:
            try:
                async with ControlClient(sock, timeout=5) as client:
                    await client.call("ping")
                    await client.call("credentials-add", {"cookie": "bench=1"})
                break
            except (Unreachable, OSError):
                if time.monotonic() > deadline or daemon.poll() is not None:
                    raise SystemExit(f"the daemon did not start; see {work}/daemon.log") from None
                await asyncio.sleep(0.2)
        pool = await asyncpg.connect(with_db(admin_dsn(), db))
        show = await pool.fetchval("INSERT INTO tv_shows (name) VALUES ('Hostile') RETURNING id")
        episode = await pool.fetchval(
            "INSERT INTO episodes (tv_show_id, season, number, title) VALUES ($1, 1, 1, 'P') "
            "RETURNING id",
            show,
        )
        subtitle = await pool.fetchval(
            """INSERT INTO subtitles (episode_id, scene, version, completed, completion_pct,
                   hearing_impaired, corrected, download_uri, language)
               VALUES ($1, 'X', 0, true, 100, false, false, '/updated/1/1/0', 'English')
               RETURNING id""",
            episode,
        )
        await pool.close()
        watch = Watch(daemon.pid, sock)
        tasks = [asyncio.create_task(watch.sample_rss()), asyncio.create_task(watch.ping())]
        await asyncio.sleep(1.0)
        emit(phase="idle", **watch.report())
        phases = [("page", m, "refresh_available_shows", {}) for m in PAGE_MODES]
        phases += [("file", m, "download_subtitle", {"subtitle_id": subtitle}) for m in FILE_MODES]
        summary = {"peak_rss_mib": 0.0, "ping_max_ms": 0.0, "ping_failures": 0}
        async with httpx.AsyncClient() as http:
            for kind, mode, job, args in phases:
                (await http.post(f"{base}_mode/{mode}")).raise_for_status()
                watch.reset()
                started = time.monotonic()
                row = await run_job(sock, job, args)
                await asyncio.sleep(0.3)  # a few more samples after the refusal
                report = watch.report()
                error = (row.get("last_error") or "").splitlines()[:1]
                emit(
                    phase=kind,
                    mode=mode,
                    job=job,
                    state=row["state"],
                    error=error[0][:160] if error else None,
                    seconds=round(time.monotonic() - started, 2),
                    **report,
                )
                for key in summary:
                    summary[key] = max(summary[key], report[key])
        for task in tasks:
            task.cancel()
        emit(
            phase="summary",
            **summary,
            peak_rss_hwm_mib=round(rss_kib(daemon.pid, "VmHWM") / 1024, 1),
            rss_target_met=summary["peak_rss_mib"] < RSS_TARGET_MIB,
            ping_target_met=summary["ping_max_ms"] < PING_TARGET_MS
            and not summary["ping_failures"],
        )
        return 0
    finally:
        if daemon is not None and daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(60)
        hostile.kill()
        hostile.wait()
        await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        await admin.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
