"""`addicted-jobs run` and the cyclic garbage collector: off while the daemon is imported and
built, then on, with what exists by then frozen (cli/daemon.py cmd_run, app.run_daemon)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# The daemon is built for real (settings, registry, job modules), but App.run is replaced: no
# database is needed to see what the collector was doing at each point.
SCRIPT = """
import gc, json, sys
import addicted_jobs.app as app

seen = {}
built = app.App.__init__

def init(self, *args, **kwargs):
    built(self, *args, **kwargs)
    seen["enabled_while_built"] = gc.isenabled()

async def run(self):
    seen["enabled_while_running"] = gc.isenabled()
    seen["frozen"] = gc.get_freeze_count()
    return 0

app.App.__init__ = init
app.App.run = run
gc.enable()  # as any caller leaves it
from addicted_jobs.cli import main
seen["exit"] = main(["run"])
print(json.dumps(seen))
"""


def test_run_builds_the_daemon_without_the_collector_then_freezes_what_it_built(
    tmp_path: Path,
) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ADDICTED_JOBS_")},
        "ADDICTED_JOBS_STATE__DIR": str(tmp_path),
        "ADDICTED_JOBS_DATABASE__DSN": "postgresql://nobody@127.0.0.1:1/none",
    }
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen["exit"] == 0
    # Off while the daemon's objects are made: the collector would walk them again and again
    # and find no garbage.
    assert seen["enabled_while_built"] is False
    # On again for the daemon's life (a collector left off would leak every reference cycle),
    # with the imported code frozen out of its full collections (~87,000 objects).
    assert seen["enabled_while_running"] is True
    assert seen["frozen"] > 50_000
