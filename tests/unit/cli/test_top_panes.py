"""`top`'s new panes (issue 17): the sparkline's scaling, the per-minute activity counters on a
controlled clock, and a frame with running jobs, throughput and the upstream line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from addicted_jobs.cli.top import render, sparkline
from addicted_jobs.control.activity import Activity


def test_sparkline_scales_to_the_busiest_cell_and_keeps_idle_cells_blank() -> None:
    assert sparkline([0] * 60) == " " * 20
    line = sparkline([0] * 57 + [10, 10, 10])  # all in the newest cell
    assert line == " " * 19 + "█"
    assert sparkline([1] * 3 + [0] * 54 + [100] * 3) == "▁" + " " * 18 + "█"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_activity_counts_per_minute_and_forgets_after_an_hour() -> None:
    clock = Clock()
    activity = Activity(clock)
    for _ in range(3):
        activity.job_finished("noop", "default", "succeeded", 0.01)
    activity.job_finished("noop", "default", "interrupted", 0.01)  # not throughput
    activity.upstream_attempt("addic7ed", "2xx")
    clock.now += 120
    activity.job_finished("noop", "default", "failed", 0.01)
    snap = activity.snapshot()
    assert snap["jobs_per_minute"]["default"][-3:] == [3, 0, 1]
    assert sum(snap["upstream_per_minute"]["addic7ed"]) == 1
    clock.now += 3600
    assert sum(activity.snapshot()["jobs_per_minute"]["default"]) == 0


def test_the_frame_shows_running_jobs_throughput_and_upstream() -> None:
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    stats = {
        "version": "0.1.0",
        "uptime_s": 4000,
        "queues": [{"name": "default", "concurrency": 10, "counts": {"running": 1}}],
        "finished_last_minute": {"default": 30},
        "failures": [],
        "running": [
            {
                "id": 7,
                "name": "refresh_single_show",
                "queue": "refresh-one-show",
                "attempt": 1,
                "started_at": (now - timedelta(seconds=95)).isoformat(),
            }
        ],
        "jobs_per_minute": {"default": [0] * 59 + [30]},
        "upstream_per_minute": {"addic7ed": [0] * 54 + [120] * 6},
        "upstream": {
            "breakers": {"addic7ed": "closed", "tmdb": "open"},
            "credentials": {"total": 3, "with_quota": 2},
        },
    }
    frame = render(stats, now)
    assert "default  |" + " " * 19 + "█|  30/h" in frame
    assert "upstream  addic7ed closed, 120 req/min · tmdb open, 0 req/min" in frame
    assert "credentials 2/3 with quota" in frame
    running = frame.split("running (longest first)\n")[1].splitlines()
    assert running[0].split() == ["ID", "NAME", "QUEUE", "ATTEMPT", "ELAPSED"]
    assert running[1].split() == ["7", "refresh_single_show", "refresh-one-show", "1", "1m35s"]


def test_a_succeeded_jobs_old_error_is_labelled_as_history() -> None:
    from addicted_jobs.cli.output import job_block

    block = job_block({"id": 1, "state": "succeeded", "last_error": "TimeoutError: attempt 1"})
    assert "earlier error  TimeoutError: attempt 1" in block and "last error" not in block
    assert "last error" in job_block({"id": 2, "state": "failed", "last_error": "boom"})
