"""What `addicted-jobs run` leaves for later while it imports the daemon: the pydantic models of
jobs' and socket operations' arguments and the adapters of TMDB's records build their
validators on first use (pydantic's `defer_build`, a cached adapter), not before the first job.
Built at import, they cost ~35 ms of CPU of every start (interleaved A/B of the import, issue
20). The settings, read at once, are the only models built by then."""

from __future__ import annotations

import json
import os
import subprocess
import sys

# In a fresh interpreter: import what `run` imports, list the daemon's models and which are built,
# then use a deferred model and an adapter for the first time and report what they returned.
SCRIPT = """
import json
import addicted_jobs.cli, addicted_jobs.app
from pydantic import BaseModel, ValidationError
from addicted_jobs.control.protocol import JobIdArgs
from addicted_jobs.jobs.spec import NOOP
from addicted_jobs.upstream import tmdb
from addicted_jobs.upstream.models import TmdbExternalIds

def every(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from every(sub)

ours = {m for m in every(BaseModel) if m.__module__.startswith("addicted_jobs.")}
seen = {
    "ours": sorted(f"{m.__module__}.{m.__qualname__}" for m in ours),
    "built": sorted(
        f"{m.__module__}.{m.__qualname__}" for m in ours if m.__dict__.get("__pydantic_complete__")
    ),
    "adapters_built": tmdb._adapter.cache_info().currsize,
}
seen["job_id"] = JobIdArgs.model_validate({"id": 7}).id
try:
    JobIdArgs.model_validate({"id": 0, "extra": 1})
except ValidationError as exc:
    seen["refused"] = sorted(str(e["loc"][0]) for e in exc.errors())
seen["noop_sleep_ms"] = NOOP.parse({"sleep_ms": 5}).sleep_ms  # the engine's path (JobSpec.parse)
ids = tmdb._adapter(TmdbExternalIds).validate_python({"id": 3, "tvdb_id": 9, "other": "x"})
seen["tvdb_id"] = ids.tvdb_id
# Deferred, a model that cannot be built (a bad constraint, an unresolvable annotation) would
# fail only at its first use, in a job or a request: every one is built here instead.
unbuildable = []
for model in sorted(ours, key=lambda m: f"{m.__module__}.{m.__qualname__}"):
    try:
        model.model_rebuild(force=True)
    except Exception as exc:
        unbuildable.append(f"{model.__module__}.{model.__qualname__}: {exc}")
seen["unbuildable"] = unbuildable
print(json.dumps(seen))
"""


def test_importing_the_daemon_builds_only_the_settings_and_the_rest_builds_on_first_use() -> None:
    # Also: every deferred model can be built (else it would fail at its first use only).
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADDICTED_JOBS_")}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    # The import did load the argument models: the check on what is built is not vacuous.
    assert "addicted_jobs.control.protocol.EnqueueArgs" in seen["ours"]
    assert "addicted_jobs.jobs.spec.NoopArgs" in seen["ours"]
    assert [name for name in seen["built"] if not name.startswith("addicted_jobs.settings.")] == []
    assert seen["adapters_built"] == 0
    # First use builds them, and they accept and refuse as before.
    assert seen["job_id"] == 7
    assert seen["refused"] == ["extra", "id"]
    assert seen["noop_sleep_ms"] == 5
    assert seen["tvdb_id"] == 9
    assert seen["unbuildable"] == []
