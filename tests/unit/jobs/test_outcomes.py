"""The failure policy as a pure function: what each end of a run writes and logs."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from addicted_jobs.jobs import RetryPolicy
from addicted_jobs.jobs.outcomes import ERROR_TEXT_LIMIT, Unrunnable, error_text, outcome_of
from addicted_jobs.jobs.store import Claimed

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def job(attempt: int = 1, max_attempts: int = 3) -> Claimed:
    return Claimed(7, "noop", {}, attempt, max_attempts, claims=4)


def test_a_normal_return_succeeds_and_a_taken_try_lock_is_a_skip_written_as_success() -> None:
    done = outcome_of(job(), None, None, 0.5)
    assert (done.label, done.outcome.state, done.error) == ("succeeded", "succeeded", None)
    skipped = outcome_of(job(), None, None, 0.5, skipped=True)
    assert (skipped.label, skipped.outcome.state) == ("skipped", "succeeded")
    assert done.outcome.claims == 4  # the fencing token travels with the outcome
    # What the run's record (jobs.attempts) keeps: the label and how long it ran.
    assert (skipped.outcome.outcome, skipped.outcome.duration_s) == ("skipped", 0.5)


def test_a_failure_with_attempts_left_retries_after_the_policy_delay() -> None:
    policy = RetryPolicy(retries=2, delays=(30.0,))
    verdict = outcome_of(job(attempt=1), ValueError("boom"), policy, 0.5, NOW, delay_scale=2.0)
    assert verdict.label == "retry"
    assert verdict.outcome.state == "scheduled"
    assert verdict.outcome.run_at == NOW + timedelta(seconds=60)
    assert verdict.error == "ValueError: boom"
    assert verdict.outcome.error is not None and "Traceback" not in verdict.error


def test_a_zero_delay_retry_is_ready_at_once() -> None:
    verdict = outcome_of(job(), ValueError("x"), RetryPolicy(retries=1, delays=(0.0,)), 0.5, NOW)
    assert (verdict.label, verdict.outcome.state) == ("retry", "ready")


@pytest.mark.parametrize(("on_exhausted", "state"), [("fail", "failed"), ("delete", "deleted")])
def test_the_last_attempt_fails_or_deletes_as_the_policy_says(
    on_exhausted: str, state: str
) -> None:
    policy = RetryPolicy(retries=2, on_exhausted=on_exhausted)  # type: ignore[arg-type]
    verdict = outcome_of(job(attempt=3, max_attempts=3), RuntimeError("last"), policy, 0.5, NOW)
    assert (verdict.label, verdict.outcome.state) == (state, state)
    assert verdict.outcome.error is not None and verdict.outcome.error.startswith("RuntimeError")


def test_an_unrunnable_job_fails_for_good_whatever_its_policy() -> None:
    cause = LookupError("no job named 'gone'")
    verdict = outcome_of(job(attempt=1), Unrunnable(cause), RetryPolicy(retries=9), 0.5, NOW)
    assert (verdict.label, verdict.outcome.state) == ("failed", "failed")
    assert verdict.error == "LookupError: no job named 'gone'"


def test_a_cancellation_is_an_operator_cancel_or_a_refunded_interruption() -> None:
    cancelled = outcome_of(job(), asyncio.CancelledError(), None, 0.5, NOW, by_operator=True)
    assert (cancelled.label, cancelled.outcome.state) == ("cancelled", "deleted")
    assert cancelled.outcome.error == "cancelled by an operator"
    interrupted = outcome_of(job(), asyncio.CancelledError(), RetryPolicy(), 0.5, NOW)
    assert (interrupted.label, interrupted.outcome.state) == ("interrupted", "ready")
    assert interrupted.outcome.outcome == "interrupted"
    assert interrupted.outcome.refund == 1 and interrupted.outcome.run_at == NOW


def test_error_text_keeps_the_traceback_and_cuts_at_the_limit() -> None:
    try:
        raise ValueError("x" * 10_000)
    except ValueError as exc:
        text = error_text(exc, ERROR_TEXT_LIMIT)
        short = error_text(exc, 40)
    assert text.startswith("ValueError: xxx") and len(text) == ERROR_TEXT_LIMIT
    assert len(short) == 40
