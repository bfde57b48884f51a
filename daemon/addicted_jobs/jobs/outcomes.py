"""How a run's end becomes an outcome: the failure policy as a pure function, no I/O.

`outcome_of` maps what a handler call ended with (nothing, a cancellation, an exception) to the
label logged and counted, the `store.Outcome` written, and the one-line error for the log.
"""

from __future__ import annotations

import asyncio
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from addicted_jobs.jobs.backoff import RetryPolicy
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


@dataclass(frozen=True)
class Verdict:
    """What to record for one run: `label` for the log and metrics, `outcome` for the store,
    `error` the one-line summary (None on success)."""

    label: Label
    outcome: Outcome
    error: str | None = None


def outcome_of(
    job: Claimed,
    exc: BaseException | None,
    policy: RetryPolicy | None,
    now: datetime | None = None,
    *,
    skipped: bool = False,
    by_operator: bool = False,
    delay_scale: float = 1.0,
) -> Verdict:
    """The verdict on one run of `job` that ended with `exc` (None: returned normally; `skipped`:
    its try-lock was taken). A cancellation is an operator's cancel (`by_operator`: deleted) or a
    shutdown (ready again, the attempt refunded). Another exception retries while attempts are
    left (after `policy.delay(attempt) * delay_scale` seconds from `now`), else fails or deletes
    as `policy.on_exhausted` says; `policy` None (no spec) fails. `now` defaults to the clock
    (UTC), read only when the verdict needs a time."""
    if exc is None:
        label: Label = "skipped" if skipped else "succeeded"
        return Verdict(label, Outcome(job.id, job.claims, "succeeded"))
    now = now or datetime.now(UTC)
    if isinstance(exc, asyncio.CancelledError):
        if by_operator:
            cancelled = Outcome(job.id, job.claims, "deleted", error="cancelled by an operator")
            return Verdict("cancelled", cancelled)
        return Verdict("interrupted", Outcome(job.id, job.claims, "ready", now, refund=1))
    if isinstance(exc, Unrunnable):
        text = error_text(exc.cause, ERROR_TEXT_LIMIT)
        summary = f"{type(exc.cause).__name__}: {exc.cause}"[:SUMMARY_LIMIT]
        return Verdict("failed", Outcome(job.id, job.claims, "failed", error=text), summary)
    summary = f"{type(exc).__name__}: {exc}"[:SUMMARY_LIMIT]
    text = error_text(exc, ERROR_TEXT_LIMIT)
    if policy is not None and job.attempt < job.max_attempts:
        delay = policy.delay(job.attempt) * delay_scale
        run_at = now + timedelta(seconds=delay)
        retry = Outcome(job.id, job.claims, "scheduled" if delay > 0 else "ready", run_at, text)
        return Verdict("retry", retry, summary)
    if policy is not None and policy.on_exhausted == "delete":
        return Verdict("deleted", Outcome(job.id, job.claims, "deleted", error=text), summary)
    return Verdict("failed", Outcome(job.id, job.claims, "failed", error=text), summary)
