"""All SQL of the engine: enqueue (unique, delayed, continuation), claim, finish, recover, prune,
the read side the control socket shows, recurring entries and their fired slots, and the record
of one-time migrations. Nothing else in the project reads or writes schema `jobs` or table
onetime_migrations; the last section holds the SQL of several daemons on one database (issue 19).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from addicted_jobs.db import CAP_NAMESPACE, LOCK_NAMESPACE, REAPER_LOCK, Conn, Executor
from addicted_jobs.jobs.context import EnqueueResult
from addicted_jobs.jobs.states import STATES, TERMINAL, JobState


class ParentNotFound(LookupError):
    def __init__(self, parent_id: int) -> None:
        self.parent_id = parent_id
        super().__init__(f"no job {parent_id} to continue after")


class ParentLocked(RuntimeError):
    """Another session held a parent's row locked longer than CLIENT_LOCK_TIMEOUT_S: the enqueue
    gave up instead of holding a pooled connection while it waits (issue 14)."""

    def __init__(self, parent_ids: list[int]) -> None:
        self.parent_ids = parent_ids
        super().__init__(
            f"job {', '.join(map(str, parent_ids))} is locked by another session (waited "
            f"{CLIENT_LOCK_TIMEOUT_S:g} s for it); nothing was enqueued, try again"
        )


# The longest a statement waits on a row lock on behalf of a client (issue 14): `after=` takes
# the parent FOR SHARE, a unique key waits for another session's insert of the same key, retry,
# cancel and delete take the job FOR UPDATE. A row an operator holds would otherwise keep the
# connection of every such request. Set with set_config(..., true): it lasts for the transaction
# (or the savepoint, when the caller's transaction is open) that does the client's work.
CLIENT_LOCK_TIMEOUT_S = 2.0
_LOCK_TIMEOUT = (
    "SELECT current_setting('lock_timeout'),"
    f" set_config('lock_timeout', '{int(CLIENT_LOCK_TIMEOUT_S * 1000)}ms', true)"
)


async def _bound_lock_waits(conn: Conn) -> str:
    """Bound row-lock waits for the rest of the open transaction; returns the previous value."""
    previous: str = await conn.fetchval(_LOCK_TIMEOUT)
    return previous


@dataclass(frozen=True)
class NewJob:
    name: str
    queue: str
    args: dict[str, Any]
    max_attempts: int
    delay: float | None = None
    after: int | None = None
    unique_key: str | None = None
    unique_ttl: float | None = None


# Claimed and Outcome are made once per job (Outcome's fields also go to jobs.finish as columns):
# immutable tuples, made ~0.6 us faster each than frozen dataclasses, whose __init__ sets every
# field through object.__setattr__.
class Claimed(NamedTuple):
    """A job this daemon claimed, as the claim returned it."""

    id: int
    name: str
    args: dict[str, Any]
    attempt: int
    max_attempts: int
    claims: int = 0  # the fencing token of this run (jobs.claims after the claim)


class Outcome(NamedTuple):
    """The end of one run; `refund` gives the attempt back (shutdown, not the job's fault).

    `claims` is the fencing token the claim returned: the outcome is written only while the row
    is still that run's (see migrations/007_finish_skip_locked.sql)."""

    id: int
    claims: int
    state: JobState
    run_at: datetime | None = None
    error: str | None = None
    refund: int = 0
    # Issue 17, for the run's record (jobs.attempts): the runner's outcome label (succeeded,
    # skipped, retry, failed, deleted, cancelled, interrupted, returned) and the seconds it ran.
    outcome: str | None = None
    duration_s: float | None = None


# The rows of a batch reach both statements below as columns zipped by ROWS FROM. The strings and
# the arguments go as jsonb arrays (jsonb_array_elements[_text]), not as text[] and jsonb[]:
# asyncpg encodes an array one element at a time, a jsonb[] through the Python codec (91 ms of
# client CPU for 20,000 empty dicts, against 1 ms for one jsonb array) and a text[] after two
# isinstance checks per element (14 ms per 20,000 strings, against under 1 ms as JSON). A JSON
# null is an SQL NULL here, as None is in an array. Numbers stay arrays of their own type, so
# the server parses them as before (measured issue 20).
_COLUMNS = """jsonb_array_elements_text($1::jsonb), jsonb_array_elements_text($2::jsonb),
                    jsonb_array_elements($3::jsonb), unnest($4::int[]), unnest($5::float8[])"""

_ENQUEUE = f"""
WITH input AS (
    SELECT t.*, nextval(pg_get_serial_sequence('jobs.jobs', 'id')) AS new_id
    FROM ROWS FROM ({_COLUMNS},
                    unnest($6::bigint[]), jsonb_array_elements_text($7::jsonb), unnest($8::float8[]))
         WITH ORDINALITY AS t(name, queue, args, max_attempts, delay_s, after_id, unique_key, ttl_s, ord)
), parents AS (
    SELECT id, state FROM jobs.jobs
    WHERE id IN (SELECT after_id FROM input WHERE after_id IS NOT NULL)
    FOR SHARE
), rows AS (
    SELECT i.*, p.id AS parent_found,
           CASE WHEN i.after_id IS NULL THEN
                     CASE WHEN coalesce(i.delay_s, 0) > 0 THEN 'scheduled' ELSE 'ready' END
                WHEN p.state = 'succeeded' THEN 'ready'
                WHEN p.state = 'deleted' THEN 'deleted'
                ELSE 'awaiting' END AS new_state
    FROM input i LEFT JOIN parents p ON p.id = i.after_id
), ins AS (
    INSERT INTO jobs.jobs (id, name, queue, args, state, max_attempts, run_at, parent_id,
                           unique_key, unique_until, finished_at)
    SELECT r.new_id, r.name, r.queue, r.args, r.new_state, r.max_attempts,
           now() + make_interval(secs => coalesce(r.delay_s, 0)), r.after_id,
           CASE WHEN r.new_state <> 'deleted' THEN r.unique_key END,
           CASE WHEN r.new_state <> 'deleted' AND r.unique_key IS NOT NULL
                THEN now() + make_interval(secs => r.ttl_s) END,
           CASE WHEN r.new_state = 'deleted' THEN now() END
    FROM rows r
    WHERE r.after_id IS NULL OR r.parent_found IS NOT NULL
    ORDER BY r.ord
    ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL DO NOTHING
    RETURNING id, state
)
SELECT r.ord, r.new_id, ins.id IS NOT NULL AS created, ins.state,
       (r.after_id IS NOT NULL AND r.parent_found IS NULL) AS missing_parent,
       e.id AS existing_id, e.state AS existing_state, e.unique_until <= now() AS existing_expired
FROM rows r
LEFT JOIN ins ON ins.id = r.new_id
LEFT JOIN jobs.jobs e ON ins.id IS NULL AND r.unique_key IS NOT NULL AND e.unique_key = r.unique_key
ORDER BY r.ord
"""

_EXPIRE_KEYS = """
UPDATE jobs.jobs SET unique_key = NULL, unique_until = NULL
WHERE unique_key = ANY ($1::text[]) AND unique_until <= now()
"""


def _columns(jobs: Sequence[NewJob]) -> list[Any]:
    """The first five parameters of both statements ($1-$5 of _COLUMNS)."""
    return [
        [j.name for j in jobs],
        [j.queue for j in jobs],
        [j.args for j in jobs],
        [j.max_attempts for j in jobs],
        [j.delay for j in jobs],
    ]


async def _enqueue_pass(conn: Executor, jobs: Sequence[NewJob]) -> list[asyncpg.Record]:
    return await conn.fetch(
        _ENQUEUE,
        *_columns(jobs),
        [j.after for j in jobs],
        [j.unique_key for j in jobs],
        [j.unique_ttl for j in jobs],
    )


# The plain batch (issue 20): no job with a parent or a unique key, so no parent to lock, no
# conflict to resolve and no duplicate to look up. On 20,000 no-op jobs in one call, _ENQUEUE
# spent about 410 ms in the server (EXPLAIN ANALYZE): 53 ms JIT compilation, set off on a
# connection with jit on by its joins' estimate of 2,000,000 rows; ON CONFLICT makes every row a
# speculative insertion; the join back to `ins` sorts twice. In the peers' harness bulk phase
# (2 cores, PostgreSQL 15, 7 interleaved rounds, medians) this statement and the columns above
# took PostgreSQL CPU from 29 to 11.5 us per job, the client's from 12 to 4, and 23,905 to
# 62,095 jobs/s (graphile-worker 32,251, pgqueuer 28,273 in the same rounds). What is left is
# mostly index maintenance: jobs_claim_by_name alone is about half of the server's time.
# - The ids come from the identity default, evaluated as the function scan yields the rows, so
#   they increase in input order (nextval only grows); RETURNING's order is not relied on, the
#   caller sorts by id.
# - One row of two arrays comes back instead of 20,000 records (21 ms of decoding saved).
# - The counters and the wake-up are the statement triggers (migrations/001 and 041), as for
#   every insert.
_ENQUEUE_PLAIN = f"""
WITH ins AS (
    INSERT INTO jobs.jobs (name, queue, args, state, max_attempts, run_at)
    SELECT t.name, t.queue, t.args,
           CASE WHEN coalesce(t.delay_s, 0) > 0 THEN 'scheduled' ELSE 'ready' END,
           t.max_attempts, now() + make_interval(secs => coalesce(t.delay_s, 0))
    FROM ROWS FROM ({_COLUMNS}) AS t(name, queue, args, max_attempts, delay_s)
    RETURNING id, state
)
SELECT array_agg(id) AS ids, array_agg(state) AS states FROM ins
"""


async def _enqueue_plain(db: Executor, columns: list[Any]) -> list[EnqueueResult]:
    row = await db.fetchrow(_ENQUEUE_PLAIN, *columns)
    assert row is not None  # an aggregate without GROUP BY returns one row
    created = sorted(zip(row["ids"], row["states"], strict=True))
    return [EnqueueResult(job_id, True, state) for job_id, state in created]


async def enqueue(db: Executor, jobs: Sequence[NewJob]) -> list[EnqueueResult]:
    """Insert jobs in one statement; a live duplicate returns the existing id with created=False.

    Missing parents raise ParentNotFound and insert nothing. An expired unique key is cleared and
    the insert tried again, so only a live key ever blocks.
    """
    if not jobs:
        return []
    # Plain inserts wait on no row lock, so one statement needs no transaction; a parent or a
    # unique key may wait (CLIENT_LOCK_TIMEOUT_S). Lists counted in C: a generator over 20,000
    # jobs took 9 ms.
    n = len(jobs)
    if [j.after for j in jobs].count(None) == n and [j.unique_key for j in jobs].count(None) == n:
        return await _enqueue_plain(db, _columns(jobs))
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            return await _enqueue_in(conn, jobs)
    return await _enqueue_in(db, jobs)


async def _enqueue_in(conn: Conn, jobs: Sequence[NewJob]) -> list[EnqueueResult]:
    nested = conn.is_in_transaction()
    parents = sorted({j.after for j in jobs if j.after is not None})
    try:
        # Our own transaction, or a savepoint in the caller's: a lock timeout undoes only the
        # enqueue, and rolling the savepoint back restores the caller's lock_timeout.
        async with conn.transaction():
            previous = await _bound_lock_waits(conn)
            results = await _enqueue_loop(conn, jobs)
            if nested:
                await conn.execute("SELECT set_config('lock_timeout', $1, true)", previous)
            return results
    except asyncpg.exceptions.LockNotAvailableError:
        if not parents:
            raise  # a unique key another session is inserting: the socket says unavailable
        raise ParentLocked(parents) from None


async def _enqueue_loop(conn: Conn, jobs: Sequence[NewJob]) -> list[EnqueueResult]:
    results: list[EnqueueResult | None] = [None] * len(jobs)
    pending = list(range(len(jobs)))
    for _ in range(6):
        rows = await _enqueue_pass(conn, [jobs[i] for i in pending])
        retry: list[int] = []
        expired: list[str] = []
        first_by_key: dict[str, int] = {}
        for row in rows:
            index = pending[row["ord"] - 1]
            job = jobs[index]
            if row["missing_parent"]:
                raise ParentNotFound(job.after or 0)
            if row["created"]:
                results[index] = EnqueueResult(row["new_id"], True, row["state"])
                if job.unique_key:
                    first_by_key.setdefault(job.unique_key, index)
            elif row["existing_id"] is not None and not row["existing_expired"]:
                results[index] = EnqueueResult(row["existing_id"], False, row["existing_state"])
            elif row["existing_expired"]:
                expired.append(job.unique_key or "")
                retry.append(index)
            else:
                retry.append(index)
        # A duplicate of a key created earlier in this same batch points at that job.
        still: list[int] = []
        for index in retry:
            key = jobs[index].unique_key
            first = first_by_key.get(key) if key else None
            if first is not None and key not in expired:
                created = results[first]
                assert created is not None
                results[index] = EnqueueResult(created.id, False, created.state)
            else:
                still.append(index)
        if expired:
            await conn.execute(_EXPIRE_KEYS, expired)
        if not still:
            break
        pending = still
    else:
        raise RuntimeError("unique key contention did not settle after 6 passes")
    return [r for r in results if r is not None]


# The job types with ready or scheduled jobs in queue $1: a skip scan of jobs_claim_by_name, one
# index descent per type. Claiming and the next due time then read each type's head of the same
# index. A scan of the whole queue in run_at order that filtered types out instead would read
# every queued job of a type at its cap, on each claim (36 ms per claim with 100,000 queued).
_QUEUE_TYPES = """
names AS (
    (SELECT name FROM jobs.jobs WHERE queue = $1 AND state IN ('ready', 'scheduled')
     ORDER BY name LIMIT 1)
    UNION ALL
    SELECT (SELECT j.name FROM jobs.jobs j
            WHERE j.queue = $1 AND j.state IN ('ready', 'scheduled') AND j.name > n.name
            ORDER BY j.name LIMIT 1)
    FROM names n WHERE n.name IS NOT NULL
)"""

# The oldest due jobs of each type, up to the limit or, for a capped type, its room; of those the
# oldest $3. Candidates are read without locks: only the picked rows are locked (skipping any an
# operator holds) and re-checked.
# The lock and the update find rows by primary key only, whatever statistics the planner has
# (issue 14): given `state IN (...)` or `run_at <= now()` there, the planner may serve them from
# the partial index jobs_claim_by_name, walking the whole due backlog on run_at and filtering on
# id (30,000 rows read to claim 100 after ANALYZE on an empty queue). So the locking scan names no
# column but id, `locked` is materialised so the re-check cannot be pushed into it, and the
# re-check reads the values the lock returned (the current row version) instead of the table.
# The id lists go through arrays so the plan stays on the primary key whatever the prepared
# statement's generic plan guesses for LIMIT $3.
# ---- lower bounds (issue 14, part 2) ----
# Each type's scan starts at a lower bound (low_run_at, low_id), a row comparison the planner
# uses as an index condition: while another session holds a snapshot, vacuum may not remove the
# dead entries that claimed and finished jobs leave at the head of jobs_claim_by_name, and an
# unbounded scan walks them all (20 ms for an empty queue after 20,000 jobs, growing with each
# drain). `lows` returns, per type scanned with room, the bound its next scan may start at: its
# lowest due candidate (locked ones included, so a row an operator holds is never skipped
# past), or (now(), 0) when none is due (every live row of the type is then scheduled later).
# A row that appears below a bound afterwards is an enqueue, a retry or a release committed
# since; those notify (or the engine wrote them), and the engine drops the queue's bounds then
# (dispatcher.Dispatcher.rewind); a periodic unbounded scan is the safety net for lost notifications.
_CLAIM_TAIL = """, candidates AS (
    SELECT n.name, c.id, c.run_at FROM types n
    CROSS JOIN LATERAL (
        SELECT id, run_at FROM jobs.jobs
        WHERE queue = $1 AND name = n.name AND state IN ('ready', 'scheduled') AND run_at <= now()
          AND (run_at, id) >= (n.low_run_at, n.low_id)
        ORDER BY run_at, id
        LIMIT n.room
    ) c
), lows AS MATERIALIZED (
    SELECT n.name, coalesce(m.run_at, now()) AS low_run_at, coalesce(m.id, 0) AS low_id
    FROM types n
    LEFT JOIN (SELECT DISTINCT ON (name) name, run_at, id FROM candidates
               ORDER BY name, run_at, id) m ON m.name = n.name
    WHERE n.room > 0
), locked AS MATERIALIZED (
    SELECT id, state, run_at FROM jobs.jobs
    WHERE id = ANY (ARRAY(SELECT id FROM candidates ORDER BY run_at, id LIMIT $3))
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE jobs.jobs j SET state = 'running', attempt = j.attempt + 1, claims = j.claims + 1,
                           started_at = now(),
                           node_id = {node}::bigint,  -- issue 19: the claiming node (NULL: none)
                           -- issue 17: who runs this attempt ("pid@host", db.SERVER_SETTINGS)
                           claimed_by = current_setting('daemon.runner', true)
    WHERE j.id = ANY (ARRAY(SELECT id FROM locked
                            WHERE state IN ('ready', 'scheduled') AND run_at <= now()))
    RETURNING j.id, j.name, j.args, j.attempt, j.max_attempts, j.claims, j.run_at
)
SELECT l.name, l.low_run_at, l.low_id, c.id, c.args, c.attempt, c.max_attempts, c.claims
FROM lows l LEFT JOIN claimed c ON c.name = l.name
ORDER BY c.run_at, c.id
"""

_ROOM = """coalesce((SELECT r.room FROM unnest($2::text[], $4::int[]) AS r(name, room)
                     WHERE r.name = {name}), $3)"""

# Unbounded: the types come from the skip scan ($1-$4); the periodic safety-net claim.
_CLAIM = f"""
WITH RECURSIVE {_QUEUE_TYPES}, types AS (
    SELECT n.name, '-infinity'::timestamptz AS low_run_at, 0::bigint AS low_id,
           {_ROOM.format(name="n.name")} AS room
    FROM names n WHERE n.name IS NOT NULL
){_CLAIM_TAIL.format(node="$5")}"""

# Bounded: the engine names the types and their bounds ($5-$7; a NULL bound is unbounded).
_CLAIM_BOUNDED = f"""
WITH types AS (
    SELECT t.name, coalesce(t.low_run_at, '-infinity') AS low_run_at,
           coalesce(t.low_id, 0) AS low_id, {_ROOM.format(name="t.name")} AS room
    FROM unnest($5::text[], $6::timestamptz[], $7::bigint[]) AS t(name, low_run_at, low_id)
){_CLAIM_TAIL.format(node="$8")}"""

Low = tuple[datetime, int]

# The claim commits durably (synchronous_commit stays on), although `SET LOCAL synchronous_commit
# = off` halved a trickle's start lag in bench/fairness.py (p50 5.0 -> 2.7 ms, p99 17.6 -> 13).
# Losing the claim's commit in a server crash would be harmless for the job itself (it is ready
# again and runs again: at-least-once, as after a daemon crash), but not for the fencing token:
# the lost commit had returned claims = n + 1 to a run that goes on, and the next claim of the
# row hands out n + 1 again. That run's late finish then matches the row and overwrites the
# newer run's outcome (releasing its continuations and unique key while it still runs) - the
# very thing the token exists to prevent (issue 14, part 3). A token that survives a lost commit
# would need a durable source, which costs the same flush.


async def warm_claims(db: Executor, queue: str) -> None:
    """Run both claim statements once on `db` (the claim pool) with a limit of 0, which locks and
    changes no row: the session then holds their prepared statements and generic plans, and the
    server has read jobs.jobs' catalogue entries. On a new connection the first claim took 13-22
    ms and the first bounded one ~3 ms more; after, 0.3-0.5 ms (measured on this 2-core box). The
    daemon runs it while the rest of its start-up goes on (engine.Engine.warm_up), so its first
    job does not wait for it. Raises what a claim raises (asyncpg errors, OSError)."""
    await claim_from(db, queue, 0)
    await claim_from(db, queue, 0, lows={})


async def claim_from(
    db: Executor,
    queue: str,
    limit: int,
    capped: Sequence[str] = (),
    rooms: dict[str, int] | None = None,
    lows: dict[str, Low | None] | None = None,
    node_id: int | None = None,
) -> tuple[list[Claimed], dict[str, Low]]:
    """Take up to `limit` due jobs of `queue`, oldest first; a capped type takes at most its room
    (a capped type missing from `rooms` has none).

    `lows` None scans for the queue's types from the start of the index; otherwise it names the
    types to look at, each from its lower bound (None: from the start). Returns the jobs and,
    per type scanned with room, the lower bound its next scan may start at (see _CLAIM_TAIL).
    `node_id` marks the rows as this cluster node's (issue 19; store.reap_dead_nodes recovers them
    when the node dies)."""
    rooms = rooms or {}
    names = list(capped)
    room = [max(rooms.get(name, 0), 0) for name in names]
    if lows is None:
        rows = await db.fetch(_CLAIM, queue, names, limit, room, node_id)
    else:
        types = list(lows)
        rows = await db.fetch(
            _CLAIM_BOUNDED,
            queue,
            names,
            limit,
            room,
            types,
            [lows[t][0] if lows[t] else None for t in types],  # type: ignore[index]
            [lows[t][1] if lows[t] else None for t in types],  # type: ignore[index]
            node_id,
        )
    claimed = [
        Claimed(r["id"], r["name"], r["args"], r["attempt"], r["max_attempts"], r["claims"])
        for r in rows
        if r["id"] is not None
    ]
    return claimed, {r["name"]: (r["low_run_at"], r["low_id"]) for r in rows}


async def claim(
    db: Executor,
    queue: str,
    limit: int,
    capped: Sequence[str] = (),
    rooms: dict[str, int] | None = None,
    node_id: int | None = None,
) -> list[Claimed]:
    """claim_from without bounds: the jobs only (`node_id` as claim_from takes it)."""
    return (await claim_from(db, queue, limit, capped, rooms, node_id=node_id))[0]


_NEXT_DUE = f"""
WITH RECURSIVE {_QUEUE_TYPES}
SELECT min(d.run_at) FROM names n
CROSS JOIN LATERAL (
    SELECT run_at FROM jobs.jobs
    WHERE queue = $1 AND name = n.name AND state IN ('ready', 'scheduled')
    ORDER BY run_at, id LIMIT 1
) d
WHERE n.name IS NOT NULL AND n.name <> ALL ($2::text[])
"""


_NEXT_DUE_BOUNDED = """
SELECT min(d.run_at)
FROM unnest($3::text[], $4::timestamptz[], $5::bigint[]) AS n(name, low_run_at, low_id)
CROSS JOIN LATERAL (
    SELECT run_at FROM jobs.jobs
    WHERE queue = $1 AND name = n.name AND state IN ('ready', 'scheduled')
      AND (run_at, id) >= (coalesce(n.low_run_at, '-infinity'), coalesce(n.low_id, 0))
    ORDER BY run_at, id LIMIT 1
) d
WHERE n.name <> ALL ($2::text[])
"""


async def next_due(
    db: Executor,
    queue: str,
    blocked: Sequence[str] = (),
    lows: dict[str, Low | None] | None = None,
) -> datetime | None:
    """When the next job of `queue` falls due, ignoring types that are at their cap; `lows` as
    claim_from takes them (each type's head is read from its bound)."""
    if lows is None:
        value: datetime | None = await db.fetchval(_NEXT_DUE, queue, list(blocked))
        return value
    types = list(lows)
    value = await db.fetchval(
        _NEXT_DUE_BOUNDED,
        queue,
        list(blocked),
        types,
        [lows[t][0] if lows[t] else None for t in types],  # type: ignore[index]
        [lows[t][1] if lows[t] else None for t in types],  # type: ignore[index]
    )
    return value


async def finish(db: Executor, outcomes: Sequence[Outcome]) -> list[int]:
    """Write a batch of outcomes; returns the ids whose rows another session holds locked, which
    were not written (write them again later). An outcome whose run is no longer the row's (not
    running, or claimed again since: another fencing token) is dropped."""
    if not outcomes:
        return []
    # The batch as columns, one per field of Outcome in order: the parameters of jobs.finish.
    columns = [list(column) for column in zip(*outcomes, strict=True)]
    busy: list[int] = await db.fetchval(
        "SELECT jobs.finish($1::bigint[], $2::int[], $3::text[], $4::timestamptz[], $5::text[],"
        " $6::int[], $7::text[], $8::float8[])",
        *columns,
    )
    return busy


# Issue 17: the runs a dead daemon left are recorded in the same statement (outcome `crashed`,
# refunded, the pid and host that claimed them); `running` reads the values the update replaces
# (due time, attempt). It runs at start, before any claim, so locking every running row is cheap.
_RECOVER = """
WITH running AS MATERIALIZED (
    SELECT id, run_at, attempt, claims, started_at, claimed_by FROM jobs.jobs
    WHERE state = 'running' FOR UPDATE
), recovered AS (
    UPDATE jobs.jobs j SET
        interruptions = j.interruptions + 1,
        attempt = greatest(j.attempt - 1, 0),
        state = CASE WHEN j.interruptions + 1 > $1 THEN 'failed' ELSE 'ready' END,
        run_at = now(),
        finished_at = CASE WHEN j.interruptions + 1 > $1 THEN now() END,
        last_error = CASE WHEN j.interruptions + 1 > $1
            THEN format('failed as poison: interrupted %s times by a daemon crash', j.interruptions + 1)
            ELSE j.last_error END,
        unique_key = CASE WHEN j.interruptions + 1 > $1 THEN NULL ELSE j.unique_key END,
        unique_until = CASE WHEN j.interruptions + 1 > $1 THEN NULL ELSE j.unique_until END
    FROM running r
    WHERE j.id = r.id AND j.state = 'running'
    RETURNING j.id, j.name, j.state, j.interruptions, j.last_error, r.run_at AS due_at, r.attempt,
              r.claims, r.started_at, r.claimed_by
), recorded AS (
    INSERT INTO jobs.attempts (job_id, attempt, counted, due_at, started_at, finished_at,
                               duration_s, outcome, state_after, error, refunded, pid, host)
    SELECT id, claims, attempt, due_at, coalesce(started_at, now()), now(), NULL, 'crashed', state,
           CASE WHEN state = 'failed' THEN last_error END, true,
           nullif(split_part(claimed_by, '@', 1), '')::int, nullif(split_part(claimed_by, '@', 2), '')
    FROM recovered
    ON CONFLICT DO NOTHING
)
SELECT id, name, state, interruptions FROM recovered
"""


@dataclass(frozen=True)
class Recovered:
    requeued: list[int] = field(default_factory=list)
    poisoned: list[int] = field(default_factory=list)


# Statements that may legitimately run long on a big table get this deadline instead of the
# engine pool's (addicted_jobs.pools.ENGINE_STATEMENT_TIMEOUT_S): recovery and each prune batch.
LONG_STATEMENT_S = 300.0


async def end_backend(db: Executor, pid: int, wait_s: float = 5.0) -> bool:
    """End the server session `pid` (a connection whose claim was lost) and wait up to `wait_s`
    for it to be gone, so whatever it was running has committed or rolled back for good. True
    when it is gone (or was already)."""
    # Only a session of ours on this database: after a server restart the pid may be another's.
    gone: bool = await db.fetchval(
        """SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1
                                    AND datname = current_database() AND usename = current_user)
                  THEN pg_terminate_backend($1, $2) ELSE true END""",
        pid,
        int(wait_s * 1000),
    )
    return gone


async def requeue_unknown(
    db: Executor, queue: str, known: Sequence[int], node_id: int | None = None
) -> list[int]:
    """Put `running` jobs of `queue` claimed by this daemon (`node_id`: its cluster node, None
    without clustering) that it does not know back to ready, their attempt refunded: what a claim
    whose reply was lost took (issue 14, part 3). Only this node's rows: another node's running
    jobs are unknown here too, and requeuing them ran them twice (issue 19). Only safe while this
    daemon holds the instance lock or its lease and no claim of `queue` is in flight on it; reads
    jobs_running."""
    rows = await db.fetch(
        """UPDATE jobs.jobs SET state = 'ready', attempt = greatest(attempt - 1, 0), run_at = now()
           WHERE queue = $1 AND state = 'running' AND id <> ALL ($2::bigint[])
             AND node_id IS NOT DISTINCT FROM $3::bigint
           RETURNING id""",
        queue,
        list(known),
        node_id,
    )
    return [r["id"] for r in rows]


async def recover(db: Executor, max_interruptions: int) -> Recovered:
    """Put jobs a dead daemon left running back to ready, without spending their attempt (past
    `max_interruptions` such crashes: failed as poison), and record each run so ended (outcome
    `crashed`, refunded) in jobs.attempts."""
    rows = await db.fetch(_RECOVER, max_interruptions, timeout=LONG_STATEMENT_S)
    return Recovered(
        [r["id"] for r in rows if r["state"] == "ready"],
        [r["id"] for r in rows if r["state"] == "failed"],
    )


# The oldest transaction of this database that holds a snapshot (backend_xmin), by the age of
# that snapshot: while it is open, vacuum may not remove the dead rows every claim and finish
# leaves behind, and each claim walks more dead index entries (issue 14). Other databases'
# sessions do not hold back this table's horizon; prepared transactions do.
_HORIZON_HOLDER = """
SELECT pid, state, application_name, client_addr::text AS client,
       extract(epoch FROM now() - coalesce(xact_start, backend_start))::float8 AS age_s,
       left(query, 200) AS query
FROM pg_stat_activity
WHERE datname = current_database() AND backend_xmin IS NOT NULL AND pid <> pg_backend_pid()
UNION ALL
SELECT NULL, 'prepared', gid, NULL, extract(epoch FROM now() - prepared)::float8, NULL
FROM pg_prepared_xacts WHERE database = current_database()
ORDER BY age_s DESC NULLS LAST LIMIT 1
"""


async def horizon_holder(db: Executor) -> dict[str, Any] | None:
    """The oldest open transaction holding back vacuum in this database: pid, state (`idle in
    transaction`, `active`, `prepared`), application_name, client, age_s (seconds since it
    began) and its current or last query (200 characters); None when there is none."""
    row = await db.fetchrow(_HORIZON_HOLDER)
    return dict(row) if row is not None else None


async def prune(db: Executor, older_than_days: float, batch: int = 5000) -> int:
    """Delete finished jobs past the retention, a batch at a time so no lock is held for long."""
    total = 0
    while True:
        status = await db.execute(
            """DELETE FROM jobs.jobs WHERE id IN (
                   SELECT id FROM jobs.jobs
                   WHERE state IN ('succeeded', 'failed', 'deleted')
                     AND finished_at < now() - make_interval(secs => $1 * 86400)
                   LIMIT $2)""",
            older_than_days,
            batch,
            timeout=LONG_STATEMENT_S,
        )
        count = int(status.split()[-1])
        total += count
        if count < batch:
            return total


# ---- read side and operator actions ------------------------------------------------------------

_JOB_COLUMNS = """id, name, queue, args, state, attempt, max_attempts, interruptions, run_at, parent_id,
                  unique_key, unique_until, last_error, created_at, started_at, finished_at,
                  claims, claimed_by, retried_at"""


async def get_job(db: Executor, job_id: int) -> dict[str, Any] | None:
    row = await db.fetchrow(f"SELECT {_JOB_COLUMNS} FROM jobs.jobs WHERE id = $1", job_id)
    return dict(row) if row else None


async def list_jobs(
    db: Executor,
    *,
    state: JobState | None = None,
    queue: str | None = None,
    name: str | None = None,
    limit: int = 50,
    before_id: int | None = None,
) -> list[dict[str, Any]]:
    rows = await db.fetch(
        f"""SELECT {_JOB_COLUMNS} FROM jobs.jobs
            WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR queue = $2)
              AND ($3::text IS NULL OR name = $3) AND ($5::bigint IS NULL OR id < $5)
            ORDER BY id DESC LIMIT $4""",
        state,
        queue,
        name,
        limit,
        before_id,
    )
    return [dict(r) for r in rows]


# ---- exact counts and run records (issue 17) --------------------------------------------------

# The counters of migrations/041_state_counts.sql: the deltas the triggers appended since the
# last fold, summed. A few hundred rows at most between folds, so this never reads jobs.jobs.
_STATE_COUNTS = """
SELECT queue, state, sum(n)::bigint AS n FROM jobs.state_counts GROUP BY queue, state
"""

# Fold the deltas into one row per (queue, state) in one statement. Rows appended meanwhile are
# not in this statement's snapshot, so they are neither deleted nor lost; a concurrent fold waits
# for this one's row locks and then skips the rows it deleted.
_FOLD_COUNTS = """
WITH gone AS (DELETE FROM jobs.state_counts RETURNING queue, state, n)
INSERT INTO jobs.state_counts (queue, state, n)
SELECT queue, state, sum(n) FROM gone GROUP BY queue, state HAVING sum(n) <> 0
"""


async def state_counts(db: Executor) -> dict[str, dict[str, int]]:
    """Exact job counts: {queue: {state: n}} for every state (0 when none), read from the
    counters the engine's statements keep (no scan of jobs.jobs, see 041_state_counts.sql)."""
    result: dict[str, dict[str, int]] = {}
    for row in await db.fetch(_STATE_COUNTS):
        if row["n"]:
            result.setdefault(row["queue"], dict.fromkeys(STATES, 0))[row["state"]] = row["n"]
    return result


async def fold_counts(db: Executor) -> None:
    """Fold the counters' deltas into one row per queue and state (the engine does it every
    few seconds, so a read sums a handful of rows)."""
    await db.execute(_FOLD_COUNTS)


def queue_entry(
    counts: dict[str, int] | None = None, age: float | None = None, paused: bool = False
) -> dict[str, Any]:
    """One queue as queue_counts gives it; without counts, a queue with no job at all."""
    return {
        "counts": counts if counts is not None else dict.fromkeys(STATES, 0),
        "oldest_ready_age_s": age,
        "paused": paused,
    }


async def queue_counts(db: Executor, oldest: bool = True) -> dict[str, dict[str, Any]]:
    """Per queue: counts by state, the age in seconds of the oldest due ready or scheduled job
    (None when none is due, or when `oldest` is False: ping does not show it), and the paused
    flag. The counts are the counters (state_counts); the age is one head read of the claim
    index per job type of each queue with waiting jobs (_NEXT_DUE)."""
    counts = await state_counts(db)
    paused = {
        r["name"]: r["paused"] for r in await db.fetch("SELECT name, paused FROM jobs.queues")
    }
    result: dict[str, dict[str, Any]] = {}
    now = None
    for queue in sorted(set(counts) | set(paused)):
        by_state = counts.get(queue) or dict.fromkeys(STATES, 0)
        age = None
        if oldest and (by_state["ready"] or by_state["scheduled"]):
            due = await next_due(db, queue)
            now = now or await db.fetchval("SELECT now()")
            if due is not None and (due <= now or by_state["ready"]):
                # A ready job is due by definition: a run_at after this now() means the clock
                # stepped back since it was written (seen on this VM: `queues` showed no age for a
                # queue with a ready job), so its age is 0, not unknown.
                age = max((now - due).total_seconds(), 0.0)
        result[queue] = queue_entry(by_state, age, paused.get(queue, False))
    return result


# The newest failed runs, from the end of attempts_failed (which holds only runs with an error):
# as cheap with 10,000,000 jobs retained as with ten. Cancellations by an operator are not
# failures.
_RECENT_FAILURES = """
SELECT a.job_id AS id, j.name, j.queue, j.state, a.counted AS attempt, a.outcome,
       a.error AS last_error, a.finished_at AS at
FROM (SELECT job_id, counted, outcome, error, finished_at FROM jobs.attempts
      WHERE error IS NOT NULL AND outcome <> 'cancelled'
      ORDER BY finished_at DESC LIMIT $1) a
JOIN jobs.jobs j ON j.id = a.job_id
ORDER BY a.finished_at DESC
"""


async def recent_failures(db: Executor, limit: int = 10) -> list[dict[str, Any]]:
    """The newest `limit` failed runs: job id, name, queue, the job's state now, attempt (the
    counted attempt of that run), outcome (retry, failed, deleted), last_error (that run's
    error) and at (when the run ended)."""
    return [dict(r) for r in await db.fetch(_RECENT_FAILURES, limit)]


# One job's runs in order (the primary key of attempts).
_JOB_ATTEMPTS = """
SELECT attempt, counted, due_at, started_at, finished_at, duration_s, outcome, state_after, error,
       refunded, pid, host
FROM jobs.attempts WHERE job_id = $1 ORDER BY attempt
"""


async def job_attempts(db: Executor, job_id: int) -> list[dict[str, Any]]:
    """Every recorded run of one job, oldest first: attempt (run number, never reset), counted
    (the attempt number max_attempts limits), due_at, started_at, finished_at, duration_s
    (seconds, None when it never ran or its daemon died), outcome, state_after, error (with
    traceback), refunded (bool), pid and host (None when unknown)."""
    return [dict(r) for r in await db.fetch(_JOB_ATTEMPTS, job_id)]


async def finished_since(db: Executor, seconds: float) -> dict[str, int]:
    rows = await db.fetch(
        """SELECT queue, count(*) AS n FROM jobs.jobs
           WHERE state IN ('succeeded', 'failed', 'deleted') AND finished_at > now() - make_interval(secs => $1)
           GROUP BY queue""",
        seconds,
    )
    return {r["queue"]: r["n"] for r in rows}


@dataclass(frozen=True)
class Retried:
    """What `retry` did: the job's state before and after, and how many continuations deleted
    because of it came back to `awaiting` (its chain). `changed` is False when the job was left
    alone (running, ready or awaiting: the caller reports a conflict)."""

    previous: JobState
    state: JobState
    changed: bool = True
    restored: int = 0


# The continuations deleted because their parent was (delete_continuations marks them so), and
# theirs, below the retried job: they wait for it again, as Hangfire brings a chain back.
_RESTORE_CHAIN = """
WITH RECURSIVE chain AS (
    SELECT id FROM jobs.jobs
    WHERE parent_id = $1 AND state = 'deleted' AND last_error = 'parent job was deleted'
    UNION
    SELECT j.id FROM jobs.jobs j JOIN chain c ON j.parent_id = c.id
    WHERE j.state = 'deleted' AND j.last_error = 'parent job was deleted'
)
UPDATE jobs.jobs SET state = 'awaiting', finished_at = NULL, last_error = NULL, attempt = 0,
                     interruptions = 0
WHERE id IN (SELECT id FROM chain)
"""


async def retry(db: asyncpg.Pool, job_id: int) -> Retried | None:
    """Give a finished or waiting job a fresh run now (None: no such job).

    A continuation whose parent has not succeeded goes back to `awaiting`, never `ready`: it
    runs when the parent succeeds. A retried job brings back the continuations that were deleted
    because it was. Running, ready and awaiting jobs are left alone (changed=False).
    """
    async with db.acquire() as conn, conn.transaction():
        await _bound_lock_waits(conn)
        row = await conn.fetchrow(
            "SELECT state, parent_id FROM jobs.jobs WHERE id = $1 FOR UPDATE", job_id
        )
        if row is None:
            return None
        if row["state"] not in ("failed", "deleted", "succeeded", "scheduled"):
            return Retried(row["state"], row["state"], changed=False)
        state: JobState = "ready"
        if row["parent_id"] is not None:
            # FOR SHARE: a finish of the parent waits for this transaction, so its release of
            # awaiting continuations sees this one (a pruned parent counts as succeeded).
            parent = await conn.fetchval(
                "SELECT state FROM jobs.jobs WHERE id = $1 FOR SHARE", row["parent_id"]
            )
            if parent is not None and parent != "succeeded":
                state = "awaiting"
        await conn.execute(
            """UPDATE jobs.jobs SET state = $2, run_at = now(), attempt = 0, interruptions = 0,
                      finished_at = NULL, retried_at = now() WHERE id = $1""",
            job_id,
            state,
        )
        status = await conn.execute(_RESTORE_CHAIN, job_id)
        return Retried(row["state"], state, restored=int(status.split()[-1]))


async def cancel(db: asyncpg.Pool, job_id: int) -> JobState | None:
    """Delete a job that has not started (and its continuations); returns the state it was in."""
    async with db.acquire() as conn, conn.transaction():
        await _bound_lock_waits(conn)
        state: JobState | None = await conn.fetchval(
            "SELECT state FROM jobs.jobs WHERE id = $1 FOR UPDATE", job_id
        )
        if state in ("ready", "scheduled", "awaiting"):
            await conn.execute(
                """UPDATE jobs.jobs SET state = 'deleted', finished_at = now(), unique_key = NULL,
                          unique_until = NULL, last_error = 'cancelled by an operator' WHERE id = $1""",
                job_id,
            )
            await conn.execute("SELECT jobs.delete_continuations(ARRAY[$1::bigint])", job_id)
        return state


async def set_paused(db: Executor, queue: str, paused: bool) -> None:
    await db.execute(
        "INSERT INTO jobs.queues (name, paused) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET paused = $2",
        queue,
        paused,
    )


async def paused_queues(db: Executor) -> set[str]:
    return {r["name"] for r in await db.fetch("SELECT name FROM jobs.queues WHERE paused")}


# ---- operator filters and bulk actions (issue 17) ---------------------------------------------


@dataclass(frozen=True)
class JobFilter:
    """Which jobs an operator means. Every field narrows; None leaves it open.

    `args` compares each named argument's JSON value as text (`args->>key`), so show_id=42
    matches the number 42 and the string "42" alike: a command line only has text. `since_s`
    and `older_than_s` are seconds since creation; `error` is a case-insensitive substring of
    the last error."""

    states: Sequence[str] | None = None
    queue: str | None = None
    name: str | None = None
    args: dict[str, str] = field(default_factory=dict)
    since_s: float | None = None
    older_than_s: float | None = None
    error: str | None = None
    before_id: int | None = None

    def params(self) -> tuple[Any, ...]:
        return (
            list(self.states) if self.states is not None else None,
            self.queue,
            self.name,
            self.since_s,
            self.older_than_s,
            self.error,
            self.before_id,
            list(self.args),
            list(self.args.values()),
        )


# One WHERE for every filtered read and bulk action, parameters $1-$9 (JobFilter.params). Each
# test is "absent or matches", so one prepared statement serves every combination; listings walk
# the primary key backwards and stop at their LIMIT (the table has no index on state or name,
# see 001_jobs_engine.sql), and the argument test runs only on rows the cheaper ones kept.
_FILTER = """
    ($1::text[] IS NULL OR j.state = ANY ($1::text[]))
    AND ($2::text IS NULL OR j.queue = $2) AND ($3::text IS NULL OR j.name = $3)
    AND ($4::float8 IS NULL OR j.created_at >= now() - make_interval(secs => $4))
    AND ($5::float8 IS NULL OR j.created_at < now() - make_interval(secs => $5))
    AND ($6::text IS NULL OR strpos(lower(j.last_error), lower($6)) > 0)
    AND ($7::bigint IS NULL OR j.id < $7)
    AND NOT EXISTS (SELECT 1 FROM unnest($8::text[], $9::text[]) AS f(k, v)
                    WHERE j.args ->> f.k IS DISTINCT FROM f.v)
"""

_FILTERED_COLUMNS = ", ".join(f"j.{c.strip()}" for c in _JOB_COLUMNS.split(","))


async def find_jobs(db: Executor, where: JobFilter, limit: int) -> list[dict[str, Any]]:
    """Jobs matching `where`, newest first, at most `limit`; the shape of get_job's rows."""
    rows = await db.fetch(
        f"SELECT {_FILTERED_COLUMNS} FROM jobs.jobs j WHERE {_FILTER} ORDER BY j.id DESC LIMIT $10",
        *where.params(),
        limit,
    )
    return [dict(r) for r in rows]


async def count_jobs(db: Executor, where: JobFilter) -> int:
    """How many jobs match `where` (a scan: for dry runs and confirmations, not for polling)."""
    value: int = await db.fetchval(
        f"SELECT count(*) FROM jobs.jobs j WHERE {_FILTER}", *where.params()
    )
    return value


async def name_exists(db: Executor, name: str) -> bool:
    """Whether any job of type `name` is in the table (a type no longer registered)."""
    return bool(await db.fetchval("SELECT EXISTS (SELECT 1 FROM jobs.jobs WHERE name = $1)", name))


# Bulk actions lock the rows they change (SKIP LOCKED: a row being claimed or finished right now
# is left for the next call) and handle at most $10 rows, newest first, so one request holds no
# lock for long; the caller reports how many still match.
_BULK_RETRY = f"""
WITH picked AS (
    SELECT j.id, j.state FROM jobs.jobs j
    WHERE {_FILTER} AND j.state IN ('failed', 'deleted', 'succeeded', 'scheduled')
    ORDER BY j.id DESC LIMIT $10 FOR UPDATE SKIP LOCKED
)
UPDATE jobs.jobs j SET state = 'ready', run_at = now(), attempt = 0, interruptions = 0,
       finished_at = NULL, retried_at = now()
FROM picked WHERE j.id = picked.id
RETURNING j.id
"""

_BULK_CANCEL = f"""
WITH picked AS (
    SELECT j.id FROM jobs.jobs j
    WHERE {_FILTER} AND j.state IN ('ready', 'scheduled', 'awaiting')
    ORDER BY j.id DESC LIMIT $10 FOR UPDATE SKIP LOCKED
)
UPDATE jobs.jobs j SET state = 'deleted', finished_at = now(), unique_key = NULL,
       unique_until = NULL, last_error = 'cancelled by an operator'
FROM picked WHERE j.id = picked.id
RETURNING j.id
"""

_BULK_DELETE = f"""
WITH picked AS (
    SELECT j.id FROM jobs.jobs j
    WHERE {_FILTER} AND j.state IN ('succeeded', 'failed', 'deleted')
    ORDER BY j.id DESC LIMIT $10 FOR UPDATE SKIP LOCKED
)
DELETE FROM jobs.jobs j USING picked WHERE j.id = picked.id
RETURNING j.id
"""

BULK_STATES = {
    "retry": ("failed", "deleted", "succeeded", "scheduled"),
    "cancel": ("ready", "scheduled", "awaiting"),
    "delete": ("succeeded", "failed", "deleted"),
}


async def bulk_action(db: asyncpg.Pool, action: str, where: JobFilter, limit: int) -> list[int]:
    """Retry, cancel or delete (discard) up to `limit` jobs matching `where` in the states the
    action applies to (BULK_STATES); returns the ids changed. Cancel and delete also delete the
    awaiting continuations of the jobs they remove, as a single cancel does."""
    statement = {"retry": _BULK_RETRY, "cancel": _BULK_CANCEL, "delete": _BULK_DELETE}[action]
    async with db.acquire() as conn, conn.transaction():
        await _bound_lock_waits(conn)  # SKIP LOCKED, but delete_continuations may wait
        ids = [r["id"] for r in await conn.fetch(statement, *where.params(), limit)]
        if ids and action in ("cancel", "delete"):
            await conn.execute("SELECT jobs.delete_continuations($1::bigint[])", ids)
    return ids


async def delete_job(db: asyncpg.Pool, job_id: int) -> JobState | None:
    """Discard one finished job (succeeded, failed or deleted) for good; returns the state it was
    in, or None when there is no such job. A job in another state is left alone."""
    async with db.acquire() as conn, conn.transaction():
        await _bound_lock_waits(conn)
        state: JobState | None = await conn.fetchval(
            "SELECT state FROM jobs.jobs WHERE id = $1 FOR UPDATE", job_id
        )
        if state in TERMINAL:
            await conn.execute("SELECT jobs.delete_continuations(ARRAY[$1::bigint])", job_id)
            await conn.execute("DELETE FROM jobs.jobs WHERE id = $1", job_id)
        return state


async def running_jobs(db: Executor, limit: int) -> list[dict[str, Any]]:
    """The longest-running jobs first: id, name, queue, attempt, started_at. Reads the
    jobs_running partial index, which holds only running rows, so it stays cheap at any size."""
    rows = await db.fetch(
        """SELECT id, name, queue, attempt, started_at FROM jobs.jobs
           WHERE state = 'running' ORDER BY started_at NULLS LAST, id LIMIT $1""",
        limit,
    )
    return [dict(r) for r in rows]


async def ready_count(db: Executor) -> int:
    """Jobs ready and waiting for a slot (STATUS= line), from the counters (state_counts)."""
    return sum(by_state["ready"] for by_state in (await state_counts(db)).values())


async def cancel_waiting(db: asyncpg.Pool, name: str) -> int:
    """Cancel every job of type `name` that has not started (ready, scheduled or awaiting), one
    at a time through `cancel`, so each also takes its continuations; returns how many. For a
    one-time migration retiring a job type: a handful of rows, where a bulk statement would
    need cancel's rules again."""
    rows = await db.fetch(
        """SELECT id FROM jobs.jobs
           WHERE name = $1 AND state IN ('ready', 'scheduled', 'awaiting') ORDER BY id""",
        name,
    )
    for row in rows:
        await cancel(db, row["id"])
    return len(rows)


async def last_success(db: Executor, name: str) -> float | None:
    """When the newest successful run of job type `name` finished, as Unix seconds (None: no
    success kept; pruning forgets them after the retention). A scan of that type's rows: the
    metrics endpoint asks once per scrape, for one type with few rows."""
    at: float | None = await db.fetchval(
        """SELECT extract(epoch FROM max(finished_at))::float8 FROM jobs.jobs
           WHERE name = $1 AND state = 'succeeded'""",
        name,
    )
    return at


async def newest_id(db: Executor) -> int:
    """The highest job id so far (0 on an empty table): a mark to count later jobs from (demo)."""
    return int(await db.fetchval("SELECT coalesce(max(id), 0) FROM jobs.jobs"))


async def counts_since(db: Executor, since_id: int) -> dict[str, int]:
    """{state: n} of the jobs created after `since_id` (states with none left out). A scan of
    the ids above the mark, not the counters: the demo follows one phase's jobs, not a queue's."""
    rows = await db.fetch(
        "SELECT state, count(*) AS n FROM jobs.jobs WHERE id > $1 GROUP BY state", since_id
    )
    return {r["state"]: r["n"] for r in rows}


async def retrying_since(db: Executor, since_id: int) -> list[dict[str, Any]]:
    """Jobs created after `since_id` now waiting to retry after an error: id, name, last_error,
    by id (the demo's stall check)."""
    rows = await db.fetch(
        """SELECT id, name, last_error FROM jobs.jobs
           WHERE id > $1 AND state = 'scheduled' AND last_error IS NOT NULL ORDER BY id""",
        since_id,
    )
    return [dict(r) for r in rows]


# ---- recurring entries (jobs.recurring, jobs.recurring_fires; migrations 005, 008, 020) --------
# A fire claims its slot in the same transaction as the job's insert (RecurringScheduler.fire
# opens it and passes `conn`), so a slot never fires twice, across restarts and double fires.

# The entry's row, locked so two fires of one entry take turns; created on first use.
_LOCK_ENTRY = """
INSERT INTO jobs.recurring AS r (name) VALUES ($1)
ON CONFLICT (name) DO UPDATE SET name = r.name
RETURNING last_fire
"""

# A slot fires once: the primary key refuses it a second time, whatever the clock did.
_CLAIM_SLOT = """
INSERT INTO jobs.recurring_fires (name, slot) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING slot
"""

_RECORD_FIRE = """
INSERT INTO jobs.recurring AS r (name, last_job_id, last_trigger)
VALUES ($1, $2, CASE WHEN $3 THEN now() END)
ON CONFLICT (name) DO UPDATE
SET last_job_id = EXCLUDED.last_job_id, last_trigger = coalesce(EXCLUDED.last_trigger, r.last_trigger)
"""

_RECURRING_COLUMNS = (
    "name, last_fire, last_job_id, last_trigger, created_at, disabled_at, disabled_by"
)


async def lock_recurring(conn: Conn, name: str) -> datetime | None:
    """Lock entry `name`'s row for the caller's transaction (creating it); returns its newest
    fired slot (None: never fired)."""
    last: datetime | None = await conn.fetchval(_LOCK_ENTRY, name)
    return last


async def claim_recurring_slot(
    conn: Conn, name: str, slot: datetime, forget_before: datetime
) -> bool:
    """Take `slot` for entry `name` in the caller's transaction; False when it fired before.
    Taken, it becomes the entry's newest slot, and fires older than `forget_before` are dropped
    (kept a while only so a clock stepped back cannot fire them again)."""
    if await conn.fetchval(_CLAIM_SLOT, name, slot) is None:
        return False
    await conn.execute("UPDATE jobs.recurring SET last_fire = $2 WHERE name = $1", name, slot)
    await conn.execute(
        "DELETE FROM jobs.recurring_fires WHERE name = $1 AND slot < $2", name, forget_before
    )
    return True


async def record_recurring_fire(conn: Conn, name: str, job_id: int, manual: bool) -> None:
    """Entry `name` produced job `job_id` (a manual trigger also stamps last_trigger)."""
    await conn.execute(_RECORD_FIRE, name, job_id, manual)


async def recurring_rows(db: asyncpg.Pool, ensure: Sequence[str] = ()) -> dict[str, asyncpg.Record]:
    """Every stored entry by name (columns of _RECURRING_COLUMNS), after creating the rows of
    `ensure` that do not exist yet (created_at then marks when their slots began to count)."""
    async with db.acquire() as conn:
        if ensure:
            await conn.executemany(
                "INSERT INTO jobs.recurring (name) VALUES ($1) ON CONFLICT DO NOTHING",
                [(n,) for n in ensure],
            )
        rows = await conn.fetch(f"SELECT {_RECURRING_COLUMNS} FROM jobs.recurring")
    return {r["name"]: r for r in rows}


async def set_recurring_disabled(db: Executor, name: str, disabled: bool, by: str) -> bool:
    """An operator's disable (by `by`) or enable of entry `name`; False when it already was.
    Kept in the table rather than the config so restarts and reloads keep it (020)."""
    changed = await db.fetchval(
        """INSERT INTO jobs.recurring AS r (name, disabled_at, disabled_by)
           VALUES ($1, CASE WHEN $2 THEN now() END, CASE WHEN $2 THEN $3 END)
           ON CONFLICT (name) DO UPDATE
           SET disabled_at = EXCLUDED.disabled_at, disabled_by = EXCLUDED.disabled_by
           WHERE (r.disabled_at IS NOT NULL) <> $2
           RETURNING true""",
        name,
        disabled,
        by,
    )
    return bool(changed)


async def forget_recurring(db: Executor, name: str) -> int:
    """Delete entry `name`'s row; returns how many rows went (0 or 1). Its fired slots stay in
    jobs.recurring_fires (no foreign key): a slot fired once never fires again, whatever name
    comes back."""
    status: str = await db.execute("DELETE FROM jobs.recurring WHERE name = $1", name)
    return int(status.split()[-1])


# ---- one-time migrations (onetime_migrations, migration 004) -------------------------------------
# One row per attempt; state is onetime.MigrationState (0 success, 1 running, 2 fail). Only the
# holder of db.ONETIME_LOCK writes here, so the statements need no row locks.


async def onetime_sweep_interrupted(conn: Conn, error: str) -> list[str]:
    """Fail every attempt still marked running (its process died): returns their keys."""
    rows = await conn.fetch(
        """UPDATE onetime_migrations SET state = 2, error = $1, updated_at = now()
           WHERE state = 1 RETURNING migration_type""",
        error,
    )
    return [r["migration_type"] for r in rows]


async def onetime_succeeded(conn: Conn) -> set[str]:
    """Keys of the migrations with a successful attempt."""
    rows = await conn.fetch("SELECT migration_type FROM onetime_migrations WHERE state = 0")
    return {r["migration_type"] for r in rows}


async def onetime_begin(db: Executor, key: str) -> int:
    """Record a new running attempt of migration `key`; returns its row id."""
    row_id: int = await db.fetchval(
        "INSERT INTO onetime_migrations (migration_type, state) VALUES ($1, 1) RETURNING id", key
    )
    return row_id


async def onetime_end(
    db: Executor, row_id: int, state: int, error: str | None, duration_ms: float
) -> None:
    """Close attempt `row_id` with its final state, error text and duration."""
    await db.execute(
        """UPDATE onetime_migrations SET state = $2, error = $3, duration_ms = $4,
                  finished_at = now(), updated_at = now() WHERE id = $1""",
        row_id,
        state,
        error,
        duration_ms,
    )


async def onetime_latest(db: Executor) -> list[asyncpg.Record]:
    """Per migration key: its success if any, else its latest attempt, with the number of
    attempts (migration_type, state, started_at, finished_at, duration_ms, error, attempts)."""
    rows: list[asyncpg.Record] = await db.fetch(
        """SELECT DISTINCT ON (migration_type) migration_type, state, started_at, finished_at,
                  duration_ms, error, count(*) OVER (PARTITION BY migration_type) AS attempts
           FROM onetime_migrations ORDER BY migration_type, (state = 0) DESC, id DESC"""
    )
    return rows


# ---- several daemons on one database (issue 19) -------------------------------------------------
# Node membership, failure detection and recovery, caps counted across nodes, keyed locks held in
# PostgreSQL. Every time is the database's clock (`now()`), so nodes on hosts with skewed clocks
# agree on whose heartbeat is late. The advisory-lock keys (REAPER_LOCK, CAP_NAMESPACE) are in
# db.py's table of keys.

# Keyed locks use the single-bigint form of the advisory locks, a space of their own in pg_locks
# (objsubid 1, where the two-int4 forms above have 2): a 64-bit hash of the key makes a
# collision between two live keys (which would only make one wait or skip) negligible.
KEYED_LOCK_SEED = 0x414A


def lock_application_name(node_id: int) -> str:
    """The application_name of a node's keyed-lock connection: how a live node finds the backend
    of a node it declared dead (to end its session and so release its locks)."""
    return f"addicted-jobs node {node_id} locks"


async def register_node(
    db: Executor, host: str, pid: int, version: str, process_space: str | None = None
) -> int:
    """Add this daemon as a live node; returns its id (never reused). `process_space` says where
    `pid` is meaningful (see migrations/051)."""
    node_id: int = await db.fetchval(
        """INSERT INTO jobs.nodes (host, pid, version, process_space) VALUES ($1, $2, $3, $4)
           RETURNING id""",
        host,
        pid,
        version,
        process_space,
    )
    return node_id


async def node_neighbours(db: Executor, host: str, process_space: str) -> list[tuple[int, int]]:
    """(node id, pid) of the live nodes registered from this host and process space: the only
    nodes whose pid this daemon can check."""
    rows = await db.fetch(
        """SELECT id, pid FROM jobs.nodes
           WHERE dead_at IS NULL AND host = $1 AND process_space = $2""",
        host,
        process_space,
    )
    return [(r["id"], r["pid"]) for r in rows]


async def declare_nodes_gone(db: Executor, node_ids: Sequence[int]) -> list[dict[str, Any]]:
    """Declare nodes dead whose process is known to be gone (checked on their own host); the
    next reaper pass puts their jobs back. Returns id, host, pid, silent_s of each."""
    rows = await db.fetch(
        """UPDATE jobs.nodes SET dead_at = now() WHERE id = ANY ($1::bigint[]) AND dead_at IS NULL
           RETURNING id, host, pid, extract(epoch FROM now() - heartbeat)::float8 AS silent_s""",
        list(node_ids),
    )
    return [dict(r) for r in rows]


async def node_heartbeat(db: Executor, node_id: int) -> bool:
    """Prove this node alive; False when another node has declared it dead (it must stop work:
    its jobs were, or are being, put back to ready)."""
    row = await db.fetchval(
        "UPDATE jobs.nodes SET heartbeat = now() WHERE id = $1 AND dead_at IS NULL RETURNING id",
        node_id,
    )
    return row is not None


async def leave_cluster(db: Executor, node_id: int) -> None:
    """A clean stop: the node is gone (its jobs were handed back by the engine's shutdown)."""
    await db.execute(
        "UPDATE jobs.nodes SET dead_at = coalesce(dead_at, now()) WHERE id = $1", node_id
    )


# Late heartbeats make their nodes dead, under the reaper lock so that two reapers never recover
# the same row from two snapshots (the second would see a row the first put back and another node
# claimed since as still running: it waits for the lock and reads with a fresh snapshot instead).
_DECLARE_DEAD = """
UPDATE jobs.nodes SET dead_at = now()
WHERE dead_at IS NULL AND heartbeat < now() - make_interval(secs => $1) AND id <> $2
RETURNING id, host, pid, extract(epoch FROM now() - heartbeat)::float8 AS silent_s
"""

# Their keyed locks: ending the session releases every advisory lock it held. A paused node's
# session stays up (its kernel still answers keepalives), so waiting for it would keep its locks.
_END_LOCK_SESSIONS = """
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = ANY ($1::text[])
"""

# Jobs running on a node that is not live (dead, or its row pruned) go back to ready, with the
# attempt refunded and the interruption counted, as _RECOVER does at a start. The running
# rows are few (the jobs_running partial index holds only them); the live nodes fewer.
_RECOVER_DEAD = """
UPDATE jobs.jobs SET
    interruptions = interruptions + 1,
    attempt = greatest(attempt - 1, 0),
    state = CASE WHEN interruptions + 1 > $1 THEN 'failed' ELSE 'ready' END,
    run_at = now(),
    finished_at = CASE WHEN interruptions + 1 > $1 THEN now() END,
    last_error = CASE WHEN interruptions + 1 > $1
        THEN format('failed as poison: interrupted %s times (its node died)', interruptions + 1)
        ELSE last_error END,
    unique_key = CASE WHEN interruptions + 1 > $1 THEN NULL ELSE unique_key END,
    unique_until = CASE WHEN interruptions + 1 > $1 THEN NULL ELSE unique_until END
WHERE state = 'running' AND node_id IS NOT NULL
  AND node_id NOT IN (SELECT id FROM jobs.nodes WHERE dead_at IS NULL)
RETURNING id, name, state, node_id
"""

# Dead nodes are kept a day for `nodes` and the logs, then forgotten.
_FORGET_DEAD = "DELETE FROM jobs.nodes WHERE dead_at < now() - interval '1 day'"


@dataclass(frozen=True)
class Reaped:
    """What one reaper pass did: nodes declared dead (id, host, pid, silent_s), the jobs put back
    to ready and those failed as poison (interrupted too often)."""

    dead: list[dict[str, Any]]
    requeued: list[int]
    poisoned: list[int]
    skipped: bool = False  # another node was reaping


async def reap_dead_nodes(
    pool: asyncpg.Pool, node_id: int, timeout_s: float, max_interruptions: int
) -> Reaped:
    """Declare nodes silent for longer than `timeout_s` dead, end their keyed-lock sessions and
    put back the jobs of every node that is not live. One reaper at a time in the cluster: a pass
    that finds another reaping is skipped (skipped=True)."""
    async with pool.acquire() as conn, conn.transaction():
        if not await conn.fetchval(
            "SELECT pg_try_advisory_xact_lock($1, $2)", LOCK_NAMESPACE, REAPER_LOCK
        ):
            return Reaped([], [], [], skipped=True)
        dead = [dict(r) for r in await conn.fetch(_DECLARE_DEAD, timeout_s, node_id)]
        if dead:
            names = [lock_application_name(d["id"]) for d in dead]
            await conn.fetchval(_END_LOCK_SESSIONS, names)
        rows = await conn.fetch(_RECOVER_DEAD, max_interruptions)
        await conn.execute(_FORGET_DEAD)
    return Reaped(
        dead,
        [r["id"] for r in rows if r["state"] == "ready"],
        [r["id"] for r in rows if r["state"] == "failed"],
    )


async def list_nodes(db: Executor, running_limit: int = 50) -> list[dict[str, Any]]:
    """Every known node, live ones first: id, host, pid, version, started, heartbeat, dead_at,
    heartbeat_age_s, and `running` (up to `running_limit` {id, name, started_at} of the jobs it
    runs, longest first) with `running_count`."""
    rows = await db.fetch(
        """SELECT n.id, n.host, n.pid, n.version, n.started, n.heartbeat, n.dead_at,
                  extract(epoch FROM now() - n.heartbeat)::float8 AS heartbeat_age_s,
                  (SELECT count(*) FROM jobs.jobs j WHERE j.state = 'running' AND j.node_id = n.id)
                      AS running_count,
                  coalesce((SELECT jsonb_agg(jsonb_build_object('id', r.id, 'name', r.name,
                                                               'started_at', r.started_at))
                            FROM (SELECT id, name, started_at FROM jobs.jobs j
                                  WHERE j.state = 'running' AND j.node_id = n.id
                                  ORDER BY started_at, id LIMIT $1) r), '[]'::jsonb) AS running
           FROM jobs.nodes n ORDER BY n.dead_at IS NOT NULL, n.id""",
        running_limit,
    )
    return [dict(r) for r in rows]


async def count_live_nodes(db: Executor) -> int:
    """How many nodes are live (the politeness limit is shared among them)."""
    count: int = await db.fetchval("SELECT count(*) FROM jobs.nodes WHERE dead_at IS NULL")
    return count


# ---- caps across nodes ---------------------------------------------------------------------------

# Running jobs of the capped types, counted after their locks are taken: in READ COMMITTED each
# statement reads a fresh snapshot, so this sees every claim committed by the previous holder.
_RUNNING_OF = """
SELECT name, count(*)::int AS n FROM jobs.jobs
WHERE state = 'running' AND name = ANY ($1::text[]) GROUP BY name
"""


async def claim_capped(
    conn: asyncpg.Connection | PoolConnectionProxy,
    queue: str,
    limit: int,
    capped: Sequence[str],
    rooms: dict[str, int],
    caps: dict[str, int],
    node_id: int,
) -> tuple[list[Claimed], dict[str, int]]:
    """claim with each capped type's room counted across the cluster: under a transaction
    advisory lock per capped type (taken in name order, so two claims never deadlock), the room
    is the cap less the type's running jobs on every node, and never more than this node's own
    `rooms`. Types without local room take no lock. The lock ends with the claim's transaction,
    so racing claims of a type take turns and never exceed its cap together. Returns the claimed
    jobs and the cluster-wide room each locked type had before this claim."""
    wanted = sorted(name for name in capped if rooms.get(name, 0) > 0)
    async with conn.transaction():
        for name in wanted:
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))", CAP_NAMESPACE, name
            )
        running = {r["name"]: r["n"] for r in await conn.fetch(_RUNNING_OF, wanted)}
        cluster_rooms = {
            name: min(rooms.get(name, 0), caps[name] - running.get(name, 0)) for name in wanted
        }
        claimed = await claim(conn, queue, limit, capped, cluster_rooms, node_id)
        return claimed, cluster_rooms


# ---- keyed locks across nodes --------------------------------------------------------------------


async def try_keyed_lock(conn: asyncpg.Connection, key: str) -> bool:
    """Take the cluster-wide lock of `key` on the node's lock connection if it is free."""
    got: bool = await conn.fetchval(
        "SELECT pg_try_advisory_lock(hashtextextended($1, $2))", key, KEYED_LOCK_SEED
    )
    return got


async def release_keyed_lock(conn: asyncpg.Connection, key: str) -> None:
    await conn.execute("SELECT pg_advisory_unlock(hashtextextended($1, $2))", key, KEYED_LOCK_SEED)
