"""`addicted-jobs run` and the cyclic garbage collector: off while the daemon is imported and
built, then on, with what exists by then frozen (cli/daemon.py cmd_run, app.run_daemon)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# `main(["run"])` in a fresh interpreter, with gc.disable wrapped to see whether the daemon's code
# was already imported when the collector went off.
SCRIPT = """
import gc, json, sys

seen = {}
disable = gc.disable

def recording_disable():
    seen["app_imported_before_disable"] = "addicted_jobs.app" in sys.modules
    disable()

gc.disable = recording_disable
from addicted_jobs.cli import main

seen["exit"] = main(["run"])
seen["enabled_after_run"] = gc.isenabled()
print(json.dumps(seen))
"""

# Loaded by the daemon as a job module while App() is built (`[engine] job_modules`): it records
# the collector's state at that point and replaces App.run, so no database is needed.
PROBE = """
import gc, sys

import addicted_jobs.app as app


def register(registry):
    seen = sys.modules["__main__"].seen
    seen["enabled_while_built"] = gc.isenabled()

    async def run(self):
        seen["enabled_while_running"] = gc.isenabled()
        seen["frozen"] = gc.get_freeze_count()
        return 0

    app.App.run = run
"""


def _run(script: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """`script` in a fresh interpreter, with no ADDICTED_JOBS_* from this environment but
    `extra` (environment variables: ADDICTED_JOBS_* settings, PYTHONPATH)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADDICTED_JOBS_")}
    return subprocess.run(
        [sys.executable, "-c", script],
        env={**env, **extra},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_run_imports_and_builds_the_daemon_without_the_collector_then_freezes_it(
    tmp_path: Path,
) -> None:
    (tmp_path / "collector_probe.py").write_text(PROBE)
    done = _run(
        SCRIPT,
        PYTHONPATH=os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])),
        ADDICTED_JOBS_STATE__DIR=str(tmp_path / "state"),
        ADDICTED_JOBS_DATABASE__DSN="postgresql://nobody@127.0.0.1:1/none",
        ADDICTED_JOBS_ENGINE__JOB_MODULES='["collector_probe"]',
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen["exit"] == 0
    # Off before the daemon's modules are imported and while its objects are made: the collector
    # would walk them again and again and find no garbage.
    assert seen["app_imported_before_disable"] is False
    assert seen["enabled_while_built"] is False
    # On again for the daemon's life (a collector left off would leak every reference cycle),
    # with the imported code frozen out of its full collections (~87,000 objects).
    assert seen["enabled_while_running"] is True
    assert seen["frozen"] > 50_000
    assert seen["enabled_after_run"] is True


def test_run_turns_the_collector_back_on_when_the_configuration_is_refused(
    tmp_path: Path,
) -> None:
    # `run` called in-process (a test, an embedding program) with a bad setting returns 78
    # before the daemon is built: the caller's collector must not stay off.
    script = "import gc\nfrom addicted_jobs.cli import main\nprint(main(['run']), gc.isenabled())\n"
    done = _run(script, ADDICTED_JOBS_STATE__DIR=str(tmp_path), ADDICTED_JOBS_LOG__LEVEL="chatty")
    assert done.stdout.split() == ["78", "True"], done.stderr
    assert "log" in done.stderr and "level" in done.stderr  # the refusal names the setting
