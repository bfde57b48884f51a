"""Retry delay policies: a fixed table per job type, or Hangfire's default formula."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal


def hangfire_delay(retry: int, rng: random.Random | None = None) -> float:
    """Hangfire's default: (n-1)^4 + 15 + rand[0,30) * n seconds, n being the 1-based retry number."""
    if retry < 1:
        raise ValueError(f"retry numbers start at 1, got {retry}")
    draw = (rng or random).randrange(30)
    return float((retry - 1) ** 4 + 15 + draw * retry)


@dataclass(frozen=True)
class RetryPolicy:
    """How often a failed job is tried again, after how long, and what happens once it gives up.

    `retries` counts the runs after the first, as Hangfire's Attempts does: retries=20 means at most
    21 runs. `on_exhausted` is "fail" (kept, visible, never re-run by itself) or "delete".
    """

    retries: int = 10
    delays: tuple[float, ...] | None = None
    on_exhausted: Literal["fail", "delete"] = "fail"

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError("retries cannot be negative")
        if self.delays is not None and (not self.delays or any(d < 0 for d in self.delays)):
            raise ValueError("a delay table needs at least one non-negative delay")

    @property
    def max_attempts(self) -> int:
        return self.retries + 1

    def delay(self, retry: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number `retry` (1-based)."""
        if retry < 1:
            raise ValueError(f"retry numbers start at 1, got {retry}")
        if self.delays is not None:
            return float(self.delays[min(retry, len(self.delays)) - 1])
        return hangfire_delay(retry, rng)


DEFAULT_RETRY = RetryPolicy()
