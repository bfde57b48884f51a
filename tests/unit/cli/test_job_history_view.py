"""Issue 17: what `job ID` prints from a job's recorded runs: the runs table (refunds, an unknown
runner), each run's error with its traceback, and the state timeline in time order."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from addicted_jobs.cli.output import job_block
from addicted_jobs.control.history import timeline
from addicted_jobs.control.protocol import encode_ok

T0 = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def run(n: int, counted: int, start: float, end: float, outcome: str, after: str, **kw: Any) -> dict[str, Any]:  # fmt: skip
    return {
        "attempt": n, "counted": counted, "due_at": kw.get("due", at(start)),
        "started_at": at(start), "finished_at": at(end), "duration_s": kw.get("took"),
        "outcome": outcome, "state_after": after, "error": kw.get("error"),
        "refunded": kw.get("refunded", False), "pid": kw.get("pid", 4107),
        "host": kw.get("host", "vm"),
    }  # fmt: skip


def job(**kw: Any) -> dict[str, Any]:
    base = {
        "id": 7, "name": "flaky", "queue": "default", "args": {}, "state": "succeeded",
        "attempt": 2, "max_attempts": 3, "interruptions": 1, "parent_id": None,
        "unique_key": None, "created_at": at(-60), "run_at": at(0), "started_at": at(30),
        "finished_at": at(31), "last_error": None, "claims": 3, "claimed_by": "4107@vm",
        "retried_at": None,
    }  # fmt: skip
    return {**base, **kw}


RUNS = [
    run(
        1,
        1,
        0,
        0.5,
        "retry",
        "scheduled",
        took=0.5,
        error="RuntimeError: boom\nTraceback (most recent call last):\n  File x",
    ),
    run(2, 1, 10, 12, "crashed", "ready", refunded=True, pid=None, host=None, due=at(5)),
    run(3, 2, 30, 31, "succeeded", "succeeded", took=1.0),
]


def test_the_timeline_follows_the_runs_of_a_delayed_job_in_time_order() -> None:
    points = timeline(job(), RUNS)
    assert [(p["at"], p["state"]) for p in points] == [
        (at(-60), "scheduled"),  # created with a due time a minute later
        (at(0), "ready"),
        (at(0), "running"),
        (at(0.5), "scheduled"),  # the retry's backoff
        (at(5), "ready"),
        (at(10), "running"),
        (at(12), "ready"),  # the crash: given back, due again
        (at(30), "running"),
        (at(31), "succeeded"),
    ]
    assert "by an unknown daemon" in points[5]["note"]
    assert "attempt given back" in points[6]["note"]


def test_a_running_cancelled_or_continuation_job_has_its_own_points() -> None:
    running = timeline(job(state="running", finished_at=None), RUNS[:1])
    assert running[-1]["state"] == "running" and running[-1]["note"].endswith("now")
    cancelled = job(state="deleted", finished_at=at(2), last_error="cancelled by an operator")
    assert timeline(cancelled, [])[-1] == {
        "at": at(2),
        "state": "deleted",
        "note": "cancelled by an operator",
    }
    waiting = timeline(job(parent_id=3, state="awaiting", finished_at=None), [])
    assert [(p["state"], p["note"]) for p in waiting] == [("awaiting", "awaiting job 3")]


def test_job_block_prints_the_runs_their_errors_and_the_timeline() -> None:
    shown = job()
    shown["attempts"] = RUNS
    shown["timeline"] = timeline(shown, RUNS)
    # As the CLI gets it: through the socket's JSON (times as ISO text).
    text = job_block(json.loads(encode_ok("x", shown))["result"])
    runs = text.split("runs:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert runs[0].split() == ["RUN", "ATTEMPT", "STARTED", "TOOK", "OUTCOME", "THEN", "PID@HOST"]
    assert "500.0ms" in runs[1] and "retry" in runs[1] and "4107@vm" in runs[1]
    assert "crashed (refunded)" in runs[2] and runs[2].rstrip().endswith("?")
    assert "run 1 error:\nRuntimeError: boom\nTraceback (most recent call last):" in text
    again = {**shown, "attempts": [*RUNS, {**RUNS[0], "attempt": 4}]}
    assert "run 4 error: the same as run 1" in job_block(
        json.loads(encode_ok("x", again))["result"]
    )
    assert "timeline:\n  2026-11-30 05:59:00" in text
