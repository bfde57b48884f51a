"""`addicted-jobs demo`: the whole pipeline on embedded defaults, and a clean Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pytest

from tests.plugins.daemon import postgres_processes

pytestmark = pytest.mark.acceptance


def demo(state: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "addicted_jobs", "demo", "--state", str(state), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def test_the_demo_syncs_refreshes_downloads_and_stores(reachable_tmp: Path) -> None:
    state = reachable_tmp / "state"
    proc = demo(state, "--shows", "40", "--sample-shows", "4", "--sample-subtitles", "12")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    # Summary lines are "  <key>   <value>", the key padded with two or more spaces.
    summary = dict(re.findall(r"^  (\S.*?)  +(.*)$", out.split("\nsummary\n", 1)[1], re.MULTILINE))
    assert int(summary["tv shows"]) == 40
    assert int(summary["episodes"]) > 0 and int(summary["subtitles"]) > 0
    assert int(summary["stored files"]) > 0
    assert float(summary["compression ratio"]) > 1.5
    assert "failed" not in summary["jobs"]
    assert postgres_processes(state / "postgres" / "data") == [], "the embedded server is stopped"


def test_ctrl_c_stops_the_demo_cleanly(reachable_tmp: Path) -> None:
    state = reachable_tmp / "state"
    proc = demo(state, "--shows", "2000", "--sample-shows", "200", "--sample-subtitles", "500")
    assert proc.stdout is not None
    deadline = time.monotonic() + 90
    for line in proc.stdout:  # wait until the pipeline is under way
        if "daemon ready" in line:
            break
        assert time.monotonic() < deadline, "the demo never got ready"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "demo interrupted; the daemon stopped cleanly" in out
    assert postgres_processes(state / "postgres" / "data") == []


def test_bad_demo_arguments_are_usage_errors(reachable_tmp: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "addicted_jobs", "demo", "--sample-subtitles", "-3"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=reachable_tmp,
    )
    assert done.returncode == 2
    assert "--sample-subtitles takes 0 or more, got -3" in done.stderr


async def test_the_demo_ignores_addicted_jobs_variables(reachable_tmp: Path, db_dsn: str) -> None:
    """Every ADDICTED_JOBS_* a shell may hold points somewhere real: the demo uses none."""
    hostile = {
        "ADDICTED_JOBS_DATABASE__DSN": db_dsn,  # a real, migrated database
        "ADDICTED_JOBS_CONTROL__SOCKET": str(reachable_tmp / "real.sock"),
        "ADDICTED_JOBS_STORAGE__LOCAL__DIR": str(reachable_tmp / "real-storage"),
        "ADDICTED_JOBS_STATE__DIR": str(reachable_tmp / "real-state"),
        "ADDICTED_JOBS_LOG__LEVEL": "debug",
    }
    state = reachable_tmp / "state"
    proc = demo(
        state,
        "--shows",
        "10",
        "--sample-shows",
        "2",
        "--sample-subtitles",
        "3",
        env={**os.environ, **hostile},
    )
    out, _ = await asyncio.to_thread(proc.communicate, timeout=120)
    assert proc.returncode == 0, out
    conn = await asyncpg.connect(db_dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM tv_shows") == 0
        assert await conn.fetchval("SELECT count(*) FROM jobs.jobs") == 0
    finally:
        await conn.close()
    for path in ("real.sock", "real-storage", "real-state"):
        assert not (reachable_tmp / path).exists(), path
    assert (state / "postgres" / "data").is_dir(), "its own embedded database"
