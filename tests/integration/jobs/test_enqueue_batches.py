"""Issue 20: a batch of jobs in one enqueue call. A plain batch (no parent, no unique key) takes its
own statement, with its columns sent as jsonb arrays; a batch with unique keys or parents takes
the general one. Either way every result is the one of its input position, the rows hold exactly
what was given (quotes, backslashes and non-ASCII text survive the JSON encoding), the counters
stay exact and idle dispatchers hear of every queue that got work."""

from __future__ import annotations

from typing import Any

import asyncpg

from addicted_jobs.jobs import store
from addicted_jobs.jobs.store import NewJob
from tests.support import wait_until

NAMES = ["plain", 'quo"te\\back', "ünïcødé ☃ 😀"]
QUEUES = ["default", "other", "drüben"]
DELAYS: list[float | None] = [None, 0, 3600, 0.5]


async def assert_counts_exact(pool: asyncpg.Pool) -> None:
    real: dict[str, dict[str, int]] = {}
    for row in await pool.fetch("SELECT queue, state, count(*) AS n FROM jobs.jobs GROUP BY 1, 2"):
        real.setdefault(row["queue"], dict.fromkeys(store.STATES, 0))[row["state"]] = row["n"]
    assert await store.state_counts(pool) == real


async def stored(pool: asyncpg.Pool, ids: list[int]) -> dict[int, dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT id, name, queue, args, max_attempts, state, parent_id, unique_key,"
        " extract(epoch FROM run_at - created_at)::float8 AS delay_s"
        " FROM jobs.jobs WHERE id = ANY ($1::bigint[])",
        ids,
    )
    return {r["id"]: dict(r) for r in rows}


async def test_a_plain_batch_is_stored_in_input_order_counted_and_announced(
    db_pool: asyncpg.Pool, db_dsn: str
) -> None:
    heard: list[str] = []
    listener = await asyncpg.connect(db_dsn)
    await listener.add_listener("addicted_jobs", lambda *args: heard.append(args[3]))
    try:
        batch = [
            NewJob(
                NAMES[i % 3],
                QUEUES[i // 3 % 3],
                {"i": i, "text": f'"{i}"\\\n€', "nested": {"list": [i, None, True]}},
                1 + i % 5,
                delay=DELAYS[i % 4],
            )
            for i in range(2500)
        ]
        results = await store.enqueue(db_pool, batch)

        assert len(results) == len(batch)
        assert all(r.created for r in results)
        ids = [r.id for r in results]
        assert ids == sorted(set(ids))  # one job each, numbered in input order
        rows = await stored(db_pool, ids)
        for job, result in zip(batch, results, strict=True):
            row = rows[result.id]
            expected_state = "scheduled" if (job.delay or 0) > 0 else "ready"
            assert result.state == row["state"] == expected_state
            assert (row["name"], row["queue"], row["args"], row["max_attempts"]) == (
                job.name,
                job.queue,
                job.args,
                job.max_attempts,
            )
            assert row["delay_s"] == (job.delay or 0)
            assert row["parent_id"] is None and row["unique_key"] is None
        await assert_counts_exact(db_pool)
        # One statement: one notification per queue that got ready or scheduled work.
        await wait_until(lambda: set(heard) == set(QUEUES), message="every queue notified")
        assert sorted(heard) == sorted(QUEUES)
    finally:
        await listener.close()


async def test_a_mixed_batch_answers_each_position_across_keys_parents_and_expiry(
    db_pool: asyncpg.Pool,
) -> None:
    [live] = await store.enqueue(
        db_pool, [NewJob("held", "default", {}, 1, None, None, "live", 3600)]
    )
    [old] = await store.enqueue(
        db_pool, [NewJob("held", "default", {}, 1, None, None, "old", 3600)]
    )
    await db_pool.execute(
        "UPDATE jobs.jobs SET unique_until = now() - interval '1 s' WHERE id = $1", old.id
    )
    [parent] = await store.enqueue(db_pool, [NewJob("parent", "default", {}, 1)])

    def job(i: int) -> NewJob:
        args = {"i": i}
        kind = i % 5
        if kind == 1:  # each key twice in the batch: positions i and i + 5
            return NewJob("keyed", "default", args, 1, None, None, f'k"{i // 10}', 3600)
        if kind == 2:
            return NewJob("keyed", "default", args, 1, None, None, "live", 3600)
        if kind == 3:
            return NewJob("child", "other", args, 1, after=parent.id)
        if kind == 4:
            return NewJob("keyed", "default", args, 1, None, None, "old", 3600)
        return NewJob("plain", "default", args, 1, delay=60 if i % 2 else None)

    batch = [job(i) for i in range(600)]
    results = await store.enqueue(db_pool, batch)

    assert len(results) == len(batch)
    rows = await stored(db_pool, [r.id for r in results])
    first_of_key: dict[str, int] = {}
    for i, (new, result) in enumerate(zip(batch, results, strict=True)):
        key = new.unique_key
        if key == "live":
            assert (result.id, result.created, result.state) == (live.id, False, "ready")
        elif key is not None and key in first_of_key:
            assert (result.id, result.created) == (first_of_key[key], False)
        else:
            assert result.created, i
            assert rows[result.id]["args"] == {"i": i}  # the row of this very position
            assert rows[result.id]["unique_key"] == key
            if key is not None:
                first_of_key[key] = result.id
            if new.after is not None:
                assert result.state == rows[result.id]["state"] == "awaiting"
                assert rows[result.id]["parent_id"] == parent.id
            else:
                assert result.state == rows[result.id]["state"]
    assert first_of_key["old"] != old.id  # the expired key was cleared and taken anew
    assert await db_pool.fetchval("SELECT unique_key FROM jobs.jobs WHERE id = $1", old.id) is None
    assert len(first_of_key) == 61  # 60 pairs of k"n keys, and "old" once
    await assert_counts_exact(db_pool)
