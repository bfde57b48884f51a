"""The engine's face, addicted_jobs.jobs: what the domain imports, and cheap for the CLI to load."""

from __future__ import annotations

import subprocess
import sys

import addicted_jobs.jobs as face


def test_the_face_names_what_the_domain_declares_jobs_and_migrations_with() -> None:
    for name in ("JobSpec", "Registry", "NoArgs", "RetryPolicy", "JobContext", "JobRequest"):
        assert name in face.__all__
    for name in ("JobState", "TERMINAL", "EnqueueResult", "OneTimeMigration", "MigrationContext"):
        assert name in face.__all__
    assert all(hasattr(face, name) for name in face.__all__)


def test_importing_the_face_loads_no_database_driver_nor_the_engine() -> None:
    # control/protocol.py (and so every CLI command) imports JobState from here.
    probe = (
        "import sys, addicted_jobs.jobs; "
        "print(sorted(m for m in ('asyncpg', 'structlog', 'addicted_jobs.jobs.engine', "
        "'addicted_jobs.jobs.store', 'addicted_jobs.db') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_the_state_sets_split_the_seven_states() -> None:
    assert len(face.STATES) == 7
    assert face.TERMINAL | face.ACTIVE == set(face.STATES)
    assert not face.TERMINAL & face.ACTIVE
    assert face.WAITING <= face.ACTIVE
