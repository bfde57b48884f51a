"""The race: addicted-jobs and every peer of the shared harness (../shared/bench/peers: pgqueuer,
procrastinate, oban, chancy, graphile-worker with and without its batched mode), in one run,
interleaved, several rounds. Each contender runs the harness's phases (bulk, single, drain,
latency) through its own script and interpreter; one JSON line per contender and round, then one
line of medians and ratios, and the issue's targets checked against every peer.

    python bench/peers_race.py [--rounds 3] [--only aj,pgq,gw] [--n 20000] [--setup-only]
    python bench/engine.py --race [same options]

The peers are installed as their README says (pinned versions, one virtualenv per Python peer,
graphile-worker with npm) under this checkout, outside git: .venv-peers (pgqueuer, procrastinate
and the graphile-worker driver), .venv-peers-oban (needs a python3.12 on PATH; skipped without
one), .venv-peers-chancy, .peers-gw/node_modules. Through engine.py, addicted-jobs runs from a
wheel install (.venv-bench), as deployed; run alone, this measures the development install.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS = ROOT.parent / "shared" / "bench" / "peers"
GW_DIR = ROOT / ".peers-gw"
# Versions of the 2026-11-30 batch of the peers' RESULTS.md (their README's set-up section).
BASE = ["pgqueuer[asyncpg]==1.6.0", "procrastinate==3.10.0", "psycopg[binary,pool]==3.3.9"]
BASE += ["psycopg-pool==3.3.3", "asyncpg==0.32.0", "uvloop==0.23.0", "tqdm"]
VENVS: dict[str, tuple[str, list[str]]] = {
    "base": ("python3.11", BASE),
    "oban": ("python3.12", ["oban==0.7.0", "asyncpg==0.32.0", "psycopg[binary,pool]==3.3.9", "psycopg-pool==3.3.3", "uvloop==0.23.0"]),
    "chancy": ("python3.11", ["chancy[cli]==0.26.0", "psycopg[binary,pool]==3.3.9", "asyncpg==0.32.0"]),
}  # fmt: skip
METRICS = {
    "drain_spawn_jobs_per_s": ("drain", "jobs_per_s"),
    "drain_steady_jobs_per_s": ("drain", "jobs_per_s_db_span"),
    # Start-up: spawn -> the first completion's DB timestamp (interpreter, imports, connecting).
    "drain_first_done_s": ("drain", "first_done_after_s"),
    "bulk_enqueue_jobs_per_s": ("bulk_enqueue", "jobs_per_s"),
    "single_enqueue_jobs_per_s": ("single_enqueue", "jobs_per_s"),
    "latency_p50_ms": ("latency", "p50_ms"),
    "latency_p95_ms": ("latency", "p95_ms"),
    "latency_p99_ms": ("latency", "p99_ms"),
    "worker_cpu_ms_per_job": ("drain", "worker_cpu_ms_per_job"),
    "pg_cpu_ms_per_job": ("drain", "pg_cpu_ms_per_job"),
    "xacts_per_job": ("drain", "xacts_per_job"),
}
# Higher is better for rates, lower for the rest (for the targets line).
HIGHER = {"drain_spawn_jobs_per_s", "drain_steady_jobs_per_s", "bulk_enqueue_jobs_per_s"}


@dataclass(frozen=True)
class Contender:
    label: str
    script: str
    variant: str
    venv: str  # "ours", or a key of VENVS
    # Phase groups, one script run each: procrastinate's and chancy's 20k drains take ~50 s, so
    # their phases are split the way the peers' run_all.py splits them.
    groups: tuple[str, ...] = ("bulk,drain,single,latency",)

    @property
    def name(self) -> str:
        return f"{self.label} {self.variant}"


CONTENDERS = [
    Contender("addicted-jobs", str(HERE / "engine_peer.py"), "c10", "ours"),
    Contender("pgqueuer", "pgq_bench.py", "defaults", "base"),
    Contender("pgqueuer", "pgq_bench.py", "c10", "base"),
    Contender("procrastinate", "procr_bench.py", "c10", "base", ("bulk,drain", "single,latency")),
    Contender("oban", "oban_bench.py", "c10", "oban"),
    Contender("chancy", "chancy_bench.py", "c10", "chancy", ("bulk,drain", "single,latency")),
    Contender("graphile-worker", "gw_bench.py", "c10", "base"),
    Contender("graphile-worker", "gw_bench.py", "c10-batch", "base"),
]
SHORT = {"aj": "addicted-jobs", "pgq": "pgqueuer", "procr": "procrastinate", "oban": "oban"}
SHORT |= {"chancy": "chancy", "gw": "graphile-worker"}


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


def venv_python(key: str) -> str | None:
    """The interpreter of a peer's virtualenv, created on first use; None when the Python it
    needs is not on this machine (oban needs >= 3.12)."""
    base, packages = VENVS[key]
    venv = ROOT / (".venv-peers" if key == "base" else f".venv-peers-{key}")
    python = venv / "bin" / "python"
    if python.exists():
        return str(python)
    creator = find_python(base)
    if creator is None:
        return None
    subprocess.run([creator, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *packages], check=True)
    return str(python)


def find_python(command: str) -> str | None:
    """`command` (python3.12...) from PATH, else from pyenv's installed versions: a pyenv shim
    exists for every version pyenv knows, and fails when the selected version is another."""
    found = [shutil.which(command)]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found += sorted(str(p) for p in pyenv.glob(f"{command[len('python') :]}*/bin/{command}"))
    for candidate in found:
        if candidate and subprocess.run([candidate, "-V"], capture_output=True).returncode == 0:
            return candidate
    return None


def graphile_worker_dir() -> str | None:
    """node_modules with graphile-worker 0.17.3 (the newest for Node.js 20), npm-installed once."""
    if (GW_DIR / "node_modules" / "graphile-worker").is_dir():
        return str(GW_DIR)
    if shutil.which("npm") is None or shutil.which("node") is None:
        return None
    GW_DIR.mkdir(exist_ok=True)
    subprocess.run(["npm", "install", "--silent", "graphile-worker@0.17.3"], cwd=GW_DIR, check=True)
    return str(GW_DIR)


def interpreter(contender: Contender) -> tuple[str | None, str]:
    """(python, why not) for a contender."""
    if contender.venv == "ours":
        return sys.executable, ""
    python = venv_python(contender.venv)
    if python is None:
        return None, f"needs {VENVS[contender.venv][0]}, which is not on this machine"
    if contender.label == "graphile-worker" and graphile_worker_dir() is None:
        return None, "needs node and npm"
    return python, ""


def run_group(python: str, contender: Contender, group: str, args: argparse.Namespace) -> dict:
    cmd = [python, contender.script, "--variant", contender.variant, "--phases", group]
    cmd += ["--n", str(args.n), "--n-single", str(args.n_single), "--lat-jobs", str(args.lat_jobs)]
    env = dict(os.environ)
    if GW_DIR.is_dir():
        env.setdefault("BENCH_GW_DIR", str(GW_DIR))
    if args.quiet_wait is not None:
        env["BENCH_QUIET_MAX_WAIT_S"] = str(args.quiet_wait)
    try:
        done = subprocess.run(
            cmd, cwd=PEERS, env=env, capture_output=True, text=True, timeout=args.timeout
        )
    except subprocess.TimeoutExpired:
        return {"error": f"{group}: no result within {args.timeout} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"error": f"{group}: exited {done.returncode}", "stderr": done.stderr[-1500:]}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def headline(contender: Contender, merged: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"contender": contender.name}
    for metric, (phase, key) in METRICS.items():
        row[metric] = merged.get(phase, {}).get(key)
    row["drain_peak_rss_mib"] = merged.get("drain", {}).get("worker", {}).get("peak_rss_mib")
    row["worst_other_pct"] = _worst(merged, "other_pct")
    if merged.get("errors"):
        row["errors"] = merged["errors"]
    return row


def _worst(tree: Any, key: str) -> float | None:
    """The largest `key` anywhere in a result: the foreign CPU the harness saw in its windows."""
    found: list[float] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get(key), int | float):
                found.append(float(node[key]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(tree)
    return max(found) if found else None


def summarise(rows: dict[str, list[dict[str, Any]]], ours: str) -> dict[str, Any]:
    def median(name: str, metric: str) -> float | None:
        values = [r[metric] for r in rows[name] if r.get(metric) is not None]
        return round(statistics.median(values), 3) if values else None

    summary: dict[str, Any] = {"summary": True, "date": time.strftime("%Y-%m-%d %H:%M %Z")}
    summary["rounds"] = max((len(v) for v in rows.values()), default=0)
    for metric in [*METRICS, "drain_peak_rss_mib"]:
        summary[metric] = {name: median(name, metric) for name in rows}
    if ours not in rows:
        return summary  # --only left us out: medians, no comparison
    peers = [name for name in rows if name != ours]
    ratios: dict[str, Any] = {}
    for peer in peers:
        for metric in ("drain_spawn_jobs_per_s", "drain_steady_jobs_per_s"):
            # Round by round too: a ratio of medians hides how far one noisy round moved.
            ratios.setdefault(peer, {})[metric] = [
                round(a[metric] / b[metric], 2) if a.get(metric) and b.get(metric) else None
                for a, b in zip(rows[ours], rows[peer], strict=False)
            ]
    summary["ours_over_peer_by_round"] = ratios
    summary["targets"] = targets(summary, ours, peers)
    return summary


def targets(summary: dict[str, Any], ours: str, peers: list[str]) -> dict[str, Any]:
    """Issue 20's targets against every peer's median: drain >= 2x, p99 below, bulk >= every
    peer's, worker + PostgreSQL CPU per job the lowest. None where a figure is missing."""

    def met(metric: str, factor: float = 1.0) -> bool | None:
        mine = summary[metric].get(ours)
        theirs = [summary[metric].get(p) for p in peers]
        if mine is None or any(t is None for t in theirs) or not theirs:
            return None
        if metric in HIGHER:
            return all(mine >= factor * t for t in theirs)
        return all(mine < t for t in theirs)

    cpu = {
        name: (summary["worker_cpu_ms_per_job"].get(name) or 0)
        + (summary["pg_cpu_ms_per_job"].get(name) or 0)
        for name in [ours, *peers]
    }
    return {
        "drain_spawn_2x_every_peer": met("drain_spawn_jobs_per_s", 2.0),
        "drain_steady_2x_every_peer": met("drain_steady_jobs_per_s", 2.0),
        "latency_p99_below_every_peer": met("latency_p99_ms"),
        "bulk_enqueue_at_least_every_peer": met("bulk_enqueue_jobs_per_s"),
        "cpu_per_job_lowest": all(cpu[ours] < cpu[p] for p in peers) if peers else None,
        "cpu_ms_per_job": {name: round(value, 3) for name, value in cpu.items()},
    }


