"""Copying one table: cut, at its first run, into stripes of "Id" ranges that lanes (a source
and a target connection each) copy side by side, batch after batch, each batch committed with its
stripe's progress row. The insert work is PostgreSQL's (indexes, foreign keys): two lanes keep two
backends busy where one would leave a core idle.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from addicted_jobs.importer.copy import bump_sequence, copy_batch, create_stage, quote, target_types
from addicted_jobs.importer.progress import Progress
from addicted_jobs.importer.source import TableMap


@dataclass
class Lane:
    """A source connection inside the import's snapshot and a target connection."""

    source: asyncpg.Connection
    target: asyncpg.Connection


# Opens one more lane whose source transaction imports the given snapshot (pg_export_snapshot).
LaneFactory = Callable[[str], Awaitable[Lane]]


@dataclass(frozen=True)
class Stripe:
    number: int
    last_id: int
    until_id: int | None


@dataclass
class TableReport:
    """One source table: its rows, those copied by this run, by earlier runs, and refused."""

    table: str
    source_rows: int
    copied: int = 0
    earlier: int = 0
    skipped: int = 0
    seconds: float = 0.0


async def load_stripes(target: asyncpg.Connection, table: TableMap) -> list[Stripe]:
    """The stripes an earlier run planned; none for a table not started (or a target not
    migrated yet, in a dry run)."""
    if await target.fetchval("SELECT to_regclass('addictedproxy_import')") is None:
        return []
    rows = await target.fetch(
        """SELECT stripe, last_id, until_id FROM addictedproxy_import
           WHERE source_table = $1 ORDER BY stripe""",
        table.source,
    )
    return [Stripe(r["stripe"], r["last_id"], r["until_id"]) for r in rows]


async def remaining(source: asyncpg.Connection, table: TableMap, stripes: list[Stripe]) -> int:
    """Source rows no batch has copied yet."""
    if not stripes:
        stripes = [Stripe(0, 0, None)]
    total = 0
    for s in stripes:
        total += await source.fetchval(
            f"""SELECT count(*) FROM {quote(table.source)}
                WHERE {quote("Id")} > $1 AND ($2::bigint IS NULL OR {quote("Id")} <= $2)""",
            s.last_id,
            s.until_id,
        )
    return total


async def plan_stripes(lane: Lane, table: TableMap, lanes: int, batch_size: int) -> list[Stripe]:
    """The stripes of an earlier run, else new ones: `lanes` equal id ranges when the table
    fills two batches or more, else one. The last stripe is unbounded, so rows the source gains
    later are copied by a later run."""
    stripes = await load_stripes(lane.target, table)
    if stripes:
        return stripes
    extent = await lane.source.fetchrow(
        f'SELECT min("Id"), max("Id"), count(*) FROM {quote(table.source)}'
    )
    assert extent is not None  # an aggregate always returns its one row
    low, high, count = extent
    if lanes < 2 or count < 2 * batch_size:
        cuts: list[int | None] = [0, None]
    else:
        span = high - low + 1
        cuts = [0, *(low - 1 + span * i // lanes for i in range(1, lanes)), None]
    await lane.target.executemany(
        """INSERT INTO addictedproxy_import (source_table, stripe, last_id, until_id)
           VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING""",
        [(table.source, i, cuts[i], cuts[i + 1]) for i in range(len(cuts) - 1)],
    )
    return await load_stripes(lane.target, table)


async def copy_table(
    lanes: list[Lane], table: TableMap, entry: TableReport, batch_size: int, progress: Progress
) -> None:
    """Copy what is left of `table`, stripes shared among `lanes`; then move its id sequence."""
    began = time.monotonic()
    stripes = await plan_stripes(lanes[0], table, len(lanes), batch_size)
    types = await target_types(lanes[0].target, table)
    for lane in lanes:
        await create_stage(lane.target, table)
    progress.start(table.source, entry.source_rows, entry.earlier)
    todo: asyncio.Queue[Stripe] = asyncio.Queue()
    for stripe in stripes:
        todo.put_nowait(stripe)

    async def work(lane: Lane) -> None:
        while not todo.empty():
            await _copy_stripe(lane, table, types, todo.get_nowait(), entry, batch_size, progress)

    async with asyncio.TaskGroup() as group:
        for lane in lanes[: len(stripes)]:
            group.create_task(work(lane))
    await bump_sequence(lanes[0].target, table.target)
    progress.finish()
    entry.seconds = time.monotonic() - began


async def _copy_stripe(
    lane: Lane,
    table: TableMap,
    types: list[str],
    stripe: Stripe,
    entry: TableReport,
    batch_size: int,
    progress: Progress,
) -> None:
    last_id = stripe.last_id
    while True:
        async with lane.target.transaction():
            batch = await copy_batch(
                lane.source, lane.target, table, types, last_id, stripe.until_id, batch_size
            )
            if not batch.read:
                return
            refused = batch.read - batch.inserted
            await lane.target.execute(
                """UPDATE addictedproxy_import SET last_id = $3, copied = copied + $4,
                          skipped = skipped + $5, updated_at = now()
                   WHERE source_table = $1 AND stripe = $2""",
                table.source,
                stripe.number,
                batch.last_id,
                batch.inserted,
                refused,
            )
        last_id = batch.last_id
        entry.copied += batch.inserted
        entry.skipped += refused
        progress.advance(batch.read)
