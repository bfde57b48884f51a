"""What a running handler sees of the engine: its own id and attempt, a logger, and enqueue."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:
    from addicted_jobs.jobs.runner import Engine
    from addicted_jobs.jobs.store import EnqueueResult


@dataclass
class JobContext:
    job_id: int
    name: str
    queue: str
    attempt: int
    max_attempts: int
    engine: Engine
    log: Any

    async def enqueue(
        self,
        name: str,
        args: dict[str, Any] | BaseModel | None = None,
        *,
        after: int | None = None,
        delay: float | None = None,
    ) -> EnqueueResult:
        return await self.engine.enqueue(name, args or {}, after=after, delay=delay)

    async def continue_with(
        self, name: str, args: dict[str, Any] | BaseModel | None = None
    ) -> EnqueueResult:
        """Register a continuation that runs only once this job has succeeded."""
        return await self.engine.enqueue(name, args or {}, after=self.job_id)
