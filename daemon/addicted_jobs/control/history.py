"""A job's history for `job ID` (issue 17): its recorded runs (jobs.attempts, written by the
engine's batched statements) and the state timeline built from them and the job row.

The timeline is derived, not logged: the engine writes no row per state change (that would be a
statement per job on the hot path). Every point comes from a recorded time: created_at, each
run's due, start and end, the last operator retry (retried_at), the end of a job that finished
without a run (cancelled, or deleted with its parent), and the run going on now.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from addicted_jobs.jobs import TERMINAL

RETRY_NOTE = (
    "history kept: earlier runs stay listed under `job ID`; the attempt counter (what "
    "max_attempts limits) starts again at 0, the run numbers continue"
)


def _runner(run: dict[str, Any]) -> str:
    if run.get("pid") is None and run.get("host") is None:
        return "an unknown daemon"
    return f"pid {run.get('pid')} on {run.get('host')}"


def _point(at: datetime | None, state: str, note: str) -> dict[str, Any] | None:
    return None if at is None else {"at": at, "state": state, "note": note}


def _created(job: dict[str, Any], first_due: datetime | None) -> dict[str, Any] | None:
    created = job.get("created_at")
    if job.get("parent_id") is not None:
        note = f"awaiting job {job['parent_id']}"
        return _point(created, "awaiting", note)
    if created is not None and first_due is not None and first_due > created:
        return _point(created, "scheduled", f"created, due {first_due.isoformat()}")
    return _point(created, "ready", "created")


def _run_points(run: dict[str, Any], after: datetime | None) -> list[dict[str, Any] | None]:
    """A run's due, start and end. The due point is never before `after` (the previous run's
    end): a retry's due time comes from the daemon's clock, its end from the database's."""
    due = run.get("due_at")
    if due is not None and after is not None:
        due = max(due, after)
    refunded = " (attempt given back)" if run.get("refunded") else ""
    took = run.get("duration_s")
    ran = f" after {took:.3f} s" if took is not None else ""
    return [
        _point(due, "ready", f"due for run {run['attempt']}"),
        _point(
            run.get("started_at"),
            "running",
            f"run {run['attempt']} (attempt {run['counted']}) by {_runner(run)}",
        ),
        _point(
            run.get("finished_at"),
            run["state_after"],
            f"run {run['attempt']} {run['outcome']}{ran}{refunded}",
        ),
    ]


def timeline(job: dict[str, Any], runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Points {at, state, note} in time order: the state the job entered at `at` and why.

    `job` has get_job's keys, `runs` job_attempts' rows (oldest first)."""
    points: list[dict[str, Any] | None] = [
        _created(job, runs[0]["due_at"] if runs else job.get("run_at"))
    ]
    # Before the runs: a retried job is due at the retry's instant, and says why.
    points.append(_point(job.get("retried_at"), "ready", "retried by an operator"))
    after = None
    for run in runs:
        points.extend(_run_points(run, after))
        after = run.get("finished_at")
    ends = {run.get("finished_at") for run in runs}
    state = job.get("state")
    if state in TERMINAL and job.get("finished_at") not in ends:
        points.append(_point(job.get("finished_at"), str(state), job.get("last_error") or ""))
    if state == "running":
        points.append(
            _point(
                job.get("started_at"),
                "running",
                f"run {job.get('claims')} (attempt {job.get('attempt')}) by "
                f"{job.get('claimed_by') or 'an unknown daemon'}, now",
            )
        )
    kept = [p for p in points if p is not None]
    kept.sort(key=lambda p: p["at"])  # stable: same-instant points keep their listed order
    # A point that enters the state the job is already in says nothing new (a job created
    # ready is due at once; a retry with no delay is ready when its run ends).
    deduped: list[dict[str, Any]] = []
    for point in kept:
        if not deduped or deduped[-1]["state"] != point["state"]:
            deduped.append(point)
    return deduped
