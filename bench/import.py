"""Import benchmark: `addicted-jobs import-addictedproxy` copying an original-schema database of
1,000,000 subtitles (2,000 shows x 5 seasons x 10 episodes x 10 subtitles, with their external
ids) from a local PostgreSQL database into a fresh daemon database, run as the command runs
(a child process, its peak RSS read from wait4). JSON lines.

    python bench/import.py [--subtitles 1000000] [--batch-size 50000] [--lanes 2] [--dsn DSN] [--keep]

Targets: at least 20,000 subtitles/s, under 200 MiB peak RSS (rows stream through in batches).
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE]
sys.path.insert(0, os.path.dirname(HERE))

import argparse
import asyncio
import json
import subprocess
import tempfile
import time
from pathlib import Path

import asyncpg

from addicted_jobs.db import apply_migrations
from tests.support.addictedproxy import create_original_schema, fill_bulk

SEASONS, EPISODES, SUBTITLES = 5, 10, 10  # per show, per season, per episode


def emit(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def with_database(dsn: str, name: str) -> str:
    base, _, query = dsn.partition("?")
    return f"{base.rpartition('/')[0]}/{name}" + (f"?{query}" if query else "")


async def prepare(admin_dsn: str, shows: int, source: str, target: str) -> None:
    admin = await asyncpg.connect(admin_dsn)
    try:
        for name in (source, target):
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    started = time.monotonic()
    conn = await asyncpg.connect(with_database(admin_dsn, source))
    try:
        await create_original_schema(conn)
        await fill_bulk(conn, shows, SEASONS, EPISODES, SUBTITLES)
        await conn.execute("VACUUM ANALYZE")
        counts = {
            t: await conn.fetchval(f'SELECT count(*) FROM "{t}"')
            for t in ("TvShows", "Seasons", "Episodes", "Subtitles")
        }
    finally:
        await conn.close()
    emit(event="source built", seconds=round(time.monotonic() - started, 1), **counts)
    conn = await asyncpg.connect(with_database(admin_dsn, target))
    try:
        await apply_migrations(conn)
    finally:
        await conn.close()


def run_import(
    admin_dsn: str, source: str, target: str, batch: int, lanes: int
) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.toml"
        config.write_text(
            f'[database]\ndsn = "{with_database(admin_dsn, target)}"\n'
            f'[state]\ndir = "{tmp}"\n[log]\nlevel = "warning"\n',
            encoding="utf-8",
        )
        cmd = [
            sys.executable,
            "-m",
            "addicted_jobs",
            "import-addictedproxy",
            "--config",
            str(config),
        ]
        cmd += ["--from", with_database(admin_dsn, source), "--batch-size", str(batch), "--json"]
        cmd += ["--lanes", str(lanes)]
        started = time.monotonic()
        proc = subprocess.Popen(
            cmd, cwd=os.path.dirname(HERE), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert proc.stdout is not None and proc.stderr is not None
        out, err = proc.stdout.read(), proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"import failed ({proc.returncode}): {err.decode()[-2000:]}")
    report: dict[str, object] = json.loads(out)
    report["wall_s"] = wall
    report["peak_rss_mib"] = usage.ru_maxrss / 1024  # kilobytes on Linux
    report["cpu_s"] = usage.ru_utime + usage.ru_stime
    return report


async def drop(admin_dsn: str, *names: str) -> None:
    admin = await asyncpg.connect(admin_dsn)
    try:
        for name in names:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subtitles", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=50_000)
    parser.add_argument("--lanes", type=int, default=2)
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--keep", action="store_true", help="keep both databases afterwards")
    args = parser.parse_args()
    shows = max(1, args.subtitles // (SEASONS * EPISODES * SUBTITLES))
    source, target = f"aj_bench_import_src_{os.getpid()}", f"aj_bench_import_dst_{os.getpid()}"
    asyncio.run(prepare(args.dsn, shows, source, target))
    try:
        report = run_import(args.dsn, source, target, args.batch_size, args.lanes)
        tables = {t["table"]: t for t in report["tables"]}  # type: ignore[attr-defined]
        for name, t in tables.items():
            emit(
                event="table",
                table=name,
                rows=t["copied"],
                seconds=round(t["seconds"], 2),
                rows_per_s=round(t["copied"] / t["seconds"]) if t["seconds"] else None,
            )
        subs = tables["Subtitles"]
        total_rows = sum(t["copied"] for t in tables.values())
        emit(
            event="import",
            subtitles=subs["copied"],
            subtitles_per_s=round(subs["copied"] / subs["seconds"]),
            subtitles_per_s_overall=round(subs["copied"] / report["wall_s"]),  # type: ignore[operator]
            rows=total_rows,
            rows_per_s=round(total_rows / report["wall_s"]),  # type: ignore[operator]
            wall_s=round(report["wall_s"], 1),  # type: ignore[call-overload]
            cpu_s=round(report["cpu_s"], 1),  # type: ignore[call-overload]
            peak_rss_mib=round(report["peak_rss_mib"], 1),  # type: ignore[call-overload]
            batch_size=args.batch_size,
            lanes=args.lanes,
        )
    finally:
        if not args.keep:
            asyncio.run(drop(args.dsn, source, target))


if __name__ == "__main__":
    main()
