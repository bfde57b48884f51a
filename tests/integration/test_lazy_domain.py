"""The subtitle domain is wired at start (clients, store, job types, one-time migrations, socket
operations) but its handlers' modules load with the first job or request that needs them: the
catalogue's handlers, refresher, search and TMDB sync, the parsed upstream records and the page
parsers are ~25 ms of imports (of a ~0.45 s start-up) that a daemon draining engine jobs never
needs (issue 20). Checked in a fresh interpreter, against a real database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import asyncio, json, sys
import asyncpg, structlog
import addicted_jobs.cli, addicted_jobs.app
from addicted_jobs.db import _init_connection
from addicted_jobs.domain import Domain
from addicted_jobs.jobs import JobContext, Registry
from addicted_jobs.settings import load_settings

DEFERRED = (
    "addicted_jobs.tasks.catalogue_jobs", "addicted_jobs.catalog.refresh",
    "addicted_jobs.catalog.search", "addicted_jobs.catalog.tmdb_sync",
    "addicted_jobs.upstream.models", "addicted_jobs.upstream.addic7ed_html", "selectolax",
    "http.cookiejar",
)

class Enqueuer:
    async def enqueue(self, name, args=None, *, after=None, delay=None):
        raise AssertionError("nothing is enqueued here")

    async def enqueue_many(self, requests):
        raise AssertionError("nothing is enqueued here")

async def main():
    settings = load_settings(None)
    pool = await asyncpg.create_pool(settings.database.dsn, min_size=1, max_size=2,
                                     init=_init_connection)
    domain = await Domain.open(settings, pool)
    registry = Registry()
    domain.register_jobs(registry)
    migrations = domain.migrations()
    ops = domain.ops(Enqueuer())
    seen = {"wired": len(registry.specs) > 0 and len(migrations) > 0 and len(ops) > 0}
    seen["at_start"] = [m for m in DEFERRED if m in sys.modules]
    deferred = [s.name for s in registry.specs.values()
                if s.handler.__qualname__.startswith("register_catalogue_jobs.")]
    spec = registry.get("cleanup_empty_seasons")
    ctx = JobContext(1, spec.name, spec.queue, 1, 1, Enqueuer(), structlog.get_logger())
    with structlog.testing.capture_logs() as lines:
        await spec.handler(ctx, spec.parse({"show_id": 1}))
    seen["ran"] = [line["event"] for line in lines]
    seen["after_job"] = [m for m in DEFERRED if m in sys.modules]
    seen["deferred"] = sorted(deferred)
    seen["refresher_once"] = domain.resources.refresher is domain.resources.refresher
    await domain.close()
    await pool.close()
    print(json.dumps(seen))

asyncio.run(main())
"""


def test_the_domain_is_wired_at_start_and_its_handlers_load_with_their_first_job(
    db_dsn: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADDICTED_JOBS_")}
    env["ADDICTED_JOBS_DATABASE__DSN"] = db_dsn
    env["ADDICTED_JOBS_STATE__DIR"] = str(tmp_path)
    env["ADDICTED_JOBS_TMDB__API_KEY"] = "key"  # so the TMDB client is built too
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen["wired"]
    assert seen["at_start"] == []  # clients, store, specs, migrations and ops built: none loaded
    assert seen["ran"] == ["empty seasons deleted"]  # the handler ran, through its first load
    assert set(seen["after_job"]) >= {
        "addicted_jobs.tasks.catalogue_jobs",
        "addicted_jobs.catalog.refresh",
        "addicted_jobs.upstream.models",
    }
    assert "selectolax" not in seen["after_job"]  # no page was fetched: no parser yet
    assert seen["deferred"] == sorted(
        [
            "check_completed_tmdb",
            "clean_duplicate_tmdb",
            "cleanup_empty_seasons",
            "fetch_missing_tvdb_id",
            "fetch_subtitles",
            "map_show_tmdb",
            "refresh_available_shows",
            "refresh_single_show",
        ]
    )
    assert seen["refresher_once"]
