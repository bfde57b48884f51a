"""Keyed locks: try-lock skips, wait-lock waits, and no key outlives its users."""

from __future__ import annotations

import asyncio

from addicted_jobs.keyed_locks import KeyedLocks


async def test_try_lock_is_refused_while_held_and_entries_are_removed() -> None:
    locks = KeyedLocks()
    async with locks.try_lock("a") as first:
        assert first
        async with locks.try_lock("a") as second:
            assert not second
        async with locks.try_lock("b") as other:
            assert other
    assert len(locks) == 0


async def test_wait_lock_serialises_and_a_cancelled_waiter_leaves_nothing() -> None:
    locks = KeyedLocks()
    order: list[str] = []
    entered, release = asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        async with locks.lock("k"):
            entered.set()
            order.append("holder")
            await release.wait()

    async def waiter(name: str) -> None:
        async with locks.lock("k"):
            order.append(name)

    first = asyncio.create_task(holder())
    await entered.wait()
    cancelled = asyncio.create_task(waiter("cancelled"))
    second = asyncio.create_task(waiter("second"))
    await asyncio.sleep(0)  # both waiters are now queued on the held lock
    cancelled.cancel()
    release.set()
    await asyncio.gather(first, second, cancelled, return_exceptions=True)
    assert order == ["holder", "second"]
    assert len(locks) == 0


async def test_wait_released_waits_for_the_holder_only_and_takes_nothing() -> None:
    locks = KeyedLocks()
    await asyncio.wait_for(locks.wait_released("free"), 1)  # nobody holds it: at once
    release = asyncio.Event()
    took: list[bool] = []

    async def holder() -> None:
        async with locks.try_lock("k") as got:
            took.append(got)
            await release.wait()

    held = asyncio.create_task(holder())
    await asyncio.sleep(0)
    waiting = asyncio.create_task(locks.wait_released("k"))
    await asyncio.sleep(0)
    assert not waiting.done()
    release.set()
    await held
    await asyncio.wait_for(waiting, 1)
    # The waiter took nothing: the key is free for the next try-lock at once.
    async with locks.try_lock("k") as again:
        assert again
    assert took == [True] and len(locks) == 0
