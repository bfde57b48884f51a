"""Issue 20, "Scale and time / Backlog": 1,000,000 ready jobs drained with 10,000,000 finished jobs
retained in the table, against a 20,000-job drain on an empty table in the same run. Prints JSON
lines: one per drain, then a summary with the ratio (target: at least 0.80), the daemon's RSS over
the drain (target: flat), and the index entries read per job (the claim's rows read per job
returned, from pg_stat_user_tables / pg_stat_user_indexes).

    python bench/backlog_million.py [--ready 1000000] [--finished 10000000] [--small 20000]
                                    [--daemon-python PATH]

The finished rows and the backlog are written with one INSERT ... SELECT each, then a CHECKPOINT
(set-up, not what is measured); the daemon starts on the full table with stock autovacuum and no
ANALYZE by hand, as after a bulk import. The drain rate is jobs / (last finished_at - first started_at) of the drained
jobs, read from the table, so start-up is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent.parent / "shared" / "bench" / "peers"), str(HERE.parent)]

import asyncpg
import common
from engine_backlog import Daemon, emit, wait_for

# Finished rows as the engine leaves them: succeeded an hour ago (inside the 7-day retention, so
# the pruner keeps them), no unique key. Written in slices so one statement's WAL stays modest.
_FINISHED = """
INSERT INTO jobs.jobs (name, queue, args, state, attempt, max_attempts, run_at, created_at,
                       started_at, finished_at)
SELECT 'noop', 'default', '{}'::jsonb, 'succeeded', 1, 1, t, t, t, t + interval '1 ms'
FROM (SELECT now() - interval '1 hour' - make_interval(secs => g / 1000.0) AS t
      FROM generate_series($1::bigint, $2::bigint) g) s
"""
_READY = """
INSERT INTO jobs.jobs (name, queue, args, state, max_attempts)
SELECT 'noop', 'default', '{}'::jsonb, 'ready', 1 FROM generate_series(1, $1::bigint)
"""
_READS = """
SELECT (SELECT coalesce(sum(idx_tup_read), 0) FROM pg_stat_user_indexes
         WHERE schemaname = 'jobs' AND relname = 'jobs')::float8 AS index_entries,
       (SELECT coalesce(seq_tup_read, 0) FROM pg_stat_user_tables
         WHERE schemaname = 'jobs' AND relname = 'jobs')::float8 AS seq_rows,
       (SELECT coalesce(idx_tup_read, 0) FROM pg_stat_user_indexes
         WHERE schemaname = 'jobs' AND indexrelname = 'jobs_claim_by_name')::float8 AS claim_index
"""


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


async def drain(python: str, ready: int, finished: int) -> dict[str, Any]:
    db = await common.create_db("ajmillion")
    daemon = Daemon(python, db)
    try:
        daemon.start()  # applies its own schema migrations
        conn = await asyncpg.connect(common.dsn(db))
        await wait_for(conn, "SELECT to_regclass('jobs.recurring') IS NOT NULL", 120)
        daemon.stop()
        started = time.monotonic()
        for low in range(1, finished + 1, 1_000_000):
            await conn.execute(_FINISHED, low, min(low + 999_999, finished), timeout=3600)
        await conn.execute(_READY, ready, timeout=3600)
        # The set-up's rows leave up to a few GB of dirty buffers and WAL behind: without a
        # checkpoint here, the one they call for lands inside the measured drain or not, by timing
        # (three runs in a row gave ratios of 0.69, 0.97 and 0.93). Checkpoints that the drain's
        # own writes call for are still measured.
        await conn.execute("CHECKPOINT", timeout=3600)
        setup_s = time.monotonic() - started
        first_id = await conn.fetchval("SELECT max(id) FROM jobs.jobs") - ready + 1
        before = dict(await conn.fetchrow(_READS))
        daemon.start()
        assert daemon.proc is not None
        samples: list[tuple[float, float]] = []
        t0 = time.monotonic()
        while not await _drained(conn, first_id):
            rss = rss_mib(daemon.proc.pid)
            if rss is not None:
                samples.append((round(time.monotonic() - t0, 1), round(rss, 1)))
            await asyncio.sleep(1.0)
        await asyncio.sleep(1.5)  # backends flush their statistics at most once a second
        after = dict(await conn.fetchrow(_READS))
        span = await conn.fetchval(
            "SELECT extract(epoch FROM max(finished_at) - min(started_at))::float8"
            " FROM jobs.jobs WHERE id >= $1",
            first_id,
        )
        await conn.close()
        # Flat RSS: the peak of the second tenth of the drain (start-up and the first claims are
        # over) against the peak of the last tenth.
        tenth = max(len(samples) // 10, 1)
        rss_first = max((r for _, r in samples[tenth : 2 * tenth]), default=None)
        rss_last = max((r for _, r in samples[-tenth:]), default=None)
        return {
            "phase": "backlog_million",
            "ready": ready,
            "finished_retained": finished,
            "setup_s": round(setup_s, 1),
            "drain_s": round(span, 2),
            "jobs_per_s": round(ready / span, 1),
            "index_entries_read_per_job": round(
                (after["index_entries"] - before["index_entries"]) / ready, 2
            ),
            "claim_index_entries_read_per_job": round(
                (after["claim_index"] - before["claim_index"]) / ready, 2
            ),
            "seq_rows_read_per_job": round((after["seq_rows"] - before["seq_rows"]) / ready, 2),
            "rss_mib_first_tenth_peak": rss_first,
            "rss_mib_last_tenth_peak": rss_last,
            "rss_mib_samples": samples[:: max(len(samples) // 20, 1)],
        }
    finally:
        daemon.stop()
        await common.drop_db(db)


async def _drained(conn: asyncpg.Connection, first_id: int) -> bool:
    """Nothing ready, scheduled or running is left. Shaped to match the engine's partial indexes
    (jobs_claim, jobs_running), so polling reads a few index entries, not the table: the reads
    per job reported are the daemon's."""
    done: bool = await conn.fetchval(
        "SELECT NOT EXISTS (SELECT 1 FROM jobs.jobs WHERE queue = 'default'"
        "                   AND state IN ('ready', 'scheduled'))"
        " AND NOT EXISTS (SELECT 1 FROM jobs.jobs WHERE queue = 'default' AND state = 'running')"
    )
    return done


async def main_async(args: argparse.Namespace) -> None:
    small = await drain(args.daemon_python, args.small, 0)
    emit({**small, "variant": "small_empty_table"})
    big = await drain(args.daemon_python, args.ready, args.finished)
    emit({**big, "variant": "backlog_with_finished"})
    emit(
        {
            "phase": "backlog_million",
            "summary": True,
            "date": time.strftime("%Y-%m-%d"),
            "ratio_to_small": round(big["jobs_per_s"] / small["jobs_per_s"], 2),
            "target_ratio": 0.8,
            "rss_growth_mib": (
                round(big["rss_mib_last_tenth_peak"] - big["rss_mib_first_tenth_peak"], 1)
                if big["rss_mib_last_tenth_peak"] and big["rss_mib_first_tenth_peak"]
                else None
            ),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ready", type=int, default=1_000_000)
    parser.add_argument("--finished", type=int, default=10_000_000)
    parser.add_argument("--small", type=int, default=20_000)
    parser.add_argument("--daemon-python", default=sys.executable)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
