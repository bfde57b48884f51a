"""The job engine's face: everything the domain (tasks/, onetime_migrations/, domain.py) may use
to declare jobs and one-time migrations and to enqueue work. The engine's insides (engine,
dispatcher, flusher, store, recurring, cluster) are for the composition root (app.py) and the
control socket; pyproject.toml's import-linter contracts keep the domain on this face.

Importing it loads no database driver: the command line reads `JobState` through it.
"""

from addicted_jobs.jobs.backoff import DEFAULT_RETRY, RetryPolicy
from addicted_jobs.jobs.context import Enqueuer, EnqueueResult, JobContext, JobRequest
from addicted_jobs.jobs.migration import MigrationContext, OneTimeMigration
from addicted_jobs.jobs.spec import JobSpec, NoArgs, Registry, UnknownJob
from addicted_jobs.jobs.states import ACTIVE, STATES, TERMINAL, WAITING, JobState

__all__ = [
    "ACTIVE",
    "DEFAULT_RETRY",
    "STATES",
    "TERMINAL",
    "WAITING",
    "EnqueueResult",
    "Enqueuer",
    "JobContext",
    "JobRequest",
    "JobSpec",
    "JobState",
    "MigrationContext",
    "NoArgs",
    "OneTimeMigration",
    "Registry",
    "RetryPolicy",
    "UnknownJob",
]
