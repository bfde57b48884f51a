"""The one vocabulary of job states (migrations/001's CHECK spells the same seven). No imports
beyond typing: the command line reads it through the engine's face without loading the engine.
"""

from __future__ import annotations

from typing import Literal, get_args

JobState = Literal["awaiting", "scheduled", "ready", "running", "succeeded", "failed", "deleted"]

# In the order a job moves through them; `queues` counts and the socket's filters list them so.
STATES: tuple[JobState, ...] = get_args(JobState)
# A run ended for good: only an operator's retry brings the job back (jobs.finish in 001 agrees).
TERMINAL: frozenset[JobState] = frozenset(("succeeded", "failed", "deleted"))
# Claimable now or later without anyone's help.
WAITING: frozenset[JobState] = frozenset(("ready", "scheduled"))
ACTIVE: frozenset[JobState] = frozenset(STATES) - TERMINAL
