"""What a running handler sees of the engine: its own id and attempt, a logger, and enqueue.

The handler reaches the engine only through `Enqueuer`, a two-method Protocol the engine
satisfies: the context never names the Engine, so this module imports nothing of the runtime.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel

from addicted_jobs.jobs.states import JobState


@dataclass(frozen=True)
class JobRequest:
    """One job to enqueue: a registered name, its arguments (validated against the spec's model
    when enqueued), a parent job id to continue after, and a delay in seconds."""

    name: str
    args: dict[str, Any] | BaseModel
    after: int | None = None
    delay: float | None = None


@dataclass(frozen=True)
class EnqueueResult:
    """The stored job: its id, whether this call created it (False: an existing unique job, whose
    id is given), and its state then (None when it is not known)."""

    id: int
    created: bool
    state: JobState | None = None


class Enqueuer(Protocol):
    """Where new jobs go (the Engine): validate against the registry, then store in one statement.
    Raises UnknownJob, pydantic.ValidationError or store.ParentNotFound on bad input."""

    async def enqueue(
        self,
        name: str,
        args: dict[str, Any] | BaseModel | None = None,
        *,
        after: int | None = None,
        delay: float | None = None,
    ) -> EnqueueResult: ...

    async def enqueue_many(self, requests: Sequence[JobRequest]) -> list[EnqueueResult]: ...


@dataclass
class JobContext:
    """Handed to every handler call: which job and attempt this is (1-based, of max_attempts),
    the bound logger for its lines, and enqueue for follow-up work."""

    job_id: int
    name: str
    queue: str
    attempt: int
    max_attempts: int
    enqueuer: Enqueuer
    log: Any

    async def enqueue(
        self,
        name: str,
        args: dict[str, Any] | BaseModel | None = None,
        *,
        after: int | None = None,
        delay: float | None = None,
    ) -> EnqueueResult:
        return await self.enqueuer.enqueue(name, args or {}, after=after, delay=delay)

    async def enqueue_many(self, requests: Sequence[JobRequest]) -> list[EnqueueResult]:
        """Validate every request first, then store them all in one statement."""
        return await self.enqueuer.enqueue_many(requests)

    async def continue_with(
        self, name: str, args: dict[str, Any] | BaseModel | None = None
    ) -> EnqueueResult:
        """Register a continuation that runs only once this job has succeeded."""
        return await self.enqueuer.enqueue(name, args or {}, after=self.job_id)
