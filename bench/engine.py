"""Engine benchmark: addicted-jobs and the peers (pgqueuer, procrastinate) through the same shared
harness, in one run, plus the daemon's peak RSS over 200,000 ready jobs. Prints JSON lines; the
last line compares medians as ratios (absolute figures drift with this shared machine's load).

    python bench/engine.py [--runs 1] [--no-peers] [--rss-jobs 200000] [--backlog-jobs 100000]
    python bench/engine.py --race [--rounds 3] [--only aj,pgq,gw]   # every peer: peers_race.py
    python bench/engine.py --no-peers --cluster --runs 2 --rss-jobs 0 --backlog-jobs 0
        # ours with [cluster] enabled (one node, two nodes) beside ours without

The "backlog after analyse" phase (bench/engine_backlog.py) drains a backlog on a never-analysed
table and after ANALYZE on an empty and on a full queue, and reports the two ratios to the first.

The peers run in their own virtualenv (.venv-peers, created on first use from PyPI), as installed
from wheels; the daemon runs as deployed, from a wheel of this tree in .venv-bench (compiled
bytecode, no development tools), not from the editable development install.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import peers_race  # this folder leads sys.path when run as `python bench/engine.py`

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS = ROOT.parent / "shared" / "bench" / "peers"
PEERS_VENV = ROOT / ".venv-peers"
BENCH_VENV = ROOT / ".venv-bench"
CLUSTER = "addicted-jobs c10 cluster"  # ours with [cluster] enabled, one node
CLUSTER2 = "addicted-jobs c10 cluster x2"  # two nodes with [cluster] enabled, c10 each
PEER_PACKAGES = ["pgqueuer[asyncpg]", "procrastinate", "psycopg[binary,pool]", "tqdm", "asyncpg"]


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


def peers_python() -> str:
    python = PEERS_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PEER_PACKAGES], check=True)
    return str(python)


def daemon_python() -> str:
    """A production install of this tree, rebuilt each run so it measures the current code."""
    python = BENCH_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", str(ROOT)], check=True)
    else:
        reinstall = ["install", "--quiet", "--no-deps", "--force-reinstall", str(ROOT)]
        subprocess.run([str(python), "-m", "pip", *reinstall], check=True)
    return str(python)


def run_peer(
    python: str, script: Path, args: list[str], env: dict[str, str] | None = None
) -> dict[str, Any]:
    started = time.monotonic()
    done = subprocess.run(
        [python, str(script), *args],
        cwd=PEERS,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=900,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"error": f"{script.name} exited {done.returncode}", "stderr": done.stderr[-2000:]}
    result: dict[str, Any] = json.loads(lines[-1])
    result["bench_wall_s"] = round(time.monotonic() - started, 1)
    return result


def headline(result: dict[str, Any]) -> dict[str, Any]:
    drain = result.get("drain", {})
    latency = result.get("latency", {})
    return {
        "peer": result.get("peer"),
        "variant": result.get("variant"),
        "bulk_jobs_per_s": result.get("bulk_enqueue", {}).get("jobs_per_s"),
        "drain_jobs_per_s": drain.get("jobs_per_s"),
        "drain_steady_jobs_per_s": drain.get("jobs_per_s_db_span"),
        "worker_cpu_ms_per_job": drain.get("worker_cpu_ms_per_job"),
        "pg_cpu_ms_per_job": drain.get("pg_cpu_ms_per_job"),
        "xacts_per_job": drain.get("xacts_per_job"),
        "drain_peak_rss_mib": drain.get("worker", {}).get("peak_rss_mib"),
        "latency_p50_ms": latency.get("p50_ms"),
        "latency_p95_ms": latency.get("p95_ms"),
        "latency_p99_ms": latency.get("p99_ms"),
        "error": result.get("error"),
    }


async def rss_over_ready_jobs(jobs: int, daemon: str) -> dict[str, Any]:
    """Peak RSS of the daemon started on `jobs` ready noop jobs and left to drain them all."""
    sys.path[:0] = [str(PEERS), str(ROOT)]
    import asyncpg
    import common

    from addicted_jobs import logs
    from addicted_jobs.db import _init_connection, apply_migrations
    from addicted_jobs.jobs import store
    from addicted_jobs.jobs.store import NewJob

    logs.configure("warning", "json", sys.stderr)  # stdout carries only the JSON result lines
    db = await common.create_db("ajrss")
    try:
        conn = await asyncpg.connect(common.dsn(db))
        await _init_connection(conn)
        await apply_migrations(conn)
        for start in range(0, jobs, 20_000):
            await store.enqueue(
                conn, [NewJob("noop", "default", {}, 1)] * min(20_000, jobs - start)
            )
        await conn.execute("ANALYZE jobs.jobs")
        env = {k: v for k, v in os.environ.items() if not k.startswith("ADDICTED_JOBS_")}
        env.update(
            {
                "ADDICTED_JOBS_DATABASE__DSN": common.dsn(db),
                "ADDICTED_JOBS_STATE__DIR": f"/tmp/aj-rss-{os.getpid()}",
                "ADDICTED_JOBS_LOG__FORMAT": "json",
            }
        )
        started = time.monotonic()
        with open(os.devnull, "w") as devnull:
            proc = subprocess.Popen(
                [daemon, "-m", "addicted_jobs", "run"], env=env, stdout=devnull, stderr=devnull
            )
        while await conn.fetchval("SELECT count(*) FROM jobs.jobs WHERE state <> 'succeeded'"):
            await asyncio.sleep(0.5)
        drained = time.monotonic() - started
        proc.terminate()
        _, status, usage = os.wait4(proc.pid, 0)
        await conn.close()
        return {
            "phase": "rss_ready_jobs",
            "ready_jobs_at_start": jobs,
            "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
            "drain_s": round(drained, 1),
            "jobs_per_s": round(jobs / drained, 1),
            "exit_status": os.waitstatus_to_exitcode(status),
        }
    finally:
        await common.drop_db(db)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--runs", type=int, default=1, help="interleaved rounds (medians are reported)"
    )
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--rss-jobs", type=int, default=200_000, help="0 skips the RSS phase")
    parser.add_argument(
        "--backlog-jobs", type=int, default=100_000, help="0 skips the backlog-after-analyse phase"
    )
    parser.add_argument("--phases", default="bulk,drain,latency")
    parser.add_argument(
        "--no-warmup", dest="warmup", action="store_false", help="skip the discarded first run"
    )
    parser.add_argument("--race", action="store_true", help="every peer: bench/peers_race.py")
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="also ours with [cluster] enabled, one node and two nodes (c10 each): the cost of "
        "clustering and what a second node adds (issue 19)",
    )
    peers_race.add_arguments(parser.add_argument_group("race (with --race)"))
    args = parser.parse_args()
    if not PEERS.is_dir():
        emit({"error": f"{PEERS} is absent: the shared harness is needed for comparable figures"})
        sys.exit(2)
    daemon = daemon_python()
    os.environ["AJ_BENCH_DAEMON_PYTHON"] = daemon  # engine_peer.py spawns this one
    if args.race:
        peers_race.race(args)
        return

    contenders: list[tuple[str, str, Path, list[str]]] = [
        ("addicted-jobs c10", sys.executable, HERE / "engine_peer.py", ["--phases", args.phases])
    ]
    if args.cluster:
        for name in (CLUSTER, CLUSTER2):
            contenders.append(
                (name, sys.executable, HERE / "engine_peer.py", ["--phases", args.phases])
            )
    if not args.no_peers:
        python = peers_python()
        contenders += [
            (
                "pgqueuer c10",
                python,
                PEERS / "pgq_bench.py",
                ["--variant", "c10", "--phases", args.phases],
            ),
            (
                "pgqueuer defaults",
                python,
                PEERS / "pgq_bench.py",
                ["--variant", "defaults", "--phases", args.phases],
            ),
            (
                "procrastinate c10",
                python,
                PEERS / "procr_bench.py",
                ["--variant", "c10", "--phases", args.phases],
            ),
        ]
    results: dict[str, list[dict[str, Any]]] = {name: [] for name, *_ in contenders}
    if args.warmup:
        # The reinstall just before leaves the machine busy for a while (page cache, writeback):
        # one discarded run, so that does not land on whichever contender happens to go first.
        warm = run_peer(sys.executable, HERE / "engine_peer.py", ["--phases", "bulk,drain"])
        emit({"warmup": True, "contender": "addicted-jobs c10", **headline(warm)})
    for round_no in range(args.runs):
        for name, python, script, extra in contenders:
            env = {
                CLUSTER: {"ADDICTED_JOBS_CLUSTER__ENABLED": "true"},
                CLUSTER2: {"AJ_BENCH_NODES": "2"},
            }.get(name)
            result = run_peer(python, script, extra, env)
            line = {"round": round_no + 1, "contender": name, **headline(result)}
            emit(line)
            results[name].append(line)
    if args.rss_jobs:
        emit(asyncio.run(rss_over_ready_jobs(args.rss_jobs, daemon)))
    if args.backlog_jobs:
        from engine_backlog import backlog_after_analyse

        emit(asyncio.run(backlog_after_analyse(daemon, args.backlog_jobs, 20_000)))

    def median(name: str, key: str) -> float | None:
        values = [r[key] for r in results.get(name, []) if r.get(key) is not None]
        return statistics.median(values) if values else None

    ours = "addicted-jobs c10"
    summary: dict[str, Any] = {
        "summary": True,
        "date": time.strftime("%Y-%m-%d"),
        "runs": args.runs,
    }
    for key in ("drain_jobs_per_s", "bulk_jobs_per_s", "latency_p50_ms", "latency_p99_ms"):
        summary[key] = {name: median(name, key) for name in results}
    for peer in results:
        if peer == ours:
            continue
        a, b = median(ours, "drain_jobs_per_s"), median(peer, "drain_jobs_per_s")
        summary[f"drain_ratio_vs_{peer.replace(' ', '_')}"] = round(a / b, 2) if a and b else None
        # Round by round too: the ratio of medians hides how much one noisy round moved.
        summary[f"drain_ratio_by_round_vs_{peer.replace(' ', '_')}"] = [
            round(x["drain_jobs_per_s"] / y["drain_jobs_per_s"], 2)
            if x.get("drain_jobs_per_s") and y.get("drain_jobs_per_s")
            else None
            for x, y in zip(results[ours], results[peer], strict=False)
        ]
    emit(summary)


if __name__ == "__main__":
    main()
