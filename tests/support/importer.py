"""The AddictedProxy import run in the test's own process, as the command runs it."""

from __future__ import annotations

import io

import asyncpg

from addicted_jobs.importer.progress import Progress
from addicted_jobs.importer.run import ImportReport, import_addictedproxy, open_lane_source
from addicted_jobs.importer.table import Lane


async def run_import(
    source_dsn: str, target_dsn: str, *, lanes: int = 2, **options: object
) -> ImportReport:
    """The import in this process, as the command runs it: `lanes` connection pairs."""

    async def more_lanes(snapshot: str) -> Lane:
        return Lane(await open_lane_source(source_dsn, snapshot), await asyncpg.connect(target_dsn))

    source, target = await asyncpg.connect(source_dsn), await asyncpg.connect(target_dsn)
    try:
        progress = Progress(io.StringIO(), bar=False)
        return await import_addictedproxy(
            source,
            target,
            progress=progress,
            more_lanes=more_lanes,
            lanes=lanes,
            **options,  # type: ignore[arg-type]
        )
    finally:
        await source.close()
        await target.close()
