"""Moving one batch of a table from the source to the target: the source's binary COPY output is
piped, chunk by chunk, into a binary COPY on the target, so no row is ever decoded in Python and
memory holds a few chunks, whatever the batch size. The batch lands in a temporary staging table
and is inserted from there, so rows already present (a resumed run) are skipped, not fatal.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg

from addicted_jobs.importer.source import TableMap

_PIPE_CHUNKS = 32  # chunks in flight between the two connections (each a few KiB)


def quote(name: str) -> str:
    """A PostgreSQL identifier, quoted (the source's names are PascalCase)."""
    return '"' + name.replace('"', '""') + '"'


def stage_name(table: TableMap) -> str:
    return f"import_stage_{table.target}"


async def target_types(conn: asyncpg.Connection, table: TableMap) -> list[str]:
    """Our column types for `table`, in its column order: the source casts to them, so the two
    binary COPY streams agree even where the original used another width (int vs bigint)."""
    rows = await conn.fetch(
        """SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type
           FROM pg_attribute a WHERE a.attrelid = $1::regclass AND a.attnum > 0
             AND NOT a.attisdropped""",
        table.target,
    )
    types = {r["attname"]: r["type"] for r in rows}
    return [types[column] for column in table.target_columns]


async def create_stage(conn: asyncpg.Connection, table: TableMap) -> None:
    """A temporary table shaped like the batch, emptied at every commit."""
    columns = ", ".join(table.target_columns)
    await conn.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {stage_name(table)} ON COMMIT DELETE ROWS AS "
        f"SELECT {columns} FROM {table.target} WITH NO DATA"
    )


def batch_query(
    table: TableMap, types: list[str], after: int, until: int | None, limit: int
) -> str:
    """The source SELECT of the `limit` rows after id `after` (up to `until`, if given), cast to
    our types. COPY takes no parameters; the numbers are ints formatted by us."""
    exprs = ", ".join(
        f"{quote(src)}::{typ}" for src, typ in zip(table.source_columns, types, strict=True)
    )
    bound = "" if until is None else f" AND {quote('Id')} <= {int(until)}"
    return (
        f"SELECT {exprs} FROM {quote(table.source)} WHERE {quote('Id')} > {int(after)}{bound} "
        f"ORDER BY {quote('Id')} LIMIT {int(limit)}"
    )


@dataclass(frozen=True)
class Batch:
    """What one batch did: rows read from the source, rows inserted, the last source id."""

    read: int
    inserted: int
    last_id: int


async def pipe(
    source: asyncpg.Connection,
    target: asyncpg.Connection,
    query: str,
    into: str,
    columns: list[str] | None = None,
) -> int:
    """Stream `COPY (query) TO STDOUT` on the source into `COPY into FROM STDIN` on the target;
    the rows copied. If the target refuses, the source's COPY still runs to its end: cancelling
    it would abort the source's snapshot transaction, which later batches read from."""
    chunks: asyncio.Queue[bytes | None] = asyncio.Queue(_PIPE_CHUNKS)

    async def produce() -> None:
        try:
            await source.copy_from_query(query, output=chunks.put, format="binary")
        finally:
            await chunks.put(None)

    ended = False

    async def stream() -> AsyncIterator[bytes]:
        nonlocal ended
        while (chunk := await chunks.get()) is not None:
            yield chunk
        ended = True

    producer = asyncio.create_task(produce())
    try:
        status = await target.copy_to_table(into, source=stream(), columns=columns, format="binary")
    except BaseException:
        # The target may refuse only at the end of the stream (asyncpg reads the error then).
        while not ended and await chunks.get() is not None:
            pass
        await producer
        raise
    await producer
    return _count(status)


# What a target may refuse in a batch: then the batch goes through the stage, which skips them.
_REFUSALS = (
    asyncpg.UniqueViolationError,
    asyncpg.ForeignKeyViolationError,
    asyncpg.ExclusionViolationError,
    asyncpg.CheckViolationError,
)


async def copy_batch(
    source: asyncpg.Connection,
    target: asyncpg.Connection,
    table: TableMap,
    types: list[str],
    after: int,
    until: int | None,
    limit: int,
) -> Batch:
    """Copy the next batch inside the caller's target transaction. Straight into the table
    first (a fresh import refuses nothing); if the target refuses a row, the batch is read again
    into the stage and inserted where no row with its id or natural key exists yet and its
    parent row does."""
    query = batch_query(table, types, after, until, limit)
    try:
        async with target.transaction():  # a savepoint: a refusal undoes only this attempt
            read = await pipe(source, target, query, table.target, table.target_columns)
    except _REFUSALS:
        return await _copy_staged(source, target, table, query, after)
    if not read:
        return Batch(0, 0, after)
    # The batch's last id, from the source's own index (in the snapshot, the same rows).
    last = await source.fetchval(
        f"""SELECT max(i) FROM (SELECT "Id" AS i FROM {quote(table.source)}
               WHERE "Id" > $1 AND ($2::bigint IS NULL OR "Id" <= $2) ORDER BY "Id" LIMIT $3) b""",
        after,
        until,
        read,
    )
    return Batch(read, read, int(last))


async def _copy_staged(
    source: asyncpg.Connection,
    target: asyncpg.Connection,
    table: TableMap,
    query: str,
    after: int,
) -> Batch:
    stage = stage_name(table)
    await pipe(source, target, query, stage)
    staged = await target.fetchrow(f"SELECT count(*), max(id) FROM {stage}")
    assert staged is not None  # an aggregate always returns its one row
    read, last = staged
    if not read:
        return Batch(0, 0, after)
    inserted = await _insert_staged(target, table, stage)
    return Batch(int(read), inserted, int(last))


async def _insert_staged(target: asyncpg.Connection, table: TableMap, stage: str) -> int:
    """Rows inserted from the stage. The foreign key already checks every parent, so the parent
    filter (a second lookup per row) runs only for a batch the key refused, in a savepoint."""
    columns = ", ".join(table.target_columns)
    insert = f"INSERT INTO {table.target} ({columns}) SELECT {columns} FROM {stage} s"
    if table.accepts is not None:
        insert += f" WHERE {table.accepts}"
    if table.parent is None:
        return _count(await target.execute(f"{insert} ON CONFLICT DO NOTHING"))
    try:
        async with target.transaction():
            return _count(await target.execute(f"{insert} ON CONFLICT DO NOTHING"))
    except asyncpg.ForeignKeyViolationError:
        parent, fk = table.parent
        joiner = "AND" if table.accepts is not None else "WHERE"
        exists = f"{joiner} EXISTS (SELECT 1 FROM {parent} p WHERE p.id = s.{fk})"
        return _count(await target.execute(f"{insert} {exists} ON CONFLICT DO NOTHING"))


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])  # "INSERT 0 n"


async def bump_sequence(target: asyncpg.Connection, table: str) -> None:
    """Move `table`'s id sequence past the copied ids, so rows the daemon creates later never
    take an id the original used (ids stay the original's, spec 9.1)."""
    seq = await target.fetchval("SELECT pg_get_serial_sequence($1, 'id')", table)
    if seq is None:
        return
    await target.execute(
        f"""SELECT setval($1::regclass, m) FROM (SELECT max(id) AS m FROM {table}) t
            WHERE m IS NOT NULL AND m >= (SELECT last_value FROM {seq})""",
        seq,
    )
