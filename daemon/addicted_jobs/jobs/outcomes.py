"""How a run's end becomes an outcome: the failure policy as a pure function, no I/O.

`outcome_of` maps what a handler call ended with (nothing, a cancellation, an exception) to the
label logged and counted, the `store.Outcome` written, and the one-line error for the log.
"""

from __future__ import annotations

import asyncio
import traceback
from datetime import UTC, datetime, timedelta
from typing import Literal, NamedTuple

from addicted_jobs.jobs.backoff import RetryPolicy
from addicted_jobs.jobs.states import JobState
from addicted_jobs.jobs.store import Claimed, Outcome

ERROR_TEXT_LIMIT = 4000  # characters of a job's stored error (jobs.jobs.error)
SUMMARY_LIMIT = 500  # characters of the error on the "job finished" line

Label = Literal[
    "succeeded", "skipped", "retry", "failed", "deleted", "cancelled", "interrupted", "returned"
]


class JobTimeout(Exception):
    """The handler ran past its spec's timeout; it counts as a failure (retried per policy)."""


class Unrunnable(Exception):
    """No handler for the stored name, or stored arguments that can never fit: retrying cannot
    help, so the job fails for good whatever its policy says."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def error_text(exc: BaseException, limit: int) -> str:
    """`Type: message`, a newline and the traceback, cut to `limit` characters."""
    summary = f"{type(exc).__name__}: {exc}"
    detail = "".join(traceback.format_exception(exc))
    return (summary + "\n" + detail)[:limit]


class Verdict(NamedTuple):
    """What to record for one run: `label` for the log and metrics, `outcome` for the store
    (its `outcome` and `duration_s` filled in), `error` the one-line summary (None on success).
    A NamedTuple: one is built per job, on the hot path."""

    label: Label
    outcome: Outcome
    error: str | None = None


def outcome_of(
    job: Claimed,
    exc: BaseException | None,
    policy: RetryPolicy | None,
    duration_s: float,
    now: datetime | None = None,
    *,
    skipped: bool = False,
    by_operator: bool = False,
    delay_scale: float = 1.0,
) -> Verdict:
    """The verdict on one run of `job` that took `duration_s` seconds and ended with `exc`
    (None: returned normally; `skipped`: its try-lock was taken). A cancellation is an
    operator's cancel (`by_operator`: deleted) or a shutdown (ready again, the attempt
    refunded). Another exception retries while attempts are left (after
    `policy.delay(attempt) * delay_scale` seconds from `now`), else fails or deletes as
    `policy.on_exhausted` says; `policy` None (no spec) fails. `now` defaults to the clock
    (UTC), read only when the verdict needs a time."""
    if exc is None:
        label: Label = "skipped" if skipped else "succeeded"
        # Positional (run_at, error, refund as their defaults): a named tuple's keywords cost
        # ~0.2 us more, and this is every succeeded job's.
        done = Outcome(job.id, job.claims, "succeeded", None, None, 0, label, duration_s)
        return Verdict(label, done)
    now = now or datetime.now(UTC)
    if isinstance(exc, asyncio.CancelledError):
        if by_operator:
            return _verdict(
                job, "cancelled", "deleted", duration_s, error="cancelled by an operator"
            )
        return _verdict(job, "interrupted", "ready", duration_s, run_at=now, refund=1)
    if isinstance(exc, Unrunnable):
        text = error_text(exc.cause, ERROR_TEXT_LIMIT)
        summary = f"{type(exc.cause).__name__}: {exc.cause}"[:SUMMARY_LIMIT]
        return _verdict(job, "failed", "failed", duration_s, error=text, summary=summary)
    summary = f"{type(exc).__name__}: {exc}"[:SUMMARY_LIMIT]
    text = error_text(exc, ERROR_TEXT_LIMIT)
    if policy is not None and job.attempt < job.max_attempts:
        delay = policy.delay(job.attempt) * delay_scale
        state: JobState = "scheduled" if delay > 0 else "ready"
        run_at = now + timedelta(seconds=delay)
        return _verdict(job, "retry", state, duration_s, run_at, text, summary=summary)
    if policy is not None and policy.on_exhausted == "delete":
        return _verdict(job, "deleted", "deleted", duration_s, error=text, summary=summary)
    return _verdict(job, "failed", "failed", duration_s, error=text, summary=summary)


def _verdict(
    job: Claimed,
    label: Label,
    state: JobState,
    duration_s: float,
    run_at: datetime | None = None,
    error: str | None = None,
    *,
    refund: int = 0,
    summary: str | None = None,
) -> Verdict:
    outcome = Outcome(job.id, job.claims, state, run_at, error, refund, label, duration_s)
    return Verdict(label, outcome, summary)