def race(args: argparse.Namespace) -> None:
    """Rounds of every contender, the order rotated each round so no one always goes first."""
    wanted = {SHORT.get(s, s) for s in args.only.split(",")} if args.only else None
    chosen = [c for c in CONTENDERS if wanted is None or c.label in wanted]
    ready: list[tuple[Contender, str]] = []
    for contender in chosen:
        python, why = interpreter(contender)
        if python is None:
            emit({"contender": contender.name, "skipped": why})
        else:
            ready.append((contender, python))
    if args.setup_only:
        return
    rows: dict[str, list[dict[str, Any]]] = {c.name: [] for c, _ in ready}
    for round_no in range(args.rounds):
        shift = round_no % max(1, len(ready))
        for contender, python in ready[shift:] + ready[:shift]:
            merged: dict[str, Any] = {}
            for group in contender.groups:
                result = run_group(python, contender, group, args)
                if "error" in result:
                    merged.setdefault("errors", []).append(result)
                merged.update({k: v for k, v in result.items() if k != "error"})
            row = {"round": round_no + 1, **headline(contender, merged)}
            rows[contender.name].append(row)
            emit(row)
    emit(summarise(rows, CONTENDERS[0].name))


def add_arguments(parser: argparse._ActionsContainer) -> None:
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="", help="e.g. aj,pgq,gw (default: everyone)")
    parser.add_argument("--n", type=int, default=20_000, help="jobs in bulk and drain")
    parser.add_argument("--n-single", type=int, default=2_000)
    parser.add_argument(
        "--lat-jobs",
        type=int,
        default=1000,
        help="jobs in the latency phase (the harness alone takes 200: its p99 is then the second-worst sample)",
    )
    parser.add_argument("--timeout", type=float, default=900, help="per script run, seconds")
    parser.add_argument(
        "--quiet-wait", type=float, default=None, help="the harness's wait for a quiet box, s"
    )
    parser.add_argument("--setup-only", action="store_true", help="install the peers, run none")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_arguments(parser)
    args = parser.parse_args()
    if not PEERS.is_dir():
        emit({"error": f"{PEERS} is absent: the shared harness is needed for comparable figures"})
        sys.exit(2)
    race(args)


if __name__ == "__main__":
    main()
