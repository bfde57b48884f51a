"""Retry delays: the fixed catalogue table and Hangfire's default formula."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from addicted_jobs.jobs import RetryPolicy
from addicted_jobs.jobs.backoff import hangfire_delay
from addicted_jobs.tasks.catalogue import CATALOGUE_DELAYS


@given(retry=st.integers(min_value=1, max_value=60), seed=st.integers())
def test_hangfire_formula_stays_within_its_bounds(retry: int, seed: int) -> None:
    delay = hangfire_delay(retry, random.Random(seed))
    low = (retry - 1) ** 4 + 15
    assert low <= delay <= low + 29 * retry
    assert (delay - low) % retry == 0  # the random part is rand[0,30) times the retry number


@given(retry=st.integers(min_value=1, max_value=40))
def test_fixed_table_then_the_last_value_repeats(retry: int) -> None:
    policy = RetryPolicy(retries=20, delays=CATALOGUE_DELAYS, on_exhausted="delete")
    expected = CATALOGUE_DELAYS[retry - 1] if retry <= len(CATALOGUE_DELAYS) else 3600
    assert policy.delay(retry) == expected


def test_the_original_table_values() -> None:
    policy = RetryPolicy(retries=20, delays=CATALOGUE_DELAYS)
    assert [policy.delay(n) for n in range(1, 13)] == [
        60,
        600,
        900,
        2700,
        3600,
        600,
        1200,
        2400,
        2700,
        3600,
        3600,
        3600,
    ]
    assert policy.max_attempts == 21  # 20 retries: at most 21 runs


def test_bad_policies_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        RetryPolicy(retries=-1)
    with pytest.raises(ValueError, match="at least one"):
        RetryPolicy(delays=())
    with pytest.raises(ValueError, match="start at 1"):
        RetryPolicy().delay(0)
