"""JobSpec: what the engine knows of a job type, and the registry the engine dispatches from.

A spec names the job, its queue and argument model, and carries every policy the original set
with attributes: unique key + TTL, per-type concurrency cap, retries, timeout and keyed lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from addicted_jobs.jobs.backoff import DEFAULT_RETRY, RetryPolicy

if TYPE_CHECKING:
    from addicted_jobs.jobs.context import JobContext

A = TypeVar("A", bound=BaseModel)

DEFAULT_UNIQUE_TTL = 86_400.0  # UniqueJob's default fingerprint TTL: one day


class NoArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


class UnknownJob(LookupError):
    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        super().__init__(f"no job named {name!r}; known jobs: {', '.join(sorted(known))}")


@dataclass(frozen=True)
class JobSpec(Generic[A]):
    name: str
    queue: str
    args_model: type[A]
    handler: Callable[[JobContext, A], Awaitable[None]]
    unique_key: Callable[[A], str] | None = None
    unique_ttl: float = DEFAULT_UNIQUE_TTL
    cap: int | None = None
    retry: RetryPolicy = DEFAULT_RETRY
    timeout: float | None = None
    lock_key: Callable[[A], str] | None = None
    lock_mode: Literal["try", "wait"] = "try"
    description: str = ""

    def __post_init__(self) -> None:
        if self.cap is not None and self.cap < 1:
            raise ValueError(f"{self.name}: a cap must be at least 1")
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError(f"{self.name}: a timeout must be positive")
        if self.unique_ttl <= 0:
            raise ValueError(f"{self.name}: a unique TTL must be positive")

    def parse(self, args: dict[str, Any] | BaseModel) -> A:
        """Validate arguments against the model (pydantic.ValidationError when they do not fit)."""
        if type(args) is dict:
            # A claimed job's arguments, decoded from jsonb: once per job. The validator itself,
            # without model_validate's wrapper and the two isinstance checks below (pydantic's
            # metaclass runs them in Python): 1.0 us instead of 1.6.
            return self.args_model.__pydantic_validator__.validate_python(args)  # type: ignore[no-any-return]
        if isinstance(args, self.args_model):
            return args
        if isinstance(args, BaseModel):
            args = args.model_dump(mode="json")
        return self.args_model.model_validate(args)

    def key_for(self, args: A) -> str | None:
        # The job name prefixes the key: two job types never block each other by accident.
        return f"{self.name}:{self.unique_key(args)}" if self.unique_key else None


@dataclass
class Registry:
    specs: dict[str, JobSpec[Any]] = field(default_factory=dict)

    def register(self, spec: JobSpec[Any]) -> JobSpec[Any]:
        if spec.name in self.specs:
            raise ValueError(f"job {spec.name!r} is registered twice")
        self.specs[spec.name] = spec
        return spec

    def get(self, name: str) -> JobSpec[Any]:
        try:
            return self.specs[name]
        except KeyError:
            raise UnknownJob(name, self.specs) from None

    def __contains__(self, name: object) -> bool:
        return name in self.specs

    def queues(self) -> set[str]:
        return {spec.queue for spec in self.specs.values()}


class NoopArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)
    sleep_ms: int = Field(default=0, ge=0, le=3_600_000)
    fail: bool = False


class NoopFailure(RuntimeError):
    pass


async def _noop(ctx: JobContext, args: NoopArgs) -> None:
    if args.sleep_ms:
        await asyncio.sleep(args.sleep_ms / 1000)
    if args.fail:
        raise NoopFailure("noop asked to fail")


NOOP = JobSpec(
    name="noop",
    queue="default",
    args_model=NoopArgs,
    handler=_noop,
    retry=RetryPolicy(retries=0),
    description="diagnostic job for health checks and benchmarks",
)


def default_registry() -> Registry:
    registry = Registry()
    registry.register(NOOP)
    return registry
